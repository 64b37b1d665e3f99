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
