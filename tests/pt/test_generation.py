"""RemBertForCausalLM.generate: the cache, left padding, sampling, beam search, penalties, stopping and argument
checks, each against Hugging Face's generate (transformers 4.x, the oracle) or a recomputation without a cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import transformers

from rembert_pt import RemBertForCausalLM, RemBertModel, internals
from rembert_pt.generation import CertifiedArgmax, GenerationMixin
from rembert_spec.generation import GenerationError, prompt_positions
from rembert_spec.testing import write_random_checkpoint
from rembert_tokenize import RemBertTokenizerFast
from rembert_tokenize.testing import train_sentencepiece
from tests.conftest import tiny_config

transformers.logging.set_verbosity_error()

# Wider weights than the default 0.02 spread the logits: greedy continuations vary from token to token, and the
# scores a step compares lie far apart compared with float rounding (the smallest top-2 gap of a step is ~1e-2,
# the two implementations' logits differ by ~1e-6), so comparing tokens with Hugging Face's is meaningful.
DECODER = dict(is_decoder=True, initializer_range=0.2)
PROMPTS = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 0, 11, 12, 13], [0, 14, 3, 2, 1, 15]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]])


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("decoder")
    write_random_checkpoint(directory, tiny_config(**DECODER), "causal_lm", seed=3, noise=0.1)
    return directory


@pytest.fixture(scope="module")
def model(decoder_dir):
    return RemBertForCausalLM.from_pretrained(decoder_dir)


@pytest.fixture(scope="module")
def theirs(decoder_dir):
    return transformers.RemBertForCausalLM.from_pretrained(decoder_dir, is_decoder=True).eval()


@pytest.fixture(scope="module")
def free(model):
    """Greedy continuations that never stop: where the test's end-of-sequence ids come from."""
    return model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[])[:, 6:]


def recomputed_greedy(model, input_ids, attention_mask, steps, **forward_kwargs) -> torch.Tensor:
    """Greedy decoding the slow way: a full forward pass over everything so far at every step, no cache."""
    ids, mask = input_ids, attention_mask
    with torch.no_grad():
        for _ in range(steps):
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=torch.as_tensor(prompt_positions(mask.numpy())),
                use_cache=False,
                **forward_kwargs,
            ).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids


def assert_same_as_hugging_face(model, theirs, *args, **kwargs):
    """generate(*args, **kwargs) with return_dict_in_generate and output_scores on both sides: the same tokens,
    the same beams, scores of the same shapes within 1e-5. Returns ours."""
    kwargs = dict(return_dict_in_generate=True, output_scores=True, **kwargs)
    ours = model.generate(*args, **kwargs)
    with torch.no_grad():
        reference = theirs.generate(*args, **kwargs)
    assert torch.equal(ours.sequences, reference.sequences), f"\nours   {ours.sequences}\ntheirs {reference.sequences}"
    assert len(ours.scores) == len(reference.scores)
    for mine, theirs_step in zip(ours.scores, reference.scores, strict=True):
        assert mine.shape == theirs_step.shape and mine.dtype == theirs_step.dtype
        torch.testing.assert_close(mine, theirs_step, rtol=0, atol=1e-5)
    if reference.get("sequences_scores") is not None:
        # 1e-5, or one float32 step where length_penalty < 0 makes scores large (at 150 the step is 1.5e-5).
        torch.testing.assert_close(ours.sequences_scores, reference.sequences_scores, rtol=2e-7, atol=1e-5)
        assert torch.equal(ours.beam_indices, reference.beam_indices)
        assert ours.sequences_scores.dtype == reference.sequences_scores.dtype
    return ours


def test_model_has_generate():
    assert issubclass(RemBertForCausalLM, GenerationMixin)


# -- the cache and left padding ------------------------------------------------------------------------------


@pytest.mark.parametrize("unpad", [True, False])
def test_cached_greedy_equals_recomputation_without_cache(decoder_dir, unpad):
    model = RemBertForCausalLM.from_pretrained(decoder_dir, unpad=unpad)
    out = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[])
    assert out.shape == (3, 18)
    assert torch.equal(out[:, :6], PROMPTS)
    assert torch.equal(out, recomputed_greedy(model, PROMPTS, MASK, 12))
    assert all(len(set(row.tolist())) > 3 for row in out[:, 6:]), "a degenerate model would make this test weak"
    assert torch.equal(
        out, model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[], use_cache=False)
    )


def test_left_padded_batch_continues_each_row_as_alone(model):
    batch = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=10, eos_token_id=[])
    for row in range(len(PROMPTS)):
        alone = PROMPTS[row][MASK[row].bool()][None]
        assert torch.equal(
            batch[row, 6:], model.generate(alone, max_new_tokens=10, eos_token_id=[])[0, alone.shape[1] :]
        )


def test_int32_prompts_keep_their_dtype(model):
    out = model.generate(PROMPTS.int(), attention_mask=MASK.bool(), max_new_tokens=3)
    assert out.dtype == torch.int32
    assert torch.equal(out.long(), model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=3))


def test_greedy_uses_the_certified_argmax_and_gives_the_float32_tokens(decoder_dir, model):
    plain = RemBertForCausalLM.from_pretrained(decoder_dir)
    internals.DISABLED.add("tensor_version")  # CertifiedArgmax.applies is then False: float32 logits, argmax
    try:
        assert not CertifiedArgmax.applies(plain.cls.predictions.decoder)
        expected = plain.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[])
    finally:
        internals.DISABLED.discard("tensor_version")
    out = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[])
    assert isinstance(model._certified_argmax, CertifiedArgmax)
    assert torch.equal(out, expected)


# -- Hugging Face's generate: the oracle ---------------------------------------------------------------------


@pytest.mark.parametrize("padded", [False, True])
def test_greedy_equals_hugging_face(model, theirs, free, padded):
    eos = int(free[1, 2])  # ends row 1 early, so stopping and padding are compared too
    prompts, mask = (PROMPTS, MASK) if padded else (PROMPTS[:, 3:], torch.ones_like(PROMPTS[:, 3:]))
    ours = assert_same_as_hugging_face(
        model, theirs, prompts, attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=98
    )
    assert (ours.sequences == 98).any(), "a row should have ended early"


# Each case: the arguments, and what the eos ids are (indices into the free continuations `free`).
BEAM_CASES = {
    "2 beams": dict(num_beams=2),
    "3 beams, early_stopping": dict(num_beams=3, early_stopping=True),
    "3 beams, never, length_penalty 2": dict(num_beams=3, early_stopping="never", length_penalty=2.0),
    "4 beams, length_penalty 0.5, 2 returned": dict(num_beams=4, length_penalty=0.5, num_return_sequences=2),
    "4 beams, never, length_penalty -1, 4 returned": dict(
        num_beams=4, early_stopping="never", length_penalty=-1.0, num_return_sequences=4
    ),
    "3 beams, early_stopping, no length penalty, 3 returned": dict(
        num_beams=3, early_stopping=True, length_penalty=0.0, num_return_sequences=3
    ),
    "2 beams, penalties": dict(num_beams=2, repetition_penalty=1.3, no_repeat_ngram_size=2),
    "3 beams, min_new_tokens": dict(num_beams=3, min_new_tokens=6),
    "3 beams, max_length": dict(num_beams=3, max_length=13),
}


@pytest.mark.parametrize("case", list(BEAM_CASES))
def test_beam_search_equals_hugging_face(model, theirs, free, case):
    kwargs = dict(max_new_tokens=12, eos_token_id=[int(free[0, 3]), int(free[2, 5])], pad_token_id=98)
    kwargs.update(BEAM_CASES[case])
    if "max_length" in kwargs:
        del kwargs["max_new_tokens"]
    ours = assert_same_as_hugging_face(model, theirs, PROMPTS, attention_mask=MASK, **kwargs)
    returned = kwargs.get("num_return_sequences", 1)
    assert ours.sequences.shape[0] == ours.sequences_scores.shape[0] == 3 * returned
    assert all(step.shape == (3 * kwargs["num_beams"], 99) for step in ours.scores)
    # Sequences come best first.
    assert bool((ours.sequences_scores.view(3, returned).diff(dim=1) <= 0).all())


def test_beam_search_ends_at_either_of_two_eos_ids_and_fills_like_hugging_face(model, theirs, free):
    eos = [int(free[1, 1]), int(free[0, 4])]
    ours = assert_same_as_hugging_face(
        model, theirs, PROMPTS, attention_mask=MASK, max_new_tokens=10, num_beams=3, eos_token_id=eos, pad_token_id=0
    )
    new = ours.sequences[:, 6:]
    ends = [next((i for i, t in enumerate(row.tolist()) if t in eos), None) for row in new]
    assert any(e is not None and e < new.shape[1] - 1 for e in ends), "some sequence should end early"
    # A pad id of 0 reads as missing in Hugging Face's beam search: shorter sequences are filled with eos[0].
    for row, end in zip(new, ends, strict=True):
        if end is not None:
            assert set(row[end + 1 :].tolist()) <= {eos[0]}


PENALTY_CASES = {
    "repetition_penalty 1.5": dict(repetition_penalty=1.5),
    "repetition_penalty 0.7": dict(repetition_penalty=0.7),
    "no_repeat_ngram_size 1": dict(no_repeat_ngram_size=1),
    "no_repeat_ngram_size 2": dict(no_repeat_ngram_size=2),
    "no_repeat_ngram_size 3": dict(no_repeat_ngram_size=3),
    "min_new_tokens": dict(min_new_tokens=5),
    "min_length": dict(min_length=10),
    "eos list": dict(eos_token_id="two"),
    "max_length": dict(max_length=15),
    "no cache": dict(use_cache=False, repetition_penalty=1.2),
}


@pytest.mark.parametrize("case", list(PENALTY_CASES))
def test_penalties_and_lengths_equal_hugging_face(model, theirs, free, case):
    kwargs = dict(max_new_tokens=12, eos_token_id=int(free[1, 2]), pad_token_id=98, output_logits=True)
    kwargs.update(PENALTY_CASES[case])
    if kwargs["eos_token_id"] == "two":
        kwargs["eos_token_id"] = [int(free[0, 5]), int(free[2, 3])]
    if "max_length" in kwargs:
        del kwargs["max_new_tokens"]
    ours = assert_same_as_hugging_face(model, theirs, PROMPTS, attention_mask=MASK, **kwargs)
    plain = model.generate(PROMPTS, attention_mask=MASK, **{**kwargs, **dict(repetition_penalty=1.0)})
    if "repetition_penalty" in PENALTY_CASES[case]:
        assert not torch.equal(ours.sequences, plain), "the penalty should change the continuation"
    assert len(ours.logits) == len(ours.scores)


def test_sampling_equals_hugging_face_with_the_same_seed(model, theirs):
    kwargs = dict(
        attention_mask=MASK,
        max_new_tokens=10,
        do_sample=True,
        top_k=20,
        top_p=0.9,
        temperature=0.8,
        num_return_sequences=2,
        eos_token_id=[],
    )
    torch.manual_seed(5)
    ours = model.generate(PROMPTS, **kwargs)
    torch.manual_seed(5)
    with torch.no_grad():
        reference = theirs.generate(PROMPTS, **kwargs)
    assert ours.shape == (6, 16)
    assert torch.equal(ours, reference)
    assert not torch.equal(ours[0::2], ours[1::2]), "the two samples of a prompt should differ"


def test_default_length_is_twenty_new_tokens_within_the_position_embeddings(model, theirs):
    short = PROMPTS[:, 3:]
    assert model.generate(short, eos_token_id=[]).shape == (3, 3 + 20)
    long_prompt = torch.arange(1, 31)[None] % 90 + 5
    out = model.generate(long_prompt, eos_token_id=[])
    with torch.no_grad():
        reference = theirs.generate(long_prompt, eos_token_id=[])
    assert out.shape == reference.shape == (1, 40)  # max_position_embeddings=40
    assert torch.equal(out, reference)


def test_without_attention_mask_padding_is_inferred_from_the_pad_id(model, theirs):
    ours = model.generate(PROMPTS, max_new_tokens=6, eos_token_id=[])
    with torch.no_grad():
        reference = theirs.generate(PROMPTS, max_new_tokens=6, eos_token_id=[])
    assert torch.equal(ours, reference)
    assert torch.equal(ours, model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=6, eos_token_id=[]))


def test_without_input_ids_generation_starts_from_bos(model, theirs):
    ours = model.generate(max_new_tokens=6, bos_token_id=4, eos_token_id=[])
    with torch.no_grad():
        reference = theirs.generate(max_new_tokens=6, bos_token_id=4, eos_token_id=[])
    assert ours.shape == (1, 7) and torch.equal(ours, reference)
    assert torch.equal(ours, model.generate(inputs=torch.tensor([[4]]), max_new_tokens=6, eos_token_id=[]))


def test_token_type_ids_are_used_as_hugging_face_does(model, theirs):
    types = torch.ones_like(PROMPTS)
    kwargs = dict(attention_mask=MASK, max_new_tokens=8, eos_token_id=[])
    ours = model.generate(PROMPTS, token_type_ids=types, **kwargs)
    with torch.no_grad():
        reference = theirs.generate(PROMPTS, token_type_ids=types, **kwargs)
    assert torch.equal(ours, reference)
    assert not torch.equal(ours, model.generate(PROMPTS, **kwargs)), "token types should matter"
    assert torch.equal(ours, model.generate(PROMPTS, token_type_ids=types, use_cache=False, **kwargs))


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    """A sentencepiece tokenizer trained on the shipped text, padding on the left, and a decoder of its size."""
    directory = tmp_path_factory.mktemp("tokenized")
    vocab_file = train_sentencepiece(Path(__file__).parents[2] / "examples" / "data" / "multilingual.txt", directory)
    tokenizer = RemBertTokenizerFast(vocab_file=vocab_file, padding_side="left")
    config = tiny_config(**DECODER, vocab_size=len(tokenizer), eos_token_id=tokenizer.sep_token_id)
    write_random_checkpoint(directory, config, "causal_lm", seed=1, noise=0.1)
    return tokenizer, directory


@pytest.mark.parametrize("options", [dict(), dict(num_beams=3, num_return_sequences=2, max_new_tokens=8)])
def test_generate_on_a_tokenizer_batch_as_hugging_face_users_call_it(tokenized, options):
    tokenizer, directory = tokenized
    model = RemBertForCausalLM.from_pretrained(directory)
    reference_model = transformers.RemBertForCausalLM.from_pretrained(directory, is_decoder=True).eval()
    texts = ["The quick brown fox", "Кошка спит на диване весь день", "我们去市场"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask"}
    ours = model.generate(**batch, **options)
    with torch.no_grad():
        reference = reference_model.generate(**batch, **options)
    assert torch.equal(ours, reference)
    assert len(tokenizer.batch_decode(ours[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)) == len(ours)


# -- sampling ------------------------------------------------------------------------------------------------


def test_top_k_1_and_a_tiny_top_p_sample_the_greedy_tokens(model):
    greedy = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=8, eos_token_id=[])
    top_k = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=8, eos_token_id=[], do_sample=True, top_k=1)
    top_p = model.generate(
        PROMPTS, attention_mask=MASK, max_new_tokens=8, eos_token_id=[], do_sample=True, top_p=1e-6, temperature=3.0
    )
    assert torch.equal(top_k, greedy) and torch.equal(top_p, greedy)


def test_sampling_with_a_seed_is_reproducible(model):
    def sample(**kwargs):
        return model.generate(
            PROMPTS, attention_mask=MASK, max_new_tokens=10, do_sample=True, temperature=2.0, eos_token_id=[], **kwargs
        )

    first = sample(seed=7)
    assert torch.equal(first, sample(seed=7))
    assert torch.equal(first, sample(generator=torch.Generator().manual_seed(7)))
    others = [sample(seed=s) for s in range(3)]
    assert any(not torch.equal(first, other) for other in others), "different seeds should give different samples"
    assert not torch.equal(first, model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=10, eos_token_id=[]))


def test_top_k_samples_only_among_the_k_most_likely_tokens(model):
    out = model.generate(
        PROMPTS,
        attention_mask=MASK,
        max_new_tokens=10,
        do_sample=True,
        top_k=3,
        temperature=5.0,
        seed=0,
        eos_token_id=[],
    )
    mask = torch.cat([MASK, torch.ones(3, 10, dtype=MASK.dtype)], dim=1)
    with torch.no_grad():
        logits = model(
            input_ids=out, attention_mask=mask, position_ids=torch.as_tensor(prompt_positions(mask.numpy()))
        ).logits
    top3 = logits[:, 5:-1].topk(3, dim=-1).indices  # the prediction for new token t is made at position t - 1
    chosen = out[:, 6:, None]
    assert bool((top3 == chosen).any(-1).all())
    assert bool((top3[..., 0] != chosen[..., 0]).any()), "with temperature 5 some draws should not be the argmax"


# -- stopping ------------------------------------------------------------------------------------------------


def test_eos_ends_a_row_and_pads_it(model, free):
    eos = int(free[0, 1])  # row 0 produces it at its second new token
    assert eos not in free[0, :1].tolist()
    pad = 98
    out = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=eos, pad_token_id=pad)[:, 6:]
    steps = out.shape[1]
    for row in range(3):
        hits = (free[row] == eos).nonzero().flatten().tolist()
        end = hits[0] + 1 if hits else 12
        expected = torch.cat([free[row, :end], torch.full((max(steps - end, 0),), pad)])[:steps]
        assert torch.equal(out[row], expected)
    # Decoding stops once every row has ended.
    last_end = max(((free[r] == eos).nonzero().flatten().tolist() or [11])[0] + 1 for r in range(3))
    assert steps == last_end


def test_eos_defaults_to_the_config(decoder_dir):
    model = RemBertForCausalLM.from_pretrained(decoder_dir, eos_token_id=None)
    free = model.generate(PROMPTS[:1], max_new_tokens=8)[0, 6:].tolist()
    model = RemBertForCausalLM.from_pretrained(decoder_dir, eos_token_id=free[1])
    assert model.generate(PROMPTS[:1], max_new_tokens=8)[0, 6:].tolist() == free[: free.index(free[1]) + 1]


# -- arguments -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(do_sample=True, temperature=0.0), "temperature must be a positive finite number, got 0.0"),
        (dict(do_sample=True, temperature=-1), "temperature must be a positive finite number, got -1"),
        (dict(do_sample=True, temperature=math.nan), "temperature must be a positive finite number, got nan"),
        (dict(do_sample=True, temperature="hot"), "temperature must be a positive finite number, got 'hot'"),
        (dict(do_sample=True, top_p=0.0), "top_p must be a number in (0, 1] or None, got 0.0"),
        (dict(do_sample=True, top_p=1.5), "top_p must be a number in (0, 1] or None, got 1.5"),
        (dict(do_sample=True, top_k=-1), "top_k must be a positive integer, or 0 or None (no top-k filter), got -1"),
        (dict(do_sample=True, top_k=2.5), "top_k must be a positive integer, or 0 or None (no top-k filter), got 2.5"),
        (dict(max_new_tokens=0), "max_new_tokens must be a positive integer, got 0"),
        (dict(max_new_tokens=38), "needs 41 positions, more than max_position_embeddings=40"),
        (dict(max_length=3), "max_length=3 counts the prompt, which already has 3 tokens"),
        (dict(max_length=41), "max_length=41 is more than max_position_embeddings=40"),
        (dict(min_new_tokens=30), "min_new_tokens must be an integer in [0, max_new_tokens=20], got 30"),
        (dict(min_length=24), "min_length must be an integer in [0, 23]"),
        (dict(do_sample=1), "do_sample must be True or False, got 1"),
        (dict(num_beams=0), "num_beams must be a positive integer, got 0"),
        (dict(num_beams=2, num_return_sequences=3), "num_return_sequences must be at most num_beams=2"),
        (dict(num_return_sequences=2), "num_return_sequences=2 needs do_sample=True or num_beams >= 2"),
        (dict(num_beams=2, do_sample=True), "beam sampling (num_beams > 1 with do_sample=True) is not implemented"),
        (dict(early_stopping="sometimes"), "early_stopping must be True, False or \"never\", got 'sometimes'"),
        (dict(length_penalty=math.inf), "length_penalty must be a finite number, got inf"),
        (dict(repetition_penalty=0), "repetition_penalty must be a positive finite number (1.0: no penalty), got 0"),
        (dict(no_repeat_ngram_size=-2), "no_repeat_ngram_size must be a non-negative integer (0: off), got -2"),
        (dict(use_cache="yes"), "use_cache must be True or False, got 'yes'"),
        (dict(eos_token_id=99), "eos_token_id must be a token id in [0, 99) (vocab_size=99), got 99"),
        (dict(eos_token_id=[3, -1]), "eos_token_id must be a token id in [0, 99) (vocab_size=99), got -1"),
        (dict(pad_token_id=100), "pad_token_id must be a token id in [0, 99) (vocab_size=99), got 100"),
        (dict(seed=1.5), "seed must be an integer or None, got 1.5"),
        (dict(seed=1, generator=torch.Generator()), "pass either seed or generator, not both"),
        (dict(generator=3), "generator must be a torch.Generator or None, got int"),
        (dict(attention_mask=torch.tensor([[1, 1, 0]])), "attention_mask row 0 ends with padding"),
        (dict(attention_mask=torch.tensor([[0, 0, 0]])), "attention_mask row 0 has no tokens"),
        (dict(attention_mask=torch.tensor([[1, 1]])), "attention_mask has shape (1, 2) but input_ids needs (1, 3)"),
        (dict(token_type_ids=torch.tensor([[0, 0]])), "token_type_ids has shape (1, 2) but input_ids needs (1, 3)"),
        (dict(token_type_ids=torch.tensor([[0, 1, 2]])), "token_type_ids must be in [0, 2)"),
        (dict(input_ids=torch.tensor([[1, 2, 0]])), "input_ids row 0 ends with pad_token_id=0"),
        (dict(input_ids=torch.tensor([[1.0, 2.0, 3.0]])), "input_ids must hold integer ids"),
        (dict(input_ids=torch.tensor([1, 2, 3])), "input_ids must be [batch, length], got shape (3,)"),
        (dict(input_ids=torch.zeros((1, 0), dtype=torch.long)), "input_ids is empty"),
        (dict(input_ids=torch.tensor([[1, 2, 99]])), "input_ids must be in [0, 99)"),
        (dict(inputs=torch.tensor([[1]])), "pass the prompt once, as input_ids or as inputs, not both"),
        (dict(input_ids=None), "bos_token_id must be a token id in [0, 99) (vocab_size=99), got 312"),
    ],
)
def test_bad_arguments_are_named(model, kwargs, words):
    kwargs = {"input_ids": torch.tensor([[1, 2, 3]]), **kwargs}
    with pytest.raises(ValueError) as error:
        model.generate(**kwargs)
    assert words in str(error.value)


def test_unknown_arguments_are_a_type_error_naming_them(model):
    prompt = torch.tensor([[1, 2, 3]])
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'max_new_token' \(did you mean 'max_new_tokens'"):
        model.generate(prompt, max_new_token=3)
    with pytest.raises(TypeError, match=r"arguments 'foo', num_beam_groups=2 \(a Hugging Face generate option that"):
        model.generate(prompt, foo=1, num_beam_groups=2)
    with pytest.raises(TypeError, match="output_attentions=True"):
        model.generate(prompt, output_attentions=True)
    with pytest.raises(TypeError):
        model.generate(prompt, torch.ones_like(prompt))  # Hugging Face's second positional is generation_config
    # Hugging Face options spelled out at their default value do nothing, as there.
    quiet = model.generate(prompt, max_new_tokens=3, output_attentions=False, num_beam_groups=1, streamer=None)
    assert torch.equal(quiet, model.generate(prompt, max_new_tokens=3))


def test_without_do_sample_the_sampling_arguments_are_ignored_as_hugging_face_does(model, theirs):
    kwargs = dict(attention_mask=MASK, max_new_tokens=5, eos_token_id=[], temperature=0.0, top_k=-3, top_p=7)
    ours = model.generate(PROMPTS, **kwargs)
    with torch.no_grad():
        reference = theirs.generate(PROMPTS, **{**kwargs, "top_k": 50, "top_p": 1.0})  # HF warns about these only
    assert torch.equal(ours, reference)


def test_generate_needs_a_decoder(decoder_dir):
    model = RemBertForCausalLM.from_pretrained(decoder_dir, is_decoder=False)
    with pytest.raises(GenerationError, match="generate needs a decoder: build or load the model with is_decoder=True"):
        model.generate(torch.tensor([[1, 2, 3]]))


# -- encoder-decoder -----------------------------------------------------------------------------------------


def test_decoder_with_cross_attention_generates_from_encoder_states(tmp_path):
    encoder_config = tiny_config(initializer_range=0.2)
    write_random_checkpoint(tmp_path / "enc", encoder_config, "base", seed=1, noise=0.1)
    write_random_checkpoint(
        tmp_path / "dec", tiny_config(**DECODER, add_cross_attention=True), "causal_lm", seed=2, noise=0.1
    )
    encoder = RemBertModel.from_pretrained(tmp_path / "enc")
    decoder = RemBertForCausalLM.from_pretrained(tmp_path / "dec")
    source = torch.tensor([[21, 22, 23, 24, 25], [31, 32, 33, 0, 0]])
    source_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        states = encoder(source, attention_mask=source_mask).last_hidden_state
    start = torch.tensor([[0, 1], [1, 1]])
    start_mask = torch.tensor([[0, 1], [1, 1]])
    cross = dict(encoder_hidden_states=states, encoder_attention_mask=source_mask)
    out = decoder.generate(start, attention_mask=start_mask, max_new_tokens=8, eos_token_id=[], **cross)
    assert torch.equal(out, recomputed_greedy(decoder, start, start_mask, 8, **cross))
    # The source matters: another source gives another continuation.
    other = decoder.generate(
        start, attention_mask=start_mask, max_new_tokens=8, eos_token_id=[], encoder_hidden_states=states.flip(0)
    )
    assert not torch.equal(out, other)
    # Beam search repeats and reorders the cached cross-attention keys and values with the beams: the same as
    # recomputing everything from the encoder's states at every step. (Hugging Face 4.57's generate fails on a
    # RemBERT decoder with cross-attention, so it cannot be the oracle here.)
    kwargs = dict(attention_mask=start_mask, max_new_tokens=6, num_beams=3, num_return_sequences=2, **cross)
    beams = decoder.generate(start, eos_token_id=[], return_dict_in_generate=True, output_scores=True, **kwargs)
    again = decoder.generate(
        start, eos_token_id=[], return_dict_in_generate=True, output_scores=True, use_cache=False, **kwargs
    )
    assert beams.sequences.shape == (4, 8) and torch.equal(beams.sequences, again.sequences)
    torch.testing.assert_close(beams.sequences_scores, again.sequences_scores, rtol=0, atol=1e-5)


# -- the certified argmax ------------------------------------------------------------------------------------


def test_certified_argmax_equals_the_float32_argmax():
    torch.manual_seed(0)
    decoder = torch.nn.Linear(64, 5000)
    argmax = CertifiedArgmax(decoder)
    x = torch.randn(32, 64) * 3
    assert torch.equal(argmax(decoder, x, []), decoder(x).argmax(-1))
    # Near-ties: the best token's row duplicated with a difference far below bfloat16's resolution.
    with torch.no_grad():
        best = decoder(x[:1]).argmax().item()
        decoder.weight[7] = decoder.weight[best]
        decoder.bias[7] = decoder.bias[best] + 1e-5
    assert not argmax.fits(decoder)  # the weights changed: the copy must be rebuilt
    argmax = CertifiedArgmax(decoder)
    assert argmax(decoder, x[:1], []).item() == decoder(x[:1]).argmax().item() == 7
    assert argmax(decoder, x[:1], [7]).item() == best  # a banned token is never chosen
