"""Saving, loading, Hugging Face interoperability, and broken files."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rembert_tokenize import RemBertTokenizer, RemBertTokenizerFast, TokenizerFileError
from rembert_tokenize.model_file import SentencePieceModel

CLASSES = [RemBertTokenizer, RemBertTokenizerFast]
HF_FILES = {"tokenizer_config.json", "special_tokens_map.json", "sentencepiece.model"}


def _hf_classes():
    from transformers import RemBertTokenizer as HFSlow
    from transformers import RemBertTokenizerFast as HFFast

    return HFSlow, HFFast


def _load(cls, model_path):
    return cls(model_path) if cls is RemBertTokenizer else cls(vocab_file=model_path)


@pytest.mark.parametrize("cls", CLASSES)
def test_save_and_reload(cls, spm_model, sample_lines, tmp_path):
    tokenizer = _load(cls, spm_model)
    written = tokenizer.save_pretrained(tmp_path)
    assert all(isinstance(path, str) for path in written)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == HF_FILES | ({"tokenizer.json"} if cls is RemBertTokenizerFast else set())
    for other in CLASSES:
        again = other.from_pretrained(tmp_path)
        assert again(sample_lines).input_ids == tokenizer(sample_lines).input_ids
    (vocab,) = tokenizer.save_vocabulary(str(tmp_path), filename_prefix="mine")
    assert vocab.endswith("mine-sentencepiece.model")
    assert open(vocab, "rb").read() == spm_model.read_bytes()


def test_config_values_override_defaults(spm_model, sample_lines, tmp_path):
    RemBertTokenizerFast(vocab_file=spm_model, do_lower_case=False, keep_accents=True).save_pretrained(tmp_path)
    for cls in CLASSES:
        loaded = cls.from_pretrained(tmp_path)
        assert (loaded.do_lower_case, loaded.keep_accents) == (False, True)
        assert cls.from_pretrained(tmp_path, model_max_length=64).model_max_length == 64
    slow, fast = RemBertTokenizer.from_pretrained(tmp_path), RemBertTokenizerFast.from_pretrained(tmp_path)
    assert slow(sample_lines).input_ids == fast(sample_lines).input_ids


@pytest.mark.parametrize("cls", CLASSES)
def test_hugging_face_loads_ours(cls, spm_model, sample_lines, tmp_path):
    hf_slow, hf_fast = _hf_classes()
    ours = _load(cls, spm_model)
    ours.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = hf_fast.from_pretrained(tmp_path)
        their_slow = hf_slow.from_pretrained(tmp_path)
    assert theirs(sample_lines).input_ids == ours(sample_lines).input_ids
    assert their_slow.get_vocab() == ours.get_vocab()
    assert their_slow.all_special_ids == ours.all_special_ids
    assert (their_slow.do_lower_case, their_slow.keep_accents) == (True, False)


def test_we_load_hugging_face_directories(spm_model, sample_lines, tmp_path):
    hf_slow, hf_fast = _hf_classes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_fast(vocab_file=str(spm_model)).save_pretrained(tmp_path / "fast")
        hf_slow(vocab_file=str(spm_model), do_lower_case=True, keep_accents=False, unk_token="<unk>",
                pad_token="<pad>").save_pretrained(tmp_path / "slow")  # fmt: skip
        hf_slow(vocab_file=str(spm_model)).save_pretrained(tmp_path / "slow-defaults")
    for name in ("fast", "slow", "slow-defaults"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = hf_fast.from_pretrained(tmp_path / name)
        for cls in CLASSES:
            ours = cls.from_pretrained(tmp_path / name)
            assert ours(sample_lines, padding=True).input_ids == want(sample_lines, padding=True).input_ids, name
            assert ours.all_special_ids == want.all_special_ids
            assert len(ours) == len(want)
            assert ours.decode(want("x [MASK] <pad>").input_ids) == want.decode(want("x [MASK] <pad>").input_ids)


def test_fast_from_tokenizer_json_alone(spm_model, sample_lines, tmp_path):
    fast = RemBertTokenizerFast(vocab_file=spm_model)
    fast.save_pretrained(tmp_path)
    alone = RemBertTokenizerFast(tokenizer_file=tmp_path / "tokenizer.json")
    assert alone(sample_lines).input_ids == fast(sample_lines).input_ids
    with pytest.raises(ValueError, match="sentencepiece.model"):
        alone.save_vocabulary(str(tmp_path))


# --- broken files -----------------------------------------------------------------------------------


def _loads_or_names_the_file(load, path, probe):
    """A broken file either raises an error naming it, or gives a tokenizer that works."""
    try:
        tokenizer = load(path)
    except (TokenizerFileError, OSError) as error:
        assert str(path) in str(error)
        assert isinstance(error, (ValueError, OSError))
        return
    tokenizer(probe, padding=True)


def test_missing_files_name_the_path(tmp_path):
    missing = tmp_path / "nope" / "sentencepiece.model"
    for load in (RemBertTokenizer, lambda p: RemBertTokenizerFast(vocab_file=p)):
        with pytest.raises(FileNotFoundError, match="nope"):
            load(missing)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        RemBertTokenizerFast(tokenizer_file=tmp_path / "tokenizer.json")
    with pytest.raises(OSError, match="nope"):
        RemBertTokenizer.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="sentencepiece.model"):
        RemBertTokenizer.from_pretrained(tmp_path)


@pytest.fixture(scope="module")
def model_bytes(spm_model) -> bytes:
    return spm_model.read_bytes()


LOADERS = [RemBertTokenizer, lambda p: RemBertTokenizerFast(vocab_file=p)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_model(model_bytes, sample_lines, tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("cut") / "sentencepiece.model"
    path.write_bytes(model_bytes[: int(len(model_bytes) * cut)])
    for load in LOADERS:
        _loads_or_names_the_file(load, path, sample_lines[:20])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_model(model_bytes, sample_lines, tmp_path_factory, data):
    corrupted = bytearray(model_bytes)
    # Most of the file is the normalizer's charsmap; aim some flips at the pieces and specs too.
    region = data.draw(st.sampled_from([len(corrupted), 40_000]))
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, region - 1))
        corrupted[where] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("bad") / "sentencepiece.model"
    path.write_bytes(bytes(corrupted))
    for load in LOADERS:
        _loads_or_names_the_file(load, path, sample_lines[:20] + ["Ｆｕｌｌ　ｗｉｄｔｈ ﬁ\u0301 [MASK]"])


def test_corrupted_charsmap_is_refused(model_bytes):
    model = SentencePieceModel.from_bytes(model_bytes)
    charsmap = model.precompiled_charsmap
    start = model_bytes.index(charsmap)
    broken = bytearray(model_bytes)
    broken[start + 4 : start + 4 + 64] = b"\xff" * 64  # trie units pointing far outside the array
    with pytest.raises(TokenizerFileError, match="charsmap"):
        SentencePieceModel.from_bytes(bytes(broken), source="x/sentencepiece.model")


@pytest.fixture(scope="module")
def tokenizer_json(spm_model, tmp_path_factory) -> bytes:
    directory = tmp_path_factory.mktemp("json")
    RemBertTokenizerFast(vocab_file=spm_model).save_pretrained(directory)
    return (directory / "tokenizer.json").read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_broken_tokenizer_json(tokenizer_json, sample_lines, tmp_path_factory, data):
    broken = bytearray(tokenizer_json)
    if data.draw(st.booleans()):
        broken = broken[: data.draw(st.integers(0, len(broken) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 6))):
            broken[data.draw(st.integers(0, len(broken) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("badjson") / "tokenizer.json"
    path.write_bytes(bytes(broken))
    _loads_or_names_the_file(lambda p: RemBertTokenizerFast(tokenizer_file=p), path, sample_lines[:20])


def test_tokenizer_json_with_bad_model_is_refused(tokenizer_json, tmp_path):
    data = json.loads(tokenizer_json)
    data["model"]["unk_id"] = 10**6
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TokenizerFileError, match="tokenizer.json"):
        RemBertTokenizerFast(tokenizer_file=path)


def test_training_helper_is_deterministic(tmp_path):
    from rembert_tokenize.testing import train_sentencepiece
    from tests.tokenize.conftest import SAMPLE

    first = train_sentencepiece(SAMPLE, tmp_path / "a", normalization="identity")
    (tmp_path / "b").mkdir()
    second = train_sentencepiece(SAMPLE, tmp_path / "b", normalization="identity")
    assert first.name == "a.model" and second.name == "sentencepiece.model"
    assert first.read_bytes() == second.read_bytes()
    model = SentencePieceModel.from_file(second)
    assert [p.text for p in model.pieces[:5]] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert model.normalizer_name == "identity" and not model.precompiled_charsmap
    with pytest.raises(ValueError, match="normalization"):
        train_sentencepiece(SAMPLE, tmp_path / "c", normalization="nfc")


@pytest.mark.parametrize("layout", ["model", "model+json", "model+config", "model+json+config", "json"])
def test_directory_without_full_config(spm_model, tmp_path, layout):
    """Whatever files a directory holds, both classes give Hugging Face's fast tokenizer's ids."""
    import shutil

    _, hf_fast = _hf_classes()
    source = tmp_path / "source"
    RemBertTokenizerFast(vocab_file=spm_model, do_lower_case=False, keep_accents=True).save_pretrained(source)
    directory = tmp_path / layout
    directory.mkdir()
    if "model" in layout:
        shutil.copy(spm_model, directory / "sentencepiece.model")
    if "json" in layout:
        shutil.copy(source / "tokenizer.json", directory / "tokenizer.json")
    if "config" in layout:
        (directory / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    text = ["Hello World Köln", "Ça coûte 25 €, n'est-ce pas? [MASK] [mask]"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = hf_fast.from_pretrained(directory)(text, return_offsets_mapping=True)
    classes = [RemBertTokenizerFast] if layout == "json" else CLASSES
    for cls in classes:
        got = cls.from_pretrained(directory)(text, return_offsets_mapping=True)
        assert dict(got) == dict(want)
        assert got.tokens(1) == want.tokens(1)
