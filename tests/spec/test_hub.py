"""Configs from Hugging Face Hub repo ids, resolved through huggingface_hub's cache with HF_HUB_OFFLINE=1, and the
config arguments Hugging Face users pass: compared with transformers' RemBertConfig reading the same cache."""

from __future__ import annotations

import json

import huggingface_hub
import pytest
import transformers

from rembert_spec import RemBertConfig
from rembert_spec.hub import looks_like_repo_id
from tests.conftest import tiny_config
from tests.hub_cache import add_repo, files_of

COMPARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "id2label", "is_decoder")


def same_config(ours: RemBertConfig, theirs) -> None:
    for name in COMPARED:
        assert getattr(ours, name) == getattr(theirs, name), name


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "hub-cache"


def saved(tmp_path, name: str, **fields) -> dict:
    directory = tmp_path / name
    tiny_config(**fields).save_pretrained(directory)
    return files_of(directory)


def test_the_suite_runs_offline():
    assert huggingface_hub.constants.HF_HUB_OFFLINE


def test_repo_ids_and_paths_are_told_apart():
    assert looks_like_repo_id("google/rembert") and looks_like_repo_id("rembert")
    for path in ("/models/rembert", "./rembert", "../rembert", "a/b/c", "~/rembert", "google--x/y", ""):
        assert not looks_like_repo_id(path), path


def test_config_from_a_repo_id_is_what_hugging_face_reads(tmp_path, cache):
    add_repo(cache, "google/rembert", saved(tmp_path, "config", id2label={0: "neg", 1: "pos", 2: "mixed"}))
    ours = RemBertConfig.from_pretrained("google/rembert", cache_dir=cache)
    theirs = transformers.RemBertConfig.from_pretrained("google/rembert", cache_dir=cache)
    same_config(ours, theirs)
    assert ours.num_labels == 3


def test_revision_and_subfolder_pick_the_files_hugging_face_picks(tmp_path, cache):
    add_repo(cache, "org/model", saved(tmp_path, "main", hidden_size=12))
    add_repo(cache, "org/model", {**saved(tmp_path, "v1", hidden_size=15, num_attention_heads=5)}, revision="v1")
    add_repo(
        cache,
        "org/nested",
        {f"encoder/{name}": path for name, path in saved(tmp_path, "nested", is_decoder=True).items()},
    )
    for repo, options in [
        ("org/model", {}),
        ("org/model", {"revision": "v1"}),
        ("org/nested", {"subfolder": "encoder"}),
        ("org/model", {"local_files_only": True, "token": "hf_not_used_offline"}),
    ]:
        ours = RemBertConfig.from_pretrained(repo, cache_dir=cache, **options)
        theirs = transformers.RemBertConfig.from_pretrained(repo, cache_dir=cache, **options)
        same_config(ours, theirs)
    assert RemBertConfig.from_pretrained("org/model", cache_dir=cache, revision="v1").hidden_size == 15


def test_the_default_cache_is_huggingface_hubs(tmp_path, cache, monkeypatch):
    add_repo(cache, "google/rembert", saved(tmp_path, "config"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert RemBertConfig.from_pretrained("google/rembert").hidden_size == 12


def test_a_repo_missing_offline_is_named_with_the_cache_searched(cache):
    with pytest.raises(OSError) as info:
        RemBertConfig.from_pretrained("google/no-such-model", cache_dir=cache)
    message = str(info.value)
    assert "google/no-such-model" in message and "nothing" in message and "cache" in message
    assert "offline" in message


def test_a_file_missing_from_a_cached_repo_is_named(tmp_path, cache):
    add_repo(cache, "org/weights-only", {"model.safetensors": b"{}"})
    with pytest.raises(OSError, match="config.json"):
        RemBertConfig.from_pretrained("org/weights-only", cache_dir=cache)


def test_a_local_path_that_does_not_exist_is_named_as_given(tmp_path):
    for missing in ("/x/nope", str(tmp_path / "nope"), "./nope", tmp_path / "also-nope"):
        with pytest.raises(FileNotFoundError) as info:
            RemBertConfig.from_pretrained(missing)
        assert str(info.value).startswith(f"{missing}: no such file or directory"), info.value
        assert "config.json" not in str(info.value)


def test_local_subfolder(tmp_path):
    tiny_config(hidden_size=15, num_attention_heads=5).save_pretrained(tmp_path / "sub")
    ours = RemBertConfig.from_pretrained(tmp_path, subfolder="sub")
    theirs = transformers.RemBertConfig.from_pretrained(tmp_path, subfolder="sub")
    same_config(ours, theirs)


def test_unknown_keyword_arguments_are_type_errors_naming_them(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    with pytest.raises(TypeError, match=r"'num_lables' \(did you mean 'num_labels'\?\)"):
        RemBertConfig.from_pretrained(tmp_path, num_lables=3)
    with pytest.raises(TypeError, match="num_lables"):
        RemBertConfig(num_lables=3)
    with pytest.raises(TypeError, match="num_lables"):
        RemBertConfig.from_dict(tiny_config().to_dict(), num_lables=3)
    # Keys of a config.json that the config does not know stay allowed, as in Hugging Face.
    data = {**json.loads((tmp_path / "config.json").read_text()), "my_setting": 7}
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert RemBertConfig.from_pretrained(tmp_path).extra["my_setting"] == 7


def test_return_unused_kwargs_as_hugging_face(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    ours, our_unused = RemBertConfig.from_pretrained(tmp_path, is_decoder=True, foo=1, return_unused_kwargs=True)
    theirs, their_unused = transformers.RemBertConfig.from_pretrained(
        tmp_path, is_decoder=True, foo=1, return_unused_kwargs=True
    )
    assert our_unused == their_unused == {"foo": 1}
    same_config(ours, theirs)


@pytest.mark.parametrize("size", [1, 2, 5])
def test_setting_num_labels_resizes_the_label_maps_as_hugging_face(size, tmp_path):
    labels = dict(id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    ours, theirs = tiny_config(**labels), transformers.RemBertConfig(**labels)
    ours.num_labels = size
    theirs.num_labels = size
    assert ours.num_labels == theirs.num_labels == size
    assert ours.id2label == theirs.id2label and ours.label2id == theirs.label2id
    ours.save_pretrained(tmp_path)  # the maps and num_labels agree, so the config saves and reads back
    assert RemBertConfig.from_pretrained(tmp_path).id2label == theirs.id2label


def test_setting_id2label_sets_num_labels_as_hugging_face():
    ours, theirs = tiny_config(), transformers.RemBertConfig()
    for config in (ours, theirs):
        config.id2label = {"0": "a", "1": "b", "2": "c"}
    assert ours.num_labels == theirs.num_labels == 3
    assert ours.id2label == {0: "a", 1: "b", 2: "c"}
    with pytest.raises(ValueError, match="num_labels must be a positive integer"):
        ours.num_labels = 0


def test_a_hugging_face_config_object_converts():
    from rembert_spec.config import as_rembert_config

    theirs = transformers.RemBertConfig(**{k: v for k, v in tiny_config().to_dict().items() if k != "id2label"})
    theirs.num_labels = 4
    ours = as_rembert_config(theirs, "RemBertModel")
    same_config(ours, theirs)
    assert ours.num_labels == 4 and ours.input_embedding_size == 8
    with pytest.raises(TypeError, match="needs a rembert_spec.RemBertConfig .* got builtins.dict"):
        as_rembert_config({"hidden_size": 12}, "RemBertModel")
    with pytest.raises(TypeError, match="got transformers.models.bert.configuration_bert.BertConfig"):
        as_rembert_config(transformers.BertConfig(), "RemBertModel")
