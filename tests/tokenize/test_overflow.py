"""Truncation with overflow: the windows a document stride makes, as Hugging Face's fast tokenizer makes
them (ids, offsets, sequence ids, word ids, overflow_to_sample_mapping), for both tokenizers."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tokenize.test_alignment import assert_same
from tests.tokenize.test_exactness import texts

RETURN_ALL = dict(return_offsets_mapping=True, return_special_tokens_mask=True, return_length=True)


def _outcome(tokenizer, *args, **kwargs):
    """The encoding, or the kind of error: Hugging Face's fast tokenizer raises a plain Exception for a
    truncation error and panics (PanicException, a BaseException) for a stride too large."""
    try:
        return tokenizer(*args, **kwargs)
    except BaseException as error:  # noqa: BLE001 - see the docstring
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        message = str(error)
        if "stride" in message:
            return "stride"
        if "Truncation error" in message or "too short" in message:
            return "too short"
        raise


@contextlib.contextmanager
def _sequential():
    """Hugging Face's fast tokenizer encodes a batch on a thread pool, so which input's truncation error it
    reports (a text too short, a stride too large) depends on timing; one at a time, it is the first
    failing input's, as ours. Its env variable is read at every call."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def check_windows(trio, *args, **kwargs) -> None:
    slow, fast, hf = trio
    with _sequential():
        theirs = _outcome(hf, *args, **kwargs)
    for ours in (slow, fast):
        mine = _outcome(ours, *args, **kwargs)
        if isinstance(theirs, str):
            assert mine == theirs
        else:
            assert not isinstance(mine, str), mine
            assert_same(mine, theirs)


long_texts = st.lists(texts, min_size=1, max_size=6).map(" ".join)
options = st.fixed_dictionaries(
    {
        "truncation": st.sampled_from([True, "longest_first", "only_first", "only_second"]),
        "max_length": st.integers(6, 40),
        "stride": st.integers(0, 6),
        "padding": st.sampled_from([False, True, "max_length"]),
        "add_special_tokens": st.booleans(),
    }
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), options=options, side=st.sampled_from(["right", "left"]), pairs=st.booleans())
def test_generated_windows(spm_model, data, options, side, pairs):
    trio = _sided(spm_model, side)
    firsts = data.draw(st.lists(long_texts, min_size=1, max_size=3))
    seconds = data.draw(st.lists(long_texts, min_size=len(firsts), max_size=len(firsts))) if pairs else None
    if not pairs and options["truncation"] == "only_second":
        options["truncation"] = "only_first"
    check_windows(trio, firsts, seconds, return_overflowing_tokens=True, **options, **RETURN_ALL)


_SIDED: dict = {}


def _sided(spm_model, side):
    """Tokenizers truncating on ``side`` (built once per side)."""
    from tests.tokenize.conftest import fresh_tokenizers

    if side not in _SIDED:
        trio = fresh_tokenizers(spm_model)
        for tokenizer in trio:
            tokenizer.truncation_side = side
        _SIDED[side] = trio
    return _SIDED[side]


def _answer_positions(encoding, starts, ends):
    """The usual extractive-QA labels: the answer's first and last token in each window (0, 0 when the
    window does not hold the answer)."""
    positions = []
    for row, sample in enumerate(encoding["overflow_to_sample_mapping"]):
        sequence_ids = encoding.sequence_ids(row)
        offsets = encoding["offset_mapping"][row]
        context = [i for i, s in enumerate(sequence_ids) if s == 1]
        first, last = context[0], context[-1]
        start_char, end_char = starts[sample], ends[sample]
        if offsets[first][0] > start_char or offsets[last][1] < end_char:
            positions.append((0, 0))
            continue
        start = first
        while start <= last and offsets[start][0] <= start_char:
            start += 1
        end = last
        while end >= first and offsets[end][1] >= end_char:
            end -= 1
        positions.append((start - 1, end + 1))
    return positions


def test_question_answering_windows(trio, sample_lines):
    """The question-answering recipe with a document stride: windows, offsets and answer positions."""
    slow, fast, hf = trio
    contexts = [" ".join(sample_lines[i : i + 6]) for i in range(0, 60, 6)]
    questions = [" ".join(line.split()[:3]) + "?" for line in sample_lines[200:210]]
    answers = [context.split()[len(context.split()) // 2] for context in contexts]
    starts = [context.index(answer) for context, answer in zip(contexts, answers, strict=True)]
    ends = [start + len(answer) for start, answer in zip(starts, answers, strict=True)]
    call = dict(truncation="only_second", max_length=64, stride=16, return_overflowing_tokens=True,
                return_offsets_mapping=True, padding="max_length")  # fmt: skip
    theirs = hf(questions, contexts, **call)
    assert len(theirs["input_ids"]) > len(contexts)  # the contexts really overflow
    want = _answer_positions(theirs, starts, ends)
    assert any(position != (0, 0) for position in want)
    for ours in (slow, fast):
        encoding = ours(questions, contexts, **call)
        assert_same(encoding, theirs)
        assert _answer_positions(encoding, starts, ends) == want
        tensors = ours(questions, contexts, return_tensors="np", **call)
        np.testing.assert_array_equal(tensors["input_ids"], np.array(theirs["input_ids"]))
        np.testing.assert_array_equal(tensors["offset_mapping"], np.array(theirs["offset_mapping"]))
        np.testing.assert_array_equal(tensors["overflow_to_sample_mapping"], theirs["overflow_to_sample_mapping"])


def test_single_text_with_overflow_stays_a_batch(trio):
    text = "one two three four five six seven eight nine ten eleven twelve"
    check_windows(trio, text, truncation=True, max_length=8, stride=2, return_overflowing_tokens=True, **RETURN_ALL)
    slow, fast, _ = trio
    for ours in (slow, fast):
        encoding = ours(text, truncation=True, max_length=8, stride=2, return_overflowing_tokens=True)
        assert len(encoding["input_ids"]) > 1 and set(encoding["overflow_to_sample_mapping"]) == {0}


def test_budget_of_zero_gives_an_empty_window_then_the_text(trio):
    check_windows(trio, ["a b c d", "e"], truncation=True, max_length=2, return_overflowing_tokens=True)


@pytest.mark.parametrize("ours_index", [0, 1])
def test_stride_too_large_is_a_clear_error(trio, ours_index):
    ours = trio[ours_index]
    text = "one two three four five six seven eight nine ten"
    with pytest.raises(ValueError, match=r"stride \(6\) must be smaller"):
        ours(text, truncation=True, max_length=8, stride=6, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="stride must be >= 0"):
        ours(text, truncation=True, max_length=8, stride=-1)
    assert ours("short", truncation=True, max_length=8, stride=6)["input_ids"]  # nothing to cut: no error


@pytest.mark.parametrize("stride_row_first", [True, False])
def test_first_failing_input_names_the_error(spm_model, stride_row_first):
    """A batch with one input whose window would not exceed the stride and one whose text is too short to
    cut: the error is the first failing input's, as Hugging Face's tokenizer gives it one input at a time."""
    trio = _sided(spm_model, "right")
    count = lambda text: len(trio[2](text, add_special_tokens=False)["input_ids"])  # noqa: E731
    long_first, short_second = "the quick brown fox jumps over the lazy dog " * 4, "hello world"
    stride = 2
    max_length = 3 + count(short_second) + stride  # only_first keeps exactly `stride` tokens of long_first
    short_first, long_second = "a", "the lazy dog sleeps all day long " * 3
    assert count(long_second) >= max_length  # leaves no room for short_first
    rows = [(long_first, short_second), (short_first, long_second)]
    if not stride_row_first:
        rows.reverse()
    firsts, seconds = [a for a, _ in rows], [b for _, b in rows]
    call = dict(truncation="only_first", max_length=max_length, stride=stride, return_overflowing_tokens=True)
    with _sequential():
        expected = _outcome(trio[2], firsts, seconds, **call)
    assert expected == ("stride" if stride_row_first else "too short")
    check_windows(trio, firsts, seconds, **call)
