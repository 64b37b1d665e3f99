"""The Hugging Face-style API of both tokenizers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from rembert_tokenize import BatchEncoding, RemBertTokenizer, RemBertTokenizerFast


@pytest.fixture(scope="module", params=["slow", "fast"])
def tokenizer(request, trio):
    return trio[0] if request.param == "slow" else trio[1]


def test_defaults_and_special_tokens(tokenizer, trio):
    hf = trio[2]
    assert (tokenizer.do_lower_case, tokenizer.remove_space, tokenizer.keep_accents) == (True, True, False)
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(tokenizer, f"{name}_token") == getattr(hf, f"{name}_token")
        assert getattr(tokenizer, f"{name}_token_id") == getattr(hf, f"{name}_token_id")
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id) == (0, 1, 2)
    assert (tokenizer.sep_token_id, tokenizer.mask_token_id) == (3, 4)
    assert tokenizer.all_special_tokens == hf.all_special_tokens
    assert tokenizer.all_special_ids == hf.all_special_ids
    assert tokenizer.model_max_length == hf.model_max_length
    assert tokenizer.vocab_size == hf.vocab_size and len(tokenizer) == len(hf)
    assert tokenizer.get_vocab() == hf.get_vocab()


def test_documented_methods(tokenizer, trio):
    hf = trio[2]
    a, b = [10, 11, 12], [20, 21]
    assert tokenizer.build_inputs_with_special_tokens(a) == [2, 10, 11, 12, 3]
    assert tokenizer.build_inputs_with_special_tokens(a, b) == [2, 10, 11, 12, 3, 20, 21, 3]
    for args in ((a,), (a, b)):
        assert tokenizer.build_inputs_with_special_tokens(*args) == hf.build_inputs_with_special_tokens(*args)
        assert tokenizer.get_special_tokens_mask(*args) == hf.get_special_tokens_mask(*args)
        assert tokenizer.create_token_type_ids_from_sequences(*args) == hf.create_token_type_ids_from_sequences(*args)
    built = [2, 10, 3, 20, 3]
    assert tokenizer.get_special_tokens_mask(built, already_has_special_tokens=True) == [1, 0, 1, 0, 1]
    with pytest.raises(ValueError):
        tokenizer.get_special_tokens_mask(a, b, already_has_special_tokens=True)


def test_call_shapes_and_types(tokenizer):
    single = tokenizer("Hello world")
    assert isinstance(single, BatchEncoding)
    assert list(single.keys()) == ["input_ids", "token_type_ids", "attention_mask"]
    assert single.input_ids == single["input_ids"] and isinstance(single.input_ids[0], int)
    batch = tokenizer(["Hello world", "Grüße"], padding=True, return_tensors="np")
    assert batch.input_ids.dtype == np.int64 and batch.input_ids.shape[0] == 2
    assert batch.attention_mask.sum() == sum(len(x) for x in tokenizer(["Hello world", "Grüße"]).input_ids)
    pairs = tokenizer([("question?", "answer."), ("a", "b")])
    assert pairs.input_ids == tokenizer(["question?", "a"], ["answer.", "b"]).input_ids
    assert tokenizer("x", return_tensors="np").input_ids.shape == (1, len(tokenizer("x").input_ids))
    with pytest.raises(AttributeError):
        _ = single.no_such_field


def test_torch_and_tensorflow_tensors(tokenizer, trio):
    hf = trio[2]
    texts = ["Hello world", "Καλημέρα σας"]
    for kind in ("pt", "tf"):
        ours = tokenizer(texts, padding=True, return_tensors=kind)
        theirs = hf(texts, padding=True, return_tensors=kind)
        for key in theirs:
            assert ours[key].dtype == theirs[key].dtype
            np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(theirs[key]))


def test_encode_decode_round_trip(tokenizer, trio):
    hf = trio[2]
    text = "Le café  est prêt, n'est-ce pas? [MASK]"
    ids = tokenizer.encode(text)
    assert ids == hf.encode(text)
    assert tokenizer.decode(ids) == hf.decode(ids)
    assert tokenizer.decode(np.array(ids)) == tokenizer.decode(ids)
    assert tokenizer.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)
    assert "[MASK]" not in tokenizer.decode(ids, skip_special_tokens=True)
    assert tokenizer.batch_decode([ids, ids[:3]]) == [hf.decode(ids), hf.decode(ids[:3])]
    assert tokenizer.decode(ids, clean_up_tokenization_spaces=True) == hf.decode(ids, clean_up_tokenization_spaces=True)
    assert tokenizer.tokenize(text) == hf.tokenize(text)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == hf.convert_ids_to_tokens(ids)
    assert tokenizer.convert_tokens_to_ids(tokens) == ids
    assert tokenizer.convert_tokens_to_ids("no-such-token") == tokenizer.unk_token_id
    assert tokenizer.convert_ids_to_tokens(3) == "[SEP]"


def test_pad(tokenizer, trio):
    hf = trio[2]
    rows = dict(tokenizer(["a b c d", "e"]))
    assert dict(tokenizer.pad(rows)) == dict(hf.pad(rows))
    padded = tokenizer.pad(rows, padding="max_length", max_length=12, return_tensors="np")
    np.testing.assert_array_equal(padded.input_ids, hf.pad(rows, padding="max_length", max_length=12,
                                                           return_tensors="np").input_ids)  # fmt: skip
    as_list = [{"input_ids": ids} for ids in rows["input_ids"]]
    assert tokenizer.pad(as_list).attention_mask == hf.pad(as_list).attention_mask


def test_offsets_from_both_tokenizers(trio):
    slow, fast, hf = trio
    text = "Grüße  aus Köln [MASK]!"
    want = dict(hf(text, return_offsets_mapping=True))
    assert dict(slow(text, return_offsets_mapping=True)) == dict(fast(text, return_offsets_mapping=True)) == want


def test_truncation_defaults_to_model_max_length(spm_model):
    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        tokenizer = cls(spm_model, model_max_length=6)
        assert len(tokenizer("one two three four five six seven", truncation=True).input_ids) == 6
        assert len(tokenizer("a", padding="max_length").input_ids) == 6


def test_pickle_round_trip(tokenizer):
    text = ["Ζάχαρη και ``κανέλα''", "東京 [MASK] x"]
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert type(clone) is type(tokenizer)
    assert clone(text, padding=True) == tokenizer(text, padding=True)
    assert clone.decode(clone.encode(text[0])) == tokenizer.decode(tokenizer.encode(text[0]))


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="padding"):
        tokenizer("x", padding="sideways")
    with pytest.raises(ValueError, match="truncation"):
        tokenizer("x", truncation="middle")
    with pytest.raises(ValueError, match="return_tensors"):
        tokenizer("x", return_tensors="jax")
    with pytest.raises(TypeError):
        tokenizer(3)
    with pytest.raises(TypeError):
        tokenizer.encode(["a", "b"])


# --- BatchEncoding ----------------------------------------------------------------------------------


def test_batch_encoding_like_hugging_face(tokenizer, trio):
    hf = trio[2]
    texts = ["Grüße aus Köln", "東京"]
    ours, theirs = tokenizer(texts, ["Wo?", "ok"], padding=True), hf(texts, ["Wo?", "ok"], padding=True)
    assert ours.n_sequences == theirs.n_sequences == 2
    assert tokenizer("x").n_sequences == 1
    assert ours.is_fast is tokenizer.is_fast
    assert [row.ids for row in ours[:1]] == [row.ids for row in theirs[:1]]
    assert tokenizer.pad(dict(ours))[:1] == hf.pad(dict(theirs))[:1]  # without alignment: every field sliced
    assert ours[1].ids == theirs[1].ids and ours[1].tokens == theirs[1].tokens
    assert ours.data["input_ids"] is ours["input_ids"]
    with pytest.raises(AttributeError, match="no field 'labels'"):
        _ = ours.labels
    with pytest.raises(KeyError):
        _ = ours[1.5]
    clone = pickle.loads(pickle.dumps(ours))
    assert clone == ours and clone.word_ids(1) == ours.word_ids(1) and clone.n_sequences == 2
    padded = tokenizer.pad(dict(tokenizer(texts)))
    with pytest.raises(ValueError, match="alignment of a tokenizer call"):
        padded.word_ids(0)
    assert padded.encodings is None and hf.pad(dict(hf(texts))).encodings is None


def test_convert_to_tensors_and_to_device(tokenizer, trio):
    import torch

    hf = trio[2]
    ours, theirs = tokenizer(["a b", "c"], padding=True), hf(["a b", "c"], padding=True)
    ours["label"] = theirs["label"] = [0.5, 1.0]
    for kind in ("pt", "np"):
        mine, want = BatchEncoding(dict(ours)).convert_to_tensors(kind), hf.pad(dict(theirs), return_tensors=kind)
        for key in want:
            assert mine[key].dtype == want[key].dtype, key
            np.testing.assert_array_equal(np.asarray(mine[key]), np.asarray(want[key]))
    on_cpu = tokenizer(["a b", "c"], padding=True, return_tensors="pt").to("cpu")
    assert isinstance(on_cpu, BatchEncoding) and on_cpu["input_ids"].device == torch.device("cpu")
    assert on_cpu.to(torch.device("cpu")) is on_cpu
    with pytest.raises(TypeError, match="device"):
        on_cpu.to(torch.float16)
    with pytest.raises(ValueError, match="'input_ids'"):
        tokenizer(["a b c", "d"]).convert_to_tensors("pt")


def test_rembert_tokenize_imports_no_framework():
    import subprocess
    import sys

    code = "import sys, rembert_tokenize; print(sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- edge cases -------------------------------------------------------------------------------------


def test_empty_batch(tokenizer):
    assert dict(tokenizer([])) == {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    assert tokenizer([], padding=True, return_tensors="np")["input_ids"].shape == (0, 0)
    assert tokenizer([], []).encodings == []


def test_empty_and_blank_texts(tokenizer, trio):
    hf = trio[2]
    texts = ["", " ", "   ", "\t\n", "\u3000\u00a0", "a", ""]
    for text in texts:
        assert dict(tokenizer(text, return_offsets_mapping=True)) == dict(hf(text, return_offsets_mapping=True))
        assert tokenizer(text).tokens() == hf(text).tokens()
    assert dict(tokenizer(texts, texts[::-1], padding=True)) == dict(hf(texts, texts[::-1], padding=True))
    # One call with an empty second text is a pair, as in a batch (Hugging Face drops a falsy pair there).
    assert tokenizer("a", "").input_ids == tokenizer(["a"], [""]).input_ids[0] == hf(["a"], [""]).input_ids[0]


def test_bad_text_arguments(tokenizer):
    with pytest.raises(TypeError, match=r"text_pair\[1\] is None"):
        tokenizer(["a", "b"], ["x", None])
    with pytest.raises(TypeError, match=r"text\[1\] must be a string"):
        tokenizer(["a", None])
    with pytest.raises(ValueError, match="2 entries but text_pair has 1"):
        tokenizer(["a", "b"], ["x"])
    with pytest.raises(TypeError, match="text_pair must be a list"):
        tokenizer(["a", "b"], "x")
    with pytest.raises(ValueError, match=r"text\[1\]"):
        tokenizer([("a", "b"), ("c",)])
    with pytest.raises(TypeError, match=r"text\[0\]\[1\] must be a word"):
        tokenizer([["a", 3]], is_split_into_words=True)
    with pytest.raises(TypeError, match="list of words"):
        tokenizer("a b", is_split_into_words=True)
    with pytest.raises(TypeError, match="needs text"):
        tokenizer()


def test_unknown_keyword_arguments_are_errors(spm_model, tmp_path):
    RemBertTokenizerFast(vocab_file=spm_model).save_pretrained(tmp_path)
    config = tmp_path / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"do_lower_case"', '"some_future_option": 1, "do_lower_case"'))
    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        with pytest.raises(TypeError, match="'do_lower_cse'"):
            cls(spm_model, do_lower_cse=False)
        with pytest.raises(TypeError, match="'num_lables', 'paddding_side'"):
            cls.from_pretrained(tmp_path, num_lables=3, paddding_side="left")
        loaded = cls.from_pretrained(tmp_path, model_max_length=32)  # unknown keys of the file stay allowed
        assert loaded.extra_init_kwargs == {"some_future_option": 1}
        loaded.save_pretrained(tmp_path / cls.__name__)
        assert '"some_future_option": 1' in (tmp_path / cls.__name__ / "tokenizer_config.json").read_text()
    with pytest.raises(TypeError, match="unexpected keyword"):
        RemBertTokenizer(spm_model)("x", return_overflow=True)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [RemBertTokenizer, RemBertTokenizerFast])
def test_a_one_megabyte_text(spm_model, cls):
    """Linear time: a 1 MB text (ids, then the alignment) in well under a minute (a few seconds here)."""
    import time

    tokenizer = cls(spm_model) if cls is RemBertTokenizer else cls(vocab_file=spm_model)
    base = "Grüße aus Köln, 東京は日本の首都です。 مرحبا بالعالم 👍🏽 [MASK] "
    for text in ((base * 20000)[:1_000_000], "x" * 1_000_000):
        start = time.perf_counter()
        encoding = tokenizer(text, return_offsets_mapping=True)
        assert len(encoding["input_ids"]) > 1 and encoding.char_to_token(999_999) is not None
        assert time.perf_counter() - start < 60
