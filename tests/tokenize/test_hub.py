"""Both tokenizers from a Hugging Face Hub repo id, through huggingface_hub's cache (HF_HUB_OFFLINE=1), as
Hugging Face's RemBertTokenizerFast reads the same cache; and from_pretrained's keyword arguments."""

from __future__ import annotations

import pytest
import transformers

from rembert_tokenize import RemBertTokenizer, RemBertTokenizerFast
from tests.hub_cache import add_repo, files_of

TEXTS = ["Grüße aus Köln!", "The quick brown fox.", "Кошка спит на диване"]


@pytest.fixture
def hub_cache(spm_model, tmp_path):
    """google/rembert at main (a lowercasing tokenizer) and at v1 (a cased one), plus org/multi with the
    tokenizer in a subfolder."""
    cache = tmp_path / "cache"
    for name, revision, options in [("main", "main", {}), ("v1", "v1", {"do_lower_case": False})]:
        directory = tmp_path / name
        RemBertTokenizerFast(vocab_file=spm_model, **options).save_pretrained(directory)
        add_repo(cache, "google/rembert", files_of(directory), revision)
    add_repo(cache, "org/multi", files_of(tmp_path / "v1", prefix="tokenizer/"))
    return cache


@pytest.mark.parametrize("cls", [RemBertTokenizer, RemBertTokenizerFast])
@pytest.mark.parametrize(
    "repo, options",
    [
        ("google/rembert", {}),
        ("google/rembert", {"revision": "v1"}),
        ("google/rembert", {"local_files_only": True, "token": "hf_unused"}),
        ("org/multi", {"subfolder": "tokenizer"}),
    ],
)
def test_a_repo_id_gives_hugging_faces_tokenizer(cls, repo, options, hub_cache):
    ours = cls.from_pretrained(repo, cache_dir=hub_cache, **options)
    theirs = transformers.RemBertTokenizerFast.from_pretrained(repo, cache_dir=hub_cache, **options)
    assert ours.do_lower_case == theirs.do_lower_case
    assert ours(TEXTS)["input_ids"] == theirs(TEXTS)["input_ids"]


def test_a_missing_repo_offline_is_named(tmp_path):
    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        with pytest.raises(OSError) as info:
            cls.from_pretrained("google/not-cached", cache_dir=tmp_path)
        assert "google/not-cached" in str(info.value) and "nothing" in str(info.value)
        with pytest.raises(FileNotFoundError, match="^/x/nope: no such file or directory"):
            cls.from_pretrained("/x/nope")


def test_constructor_options_pass_and_typos_are_type_errors(spm_model, tmp_path):
    RemBertTokenizerFast(vocab_file=spm_model).save_pretrained(tmp_path)
    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        assert cls.from_pretrained(tmp_path, do_lower_case=False, padding_side="left").do_lower_case is False
        with pytest.raises(TypeError, match="do_lower_cas"):
            cls.from_pretrained(tmp_path, do_lower_cas=False)
