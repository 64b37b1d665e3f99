"""Ids are exact: ours slow == ours fast == Hugging Face's RemBertTokenizerFast, on every text and option set."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tokenize.conftest import NORMALIZATIONS, OPTION_SETS, tokenizers_for

# Pieces that exercise every step of the pipeline: added tokens (raw and after normalisation, with the
# spaces the mask token takes along), ALBERT quotes, runs of spaces, fullwidth forms, combining marks,
# every kind of white space, controls, the unknown piece's own text, and text from several scripts.
TRICKY = [
    "[CLS]", "[SEP]", "[MASK]", "[mask]", "[Mask]", "<pad>", "<unk>", "<UNK>", "<PAD>", "［ＣＬＳ］", "［MASK］",
    "``", "''", "'''", "`", "  ", "   ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "\u2009", "\u200b", "\u200d",
    "\u1680", "\u2028", "\u0085", "\x1c", "\x00", "\x7f", "\u00ad", "\ufeff", "e\u0301", "\u0301", "\u0308\u0323",
    "Ａ\u0301", "ﬁ\u0301", "ß", "İ", "Σ", "ΟΔΟΣ", "ǅ", "Ⅻ", "①", "㎏", "ｶﾀｶﾅ", "ﾞ", "한", "\u1112\u1161\u11ab",
    "क्ष", "น้ำ", "👍🏽", "👨‍👩‍👧", "🇫🇷", "𝐀", "𝄞", "\U000e0001", "\U0010ffff", "▁", "▁▁", "x", "Hello", "Grüße",
]  # fmt: skip

characters = st.characters(exclude_categories=("Cs",))
pieces = st.one_of(characters, st.sampled_from(TRICKY), st.text(characters, max_size=4))
texts = st.lists(pieces, max_size=12).map("".join)
CONFIGS = [(name, *options) for name in NORMALIZATIONS for options in OPTION_SETS]


def _ids(tokenizer, batch, pairs=None):
    return tokenizer(batch, pairs, add_special_tokens=True)["input_ids"]


def _configured(spm_models, name, do_lower_case, keep_accents, remove_space):
    return tokenizers_for(spm_models[name], do_lower_case, keep_accents, remove_space)


@pytest.mark.parametrize("name,do_lower_case,keep_accents,remove_space", CONFIGS)
def test_sample_text_exact(spm_models, sample_lines, name, do_lower_case, keep_accents, remove_space):
    slow, fast, hf = _configured(spm_models, name, do_lower_case, keep_accents, remove_space)
    want = _ids(hf, sample_lines)
    assert _ids(fast, sample_lines) == want
    assert _ids(slow, sample_lines) == want
    pairs = sample_lines[1:] + sample_lines[:1]
    want_pairs = _ids(hf, sample_lines, pairs)
    assert _ids(fast, sample_lines, pairs) == want_pairs
    assert _ids(slow, sample_lines, pairs) == want_pairs


@pytest.mark.parametrize("name,do_lower_case,keep_accents,remove_space", CONFIGS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(texts, min_size=1, max_size=8), data=st.data())
def test_any_text_exact(spm_models, name, do_lower_case, keep_accents, remove_space, batch, data):
    slow, fast, hf = _configured(spm_models, name, do_lower_case, keep_accents, remove_space)
    want = _ids(hf, batch)
    assert _ids(fast, batch) == want
    assert _ids(slow, batch) == want
    single = batch[0]
    assert slow(single)["input_ids"] == fast(single)["input_ids"] == hf(single)["input_ids"]
    pairs = data.draw(st.lists(texts, min_size=len(batch), max_size=len(batch)))
    want_pairs = _ids(hf, batch, pairs)
    assert _ids(fast, batch, pairs) == want_pairs
    assert _ids(slow, batch, pairs) == want_pairs


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(texts, min_size=1, max_size=6))
def test_tokens_and_decode_agree(spm_models, batch):
    slow, fast, hf = tokenizers_for(spm_models["nmt_nfkc"], True, False, True)
    for text in batch:
        assert slow.tokenize(text) == fast.tokenize(text) == hf.tokenize(text)
    ids = fast(batch)["input_ids"]
    assert slow.batch_decode(ids) == fast.batch_decode(ids) == hf.batch_decode(ids)
    assert slow.batch_decode(ids, skip_special_tokens=True) == fast.batch_decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_decode_agrees_on_sample(spm_models, sample_lines, name):
    slow, fast, hf = tokenizers_for(spm_models[name], False, True, True)
    ids = hf(sample_lines)["input_ids"]
    assert slow.batch_decode(ids) == fast.batch_decode(ids) == hf.batch_decode(ids)
    for line, row in zip(sample_lines, ids, strict=True):
        assert slow.decode(row) == hf.decode(row)
        assert slow.tokenize(line) == fast.tokenize(line) == hf.tokenize(line)


CALL_OPTIONS = [
    dict(padding=True),
    dict(padding="longest", truncation=True, max_length=12),
    dict(padding="max_length", truncation="longest_first", max_length=16),
    dict(padding="max_length", truncation="only_first", max_length=24),
    dict(padding="max_length", truncation="only_first", max_length=64),
    dict(padding=True, truncation="only_second", max_length=24),
    dict(padding=True, truncation="only_second", max_length=64),
    dict(truncation=True, max_length=9),
    dict(max_length=7),
    dict(padding=True, add_special_tokens=False, truncation=True, max_length=10),
    dict(padding=True, pad_to_multiple_of=8),
    dict(padding="max_length", max_length=40, return_special_tokens_mask=True),
    dict(padding=False, return_attention_mask=False, return_token_type_ids=False),
]


# only_second truncation is about the second text of a pair, so it is only asked of pairs.
BATCH_CASES = [(o, pairs) for o in CALL_OPTIONS for pairs in (False, True) if pairs or "only_second" not in str(o)]


@pytest.mark.parametrize(
    "options, pairs",
    BATCH_CASES,
    ids=[",".join(f"{k}={v}" for k, v in o.items()) + (",pairs" if p else "") for o, p in BATCH_CASES],
)
def test_batch_options_match_hugging_face(trio, sample_lines, options, pairs):
    slow, fast, hf = trio
    firsts = sample_lines[:40]
    seconds = sample_lines[40:80] if pairs else None
    try:
        want = dict(hf(firsts, seconds, **options))
    except Exception as error:  # tokenizers raises a plain Exception
        for ours in (fast, slow):
            with pytest.raises(ValueError, match="Truncation error"):
                ours(firsts, seconds, **options)
        assert "Truncation error" in str(error)
        return
    for ours in (fast, slow):
        got = dict(ours(firsts, seconds, **options))
        assert got.keys() == want.keys()
        assert got == want
    want_np = hf(firsts, seconds, return_tensors="np", **options) if options.get("padding") else None
    if want_np is not None and want_np["input_ids"].ndim == 2:
        for ours in (fast, slow):
            got = ours(firsts, seconds, return_tensors="np", **options)
            for key in want_np:
                np.testing.assert_array_equal(got[key], want_np[key])
                assert got[key].dtype == want_np[key].dtype


def test_offsets_match_hugging_face(trio, sample_lines):
    _, fast, hf = trio
    options = dict(padding=True, truncation=True, max_length=20, return_offsets_mapping=True)
    assert dict(fast(sample_lines[:30], sample_lines[30:60], **options)) == dict(
        hf(sample_lines[:30], sample_lines[30:60], **options)
    )
    assert fast("Grüße  aus Köln [MASK]!", return_offsets_mapping=True) == hf(
        "Grüße  aus Köln [MASK]!", return_offsets_mapping=True
    )


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_and_truncation_sides(spm_model, sample_lines, side):
    from transformers import RemBertTokenizerFast as HF

    from rembert_tokenize import RemBertTokenizer, RemBertTokenizerFast

    hf = HF(vocab_file=str(spm_model), padding_side=side, truncation_side=side)
    for ours in (RemBertTokenizer(spm_model, padding_side=side, truncation_side=side),
                 RemBertTokenizerFast(vocab_file=spm_model, padding_side=side, truncation_side=side)):  # fmt: skip
        options = dict(padding="max_length", truncation=True, max_length=14)
        assert dict(ours(sample_lines[:20], sample_lines[5:25], **options)) == dict(
            hf(sample_lines[:20], sample_lines[5:25], **options)
        )


def test_ragged_tensors_raise_a_clear_error(trio):
    slow, fast, _ = trio
    for ours in (slow, fast):
        with pytest.raises(ValueError, match="different lengths"):
            ours(["a " * 50, "b"], padding="max_length", max_length=10, return_tensors="np")
        with pytest.raises(ValueError, match="different lengths"):
            ours(["a b c", "b"], return_tensors="np")


def test_truncation_errors_like_hugging_face(trio):
    slow, fast, hf = trio
    for ours in (slow, fast):
        with pytest.raises(ValueError, match="too short"):
            ours(["a " * 50, "b"], ["c", "d"], max_length=10, truncation="only_second")
        with pytest.raises(ValueError, match="second sequence"):
            ours(["a " * 50, "b"], max_length=10, truncation="only_second")
        with pytest.raises(ValueError, match="special tokens"):
            ours("a b", "c", max_length=2, truncation=True)
    with pytest.raises(Exception, match="too short"):
        hf(["a " * 50, "b"], ["c", "d"], max_length=10, truncation="only_second")
