"""TFRemBertForCausalLM.generate: the cache, left padding, sampling, beam search, stopping and argument checks,
against Hugging Face's TF generate where it has the option (greedy decoding and its penalties, on prompts without
padding: its TF RemBERT does not derive positions from the attention mask) or a recomputation without a cache.
Beam search and left-padded batches are compared with PyTorch (tests/equivalence), whose oracle is Hugging Face's
PyTorch generate (tests/pt)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import transformers

from rembert_spec.generation import GenerationError, prompt_positions
from rembert_spec.testing import write_random_checkpoint
from rembert_tf import TFRemBertForCausalLM, TFRemBertModel
from rembert_tf.generation import TFGenerationMixin
from tests.conftest import tiny_config

transformers.logging.set_verbosity_error()

DECODER = dict(is_decoder=True, initializer_range=0.2)  # spread logits: varied continuations, no near-ties
PROMPTS = np.array([[5, 6, 7, 8, 9, 10], [0, 0, 0, 11, 12, 13], [0, 14, 3, 2, 1, 15]], np.int32)
MASK = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]], np.int32)
UNPADDED = np.array([[5, 6, 7, 8, 9, 10], [4, 20, 30, 11, 12, 13], [9, 14, 3, 2, 1, 15]], np.int32)


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("decoder")
    write_random_checkpoint(directory, tiny_config(**DECODER), "causal_lm", seed=3, noise=0.1)
    return directory


@pytest.fixture(scope="module")
def model(decoder_dir):
    return TFRemBertForCausalLM.from_pretrained(decoder_dir)


def recomputed_greedy(model, input_ids, attention_mask, steps, **forward_kwargs) -> np.ndarray:
    """Greedy decoding the slow way: a full forward pass over everything so far at every step, no cache."""
    ids, mask = tf.constant(input_ids), tf.constant(attention_mask)
    for _ in range(steps):
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=prompt_positions(mask.numpy()),
            use_cache=False,
            **forward_kwargs,
        ).logits
        ids = tf.concat([ids, tf.cast(tf.argmax(logits[:, -1], -1), ids.dtype)[:, None]], axis=1)
        mask = tf.concat([mask, tf.ones_like(mask[:, :1])], axis=1)
    return ids.numpy()


def test_model_has_generate():
    assert issubclass(TFRemBertForCausalLM, TFGenerationMixin)


def test_cached_greedy_equals_recomputation_without_cache(model):
    out = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=8, eos_token_id=[])
    assert out.shape == (3, 14) and out.dtype == tf.int32
    np.testing.assert_array_equal(out[:, :6], PROMPTS)
    np.testing.assert_array_equal(out, recomputed_greedy(model, PROMPTS, MASK, 8))
    assert all(len(set(row.tolist())) > 3 for row in out.numpy()[:, 6:]), "a degenerate model makes this test weak"


def test_left_padded_batch_continues_each_row_as_alone(model):
    batch = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=6, eos_token_id=[]).numpy()
    for row in range(len(PROMPTS)):
        alone = PROMPTS[row][MASK[row] == 1][None]
        single = model.generate(alone, max_new_tokens=6, eos_token_id=[]).numpy()
        np.testing.assert_array_equal(batch[row, 6:], single[0, alone.shape[1] :])


def test_beam_search_with_and_without_the_cache(model):
    kwargs = dict(attention_mask=MASK, max_new_tokens=8, num_beams=3, num_return_sequences=2, eos_token_id=[83, 47])
    kwargs.update(return_dict_in_generate=True, output_scores=True)
    cached, recomputed = model.generate(PROMPTS, **kwargs), model.generate(PROMPTS, use_cache=False, **kwargs)
    assert cached.sequences.shape[0] == cached.sequences_scores.shape[0] == 6
    assert all(step.shape == (9, 99) for step in cached.scores)
    np.testing.assert_array_equal(cached.sequences, recomputed.sequences)
    np.testing.assert_allclose(cached.sequences_scores, recomputed.sequences_scores, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(cached.beam_indices, recomputed.beam_indices)


# -- Hugging Face's TF generate: the oracle where it has the option ------------------------------------------


@pytest.fixture(scope="module")
def theirs(decoder_dir):
    return transformers.TFRemBertForCausalLM.from_pretrained(decoder_dir, is_decoder=True, from_pt=True)


CASES = {
    "greedy": dict(),
    "penalties, eos list": dict(repetition_penalty=1.5, no_repeat_ngram_size=2, eos_token_id="two"),
    "min_length": dict(min_length=13),  # Hugging Face's TF min_length takes one eos id
    "max_length": dict(max_length=15),
}


@pytest.mark.parametrize("case", list(CASES))
def test_greedy_and_penalties_equal_hugging_face_tf(model, theirs, case):
    free = model.generate(UNPADDED, max_new_tokens=12, eos_token_id=[]).numpy()[:, 6:]
    kwargs = dict(max_new_tokens=12, eos_token_id=int(free[1, 2]), pad_token_id=98)
    kwargs.update(CASES[case], return_dict_in_generate=True, output_scores=True)
    if kwargs["eos_token_id"] == "two":
        kwargs["eos_token_id"] = [int(free[0, 5]), int(free[2, 3])]
    if "max_length" in kwargs:
        del kwargs["max_new_tokens"]
    ours = model.generate(UNPADDED, **kwargs)
    reference = theirs.generate(tf.constant(UNPADDED), **kwargs)
    np.testing.assert_array_equal(ours.sequences, reference.sequences)
    assert ours.sequences.dtype == reference.sequences.dtype
    assert len(ours.scores) == len(reference.scores)
    for mine, theirs_step in zip(ours.scores, reference.scores, strict=True):
        np.testing.assert_allclose(mine, theirs_step, rtol=0, atol=1e-5)


# -- sampling and stopping -----------------------------------------------------------------------------------


def test_sampling_with_a_seed_is_reproducible_and_top_k_1_is_greedy(model):
    def sample(**kwargs):
        return model.generate(
            PROMPTS, attention_mask=MASK, max_new_tokens=6, do_sample=True, eos_token_id=[], **kwargs
        ).numpy()

    first = sample(seed=7, temperature=2.0)
    np.testing.assert_array_equal(first, sample(seed=7, temperature=2.0))
    np.testing.assert_array_equal(first, sample(generator=tf.random.Generator.from_seed(7), temperature=2.0))
    assert any(not np.array_equal(first, sample(seed=s, temperature=2.0)) for s in range(3))
    greedy = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=6, eos_token_id=[]).numpy()
    assert not np.array_equal(first, greedy)
    np.testing.assert_array_equal(sample(seed=3, top_k=1), greedy)
    np.testing.assert_array_equal(sample(seed=3, top_p=1e-6, temperature=3.0), greedy)
    several = sample(seed=3, num_return_sequences=2, temperature=2.0)
    assert several.shape == (6, 12) and not np.array_equal(several[0::2], several[1::2])


def test_eos_ends_a_row_and_pads_it(model):
    free = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=8, eos_token_id=[]).numpy()[:, 6:]
    eos = int(free[0, 1])
    assert eos not in free[0, :1].tolist()
    out = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=8, eos_token_id=eos, pad_token_id=98)
    out = out.numpy()[:, 6:]
    ends = [(np.flatnonzero(free[r] == eos).tolist() or [7])[0] + 1 for r in range(3)]
    assert out.shape[1] == max(ends)
    for row, end in enumerate(ends):
        np.testing.assert_array_equal(out[row], np.concatenate([free[row, :end], np.full(out.shape[1] - end, 98)]))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(do_sample=True, temperature=0.0), "temperature must be a positive finite number, got 0.0"),
        (dict(do_sample=True, top_p=1.5), "top_p must be a number in (0, 1] or None, got 1.5"),
        (dict(do_sample=True, top_k=-1), "top_k must be a positive integer, or 0 or None (no top-k filter), got -1"),
        (dict(max_new_tokens=0), "max_new_tokens must be a positive integer, got 0"),
        (dict(num_beams=2, num_return_sequences=3), "num_return_sequences must be at most num_beams=2"),
        (dict(eos_token_id=99), "eos_token_id must be a token id in [0, 99) (vocab_size=99), got 99"),
        (dict(seed=1, generator=tf.random.Generator.from_seed(1)), "pass either seed or generator, not both"),
        (dict(generator=3), "generator must be a tf.random.Generator or None, got int"),
        (dict(attention_mask=np.array([[1, 1, 0]])), "attention_mask row 0 ends with padding"),
        (dict(attention_mask=np.array([[0, 0, 0]])), "attention_mask row 0 has no tokens"),
        (dict(token_type_ids=np.array([[0.0, 0.0, 0.0]])), "token_type_ids must hold integer ids"),
        (dict(input_ids=np.array([[1.0, 2.0, 3.0]])), "input_ids must hold integer ids"),
        (dict(input_ids=np.array([[1, 2, 99]])), "input_ids must be in [0, 99)"),
    ],
)
def test_bad_arguments_are_named(model, kwargs, words):
    kwargs = {"input_ids": np.array([[1, 2, 3]]), **kwargs}
    with pytest.raises(ValueError) as error:
        model.generate(**kwargs)
    assert words in str(error.value)


def test_unknown_arguments_are_a_type_error(model):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'num_beam' \(did you mean 'num_beams'\?\)"):
        model.generate(np.array([[1, 2, 3]]), num_beam=2)


def test_generate_needs_a_decoder(decoder_dir):
    model = TFRemBertForCausalLM.from_pretrained(decoder_dir, is_decoder=False)
    with pytest.raises(GenerationError, match="is_decoder=True"):
        model.generate(np.array([[1, 2, 3]]))


def test_decoder_with_cross_attention_generates_from_encoder_states(tmp_path):
    write_random_checkpoint(tmp_path / "enc", tiny_config(initializer_range=0.2), "base", seed=1, noise=0.1)
    write_random_checkpoint(
        tmp_path / "dec", tiny_config(**DECODER, add_cross_attention=True), "causal_lm", seed=2, noise=0.1
    )
    encoder = TFRemBertModel.from_pretrained(tmp_path / "enc")
    decoder = TFRemBertForCausalLM.from_pretrained(tmp_path / "dec")
    source_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)
    states = encoder(np.array([[21, 22, 23, 24, 25], [31, 32, 33, 0, 0]], np.int32), attention_mask=source_mask)
    cross = dict(encoder_hidden_states=states.last_hidden_state, encoder_attention_mask=tf.constant(source_mask))
    start, start_mask = np.array([[0, 1], [1, 1]], np.int32), np.array([[0, 1], [1, 1]], np.int32)
    out = decoder.generate(start, attention_mask=start_mask, max_new_tokens=6, eos_token_id=[], **cross)
    np.testing.assert_array_equal(out, recomputed_greedy(decoder, start, start_mask, 6, **cross))
    kwargs = dict(attention_mask=start_mask, max_new_tokens=5, num_beams=2, eos_token_id=[], **cross)
    np.testing.assert_array_equal(decoder.generate(start, **kwargs), decoder.generate(start, use_cache=False, **kwargs))
