"""Growing the vocabulary: add_tokens / add_special_tokens like Hugging Face, saved and reloaded by both
libraries, and models resized to len(tokenizer) in PyTorch and TensorFlow."""

from __future__ import annotations

import warnings

import pytest

from rembert_tokenize import AddedToken, RemBertTokenizer, RemBertTokenizerFast
from tests.tokenize.conftest import ADDED_PIECES, add_vocabulary, fresh_tokenizers

CLASSES = [RemBertTokenizer, RemBertTokenizerFast]
PROBE = ["a newword b<ent>c Straße <e1>x</e1> <y> ñu xñux <newpad> [MASK] [mask] <pad>", " ".join(ADDED_PIECES)]
CALL = dict(return_offsets_mapping=True, return_special_tokens_mask=True)


def _table(tokenizer) -> dict:
    return {index: AddedToken.coerce(token).to_dict() for index, token in tokenizer.added_tokens_decoder.items()}


def _same_tokenizer(ours, theirs) -> None:
    """Same vocabulary, special tokens, encodings and decodings."""
    assert _table(ours) == _table(theirs)
    assert len(ours) == len(theirs)
    assert ours.get_vocab() == theirs.get_vocab()
    assert ours.get_added_vocab() == theirs.get_added_vocab()
    assert ours.special_tokens_map == theirs.special_tokens_map
    assert ours.all_special_tokens == theirs.all_special_tokens
    assert ours.all_special_ids == theirs.all_special_ids
    assert ours.additional_special_tokens_ids == theirs.additional_special_tokens_ids
    mine, want = ours(PROBE, **CALL), theirs(PROBE, **CALL)
    assert dict(mine) == dict(want)
    for row in range(len(PROBE)):
        assert mine.tokens(row) == want.tokens(row)
        assert mine.word_ids(row) == want.word_ids(row)
    for skip in (False, True):
        assert ours.batch_decode(want["input_ids"], skip_special_tokens=skip) == theirs.batch_decode(
            want["input_ids"], skip_special_tokens=skip
        )


def test_adding_tokens_like_hugging_face(spm_model):
    slow, fast, hf = fresh_tokenizers(spm_model)
    size = len(hf)
    want = add_vocabulary(hf)
    assert add_vocabulary(slow) == add_vocabulary(fast) == want
    assert len(hf) > size
    for ours in (slow, fast):
        _same_tokenizer(ours, hf)
        assert ours.pad_token == "<newpad>" and ours.additional_special_tokens == ["<e1>", "</e1>", "<e2>"]
        assert ours.add_tokens([]) == 0 and ours.add_tokens("newword") == 0


def test_pickled_after_adding(spm_model):
    """A pickled tokenizer comes back as Hugging Face's does (its backend travels as tokenizer.json)."""
    import pickle

    trio = fresh_tokenizers(spm_model)
    for tokenizer in trio:
        add_vocabulary(tokenizer)
    slow, fast, hf = (pickle.loads(pickle.dumps(tokenizer)) for tokenizer in trio)
    for ours in (slow, fast):
        _same_tokenizer(ours, hf)


def test_add_special_tokens_replaces_the_additional_list(spm_model):
    from tokenizers import AddedToken as HFAddedToken  # what Hugging Face users pass; ours accept it too

    trio = fresh_tokenizers(spm_model)
    for tokenizer in trio:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<a>", "<b>"]})
        tokenizer.add_special_tokens({"additional_special_tokens": ["<c>"]})
        tokenizer.add_special_tokens({"bos_token": "<s>", "mask_token": HFAddedToken("<m>", lstrip=True)})
    slow, fast, hf = trio
    for ours in (slow, fast):
        _same_tokenizer(ours, hf)
        assert ours.additional_special_tokens == ["<c>"]
        # A new cls_token is what ours put in front (Hugging Face's RemBERT keeps its first template).
        ours.add_special_tokens({"cls_token": "<cls2>"})
        assert ours("x").input_ids[0] == ours.convert_tokens_to_ids("<cls2>") == len(ours) - 1
    with pytest.raises(ValueError, match="not a special token role"):
        slow.add_special_tokens({"pading_token": "[PAD]"})


@pytest.mark.parametrize("saver", CLASSES + ["hf"])
def test_saved_vocabulary_reloads_everywhere(spm_model, tmp_path, saver):
    from transformers import RemBertTokenizerFast as HFFast

    trio = fresh_tokenizers(spm_model)
    for tokenizer in trio:
        add_vocabulary(tokenizer)
    source = trio[2] if saver == "hf" else trio[CLASSES.index(saver)]
    source.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = HFFast.from_pretrained(tmp_path)
    assert theirs(PROBE).input_ids == trio[2](PROBE).input_ids
    for cls in CLASSES:
        ours = cls.from_pretrained(tmp_path)
        _same_tokenizer(ours, theirs)


def test_setting_special_tokens(spm_model):
    trio = fresh_tokenizers(spm_model)
    for tokenizer in trio:
        tokenizer.pad_token = "<unk>"
        tokenizer.mask_token_id = 3
    slow, fast, hf = trio
    for ours in (slow, fast):
        assert (ours.pad_token, ours.pad_token_id, ours.mask_token) == (hf.pad_token, hf.pad_token_id, hf.mask_token)
        assert dict(ours(["a b", "c"], padding=True)) == dict(hf(["a b", "c"], padding=True))
        ours.pad_token = None
        with pytest.raises(ValueError, match="pad token"):
            ours(["a b", "c"], padding=True)


def test_resize_token_embeddings_pytorch(spm_model):
    import torch

    from rembert_pt import RemBertForMaskedLM
    from tests.conftest import tiny_config

    for tokenizer in fresh_tokenizers(spm_model)[:2]:
        model = RemBertForMaskedLM(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=64)).eval()
        tokenizer.add_tokens(["<new1>", "<new2>"], special_tokens=True)
        tokenizer.add_tokens(["brandnewword"])
        assert len(tokenizer) == tokenizer.vocab_size + 3
        model.resize_token_embeddings(len(tokenizer))
        batch = tokenizer(["x <new2> brandnewword", "<new1>"], padding=True, return_tensors="pt")
        assert int(batch["input_ids"].max()) == len(tokenizer) - 1
        with torch.no_grad():
            logits = model(**batch).logits
        assert logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
        assert torch.isfinite(logits).all()


def test_resize_token_embeddings_tensorflow(spm_model):
    import numpy as np

    from rembert_tf import TFRemBertForMaskedLM
    from tests.conftest import tiny_config

    for tokenizer in fresh_tokenizers(spm_model)[:2]:
        model = TFRemBertForMaskedLM(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=64))
        model(tokenizer(["x"], return_tensors="tf"))  # built with the old vocabulary
        tokenizer.add_tokens(["<new1>", "<new2>"], special_tokens=True)
        tokenizer.add_tokens(["brandnewword"])
        model.resize_token_embeddings(len(tokenizer))
        batch = tokenizer(["x <new2> brandnewword", "<new1>"], padding=True, return_tensors="tf")
        assert int(np.max(batch["input_ids"])) == len(tokenizer) - 1
        logits = model(batch).logits
        assert tuple(logits.shape) == (2, batch["input_ids"].shape[1], len(tokenizer))
        assert np.isfinite(logits.numpy()).all()
