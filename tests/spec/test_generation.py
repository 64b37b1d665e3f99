"""The framework-neutral rules of generate (rembert_spec.generation) against Hugging Face's logits processors and
warpers, which define them: the same scores from the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.generation import logits_process as hf

from rembert_spec.generation import (
    GenerationSettings,
    _top_k,
    banned_ngram_tokens,
    check_unknown_arguments,
    log_softmax,
    process_scores,
    warp_for_sampling,
)

VOCAB = 13  # small, so that random sequences repeat tokens and n-grams


def random_case(seed: int, rows: int = 4, length: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((rows, VOCAB)) * 3).astype(np.float32)
    sequences = rng.integers(0, VOCAB, (rows, length))
    return scores, sequences


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    penalty=st.sampled_from([1.0, 0.6, 1.3, 2.0]),
    ngram=st.integers(0, 4),
    min_new=st.integers(0, 3),
    step=st.integers(0, 3),
    eos=st.lists(st.integers(0, VOCAB - 1), max_size=2, unique=True),
)
def test_process_scores_equals_hugging_face_processors(seed, penalty, ngram, min_new, step, eos):
    scores, sequences = random_case(seed)
    rules = GenerationSettings(
        max_new_tokens=5,
        min_new_tokens=min_new,
        repetition_penalty=penalty,
        no_repeat_ngram_size=ngram,
        eos_token_ids=tuple(eos),
    )
    ours = process_scores(scores, sequences, step, rules)

    processors = []
    if penalty != 1.0:
        processors.append(hf.RepetitionPenaltyLogitsProcessor(penalty))
    if ngram:
        processors.append(hf.NoRepeatNGramLogitsProcessor(ngram))
    if eos and min_new:
        prompt_length = sequences.shape[1] - step  # `step` new tokens so far
        processors.append(hf.MinNewTokensLengthLogitsProcessor(prompt_length, min_new, torch.tensor(eos)))
    reference = torch.from_numpy(scores.copy())
    for processor in processors:
        reference = processor(torch.from_numpy(sequences), reference)
    np.testing.assert_array_equal(np.isinf(ours), torch.isinf(reference).numpy())
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(scores, random_case(seed)[0])  # the input is left alone


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    temperature=st.sampled_from([1.0, 0.5, 1.7]),
    top_k=st.sampled_from([None, 1, 3, VOCAB, VOCAB + 5]),
    top_p=st.sampled_from([None, 0.1, 0.5, 0.9, 0.99]),
)
def test_warp_for_sampling_equals_hugging_face_warpers(seed, temperature, top_k, top_p):
    scores, _ = random_case(seed)
    rules = GenerationSettings(max_new_tokens=1, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p)
    ours = warp_for_sampling(scores, rules)
    reference = torch.from_numpy(scores.copy())
    warpers = [hf.TemperatureLogitsWarper(temperature)]
    if top_k is not None:
        warpers.append(hf.TopKLogitsWarper(top_k))
    if top_p is not None:
        warpers.append(hf.TopPLogitsWarper(top_p))
    for warper in warpers:
        reference = warper(None, reference)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(np.isinf(ours), torch.isinf(reference).numpy())
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-6)
    assert np.isfinite(ours).any(axis=-1).all(), "the most likely token always stays"


def test_log_softmax_equals_torch():
    scores, _ = random_case(0, rows=6)
    np.testing.assert_allclose(log_softmax(scores), torch.from_numpy(scores).log_softmax(-1).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "ids, n, banned",
    [
        ([5, 6, 7, 5, 6], 3, [7]),
        ([5, 6, 5, 6, 5], 2, [6, 6]),
        ([5, 6, 7], 1, [5, 6, 7]),
        ([5, 6], 3, []),  # fewer tokens than an n-gram can start from
        ([5, 6, 7, 8], 3, []),
    ],
)
def test_banned_ngram_tokens(ids, n, banned):
    assert banned_ngram_tokens(ids, n) == banned


def test_top_k_is_sorted_and_breaks_ties_by_the_lower_index():
    values = np.array([[0.5, 2.0, 2.0, -1.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0]], np.float32)
    assert _top_k(values, 3).tolist() == [[4, 1, 2], [0, 1, 2]]
    assert _top_k(values, 5).tolist() == [[4, 1, 2, 0, 3], [0, 1, 2, 3, 4]]


def test_unknown_arguments_name_every_one_with_a_guess():
    known = ["max_new_tokens", "num_beams", "top_k"]
    with pytest.raises(TypeError) as error:
        check_unknown_arguments({"num_beam": 2, "color": "red", "typical_p": 0.5, "typical_p_ok": 1}, known)
    message = str(error.value)
    assert message.startswith("generate() got unexpected keyword arguments 'num_beam' (did you mean 'num_beams'?)")
    assert "'color'," in message and "typical_p=0.5 (a Hugging Face generate option" in message
    # Hugging Face's no-op values pass: False / 1 / None, of the same type.
    check_unknown_arguments({"output_hidden_states": False, "num_beam_groups": 1, "streamer": None}, known)
    with pytest.raises(TypeError, match="num_beam_groups=1.0"):
        check_unknown_arguments({"num_beam_groups": 1.0}, known)
