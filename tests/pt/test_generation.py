"""RemBertForCausalLM.generate: the cache, left padding, sampling, stopping and argument checks, each against a
recomputation (full forward passes without a cache) or against Hugging Face's generate."""

from __future__ import annotations

import math

import pytest
import torch

from rembert_pt import RemBertForCausalLM, RemBertModel
from rembert_pt.generation import GenerationMixin, filter_logits
from rembert_spec.generation import GenerationError, prompt_positions
from rembert_spec.testing import write_random_checkpoint
from tests.conftest import tiny_config

# Wider weights than the default 0.02 spread the logits, so greedy continuations vary from token to token and
# the top two logits of a step are far apart compared with float rounding.
DECODER = dict(is_decoder=True, initializer_range=0.2)
PROMPTS = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 0, 11, 12, 13], [0, 14, 3, 2, 1, 15]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]])


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("decoder")
    write_random_checkpoint(directory, tiny_config(**DECODER), "causal_lm", seed=0, noise=0.1)
    return directory


@pytest.fixture(scope="module")
def model(decoder_dir):
    return RemBertForCausalLM.from_pretrained(decoder_dir)


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


def test_model_has_generate():
    assert issubclass(RemBertForCausalLM, GenerationMixin)


@pytest.mark.parametrize("unpad", [True, False])
def test_cached_greedy_equals_recomputation_without_cache(decoder_dir, unpad):
    model = RemBertForCausalLM.from_pretrained(decoder_dir, unpad=unpad)
    out = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[])
    assert out.shape == (3, 18)
    assert torch.equal(out[:, :6], PROMPTS)
    assert torch.equal(out, recomputed_greedy(model, PROMPTS, MASK, 12))
    assert all(len(set(row.tolist())) > 2 for row in out[:, 6:]), "a degenerate model would make this test weak"


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


def test_filter_logits_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15], [0.9, 0.04, 0.03, 0.03]]))
    kept = filter_logits(logits, top_p=0.8).isfinite()
    # Row 0: 0.5 + 0.3 reaches 0.8, so 0.15 and 0.05 go; row 1: 0.9 alone reaches it.
    assert kept.tolist() == [[True, False, True, False], [True, False, False, False]]
    kept = filter_logits(logits, top_k=2, top_p=0.99).isfinite()
    assert kept.tolist() == [[True, False, True, False], [True, True, False, False]]
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), logits / 2)


def test_eos_ends_a_row_and_pads_it(model):
    free = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[])[:, 6:]
    eos = int(free[0, 2])  # row 0 produces it at its third new token
    assert eos not in free[0, :2].tolist()
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


def test_a_list_of_eos_ids_and_min_new_tokens(model):
    free = model.generate(PROMPTS[:1], max_new_tokens=12, eos_token_id=[])[0, 6:].tolist()
    first, second = free[1], free[3]
    out = model.generate(PROMPTS[:1], max_new_tokens=12, eos_token_id=[second, first])[0, 6:].tolist()
    assert out == free[: free.index(first) + 1]
    # Before min_new_tokens the end-of-sequence ids cannot be produced: the row then runs on.
    late = model.generate(PROMPTS[:1], max_new_tokens=12, eos_token_id=first, min_new_tokens=4)[0, 6:].tolist()
    assert first not in late[:4] and len(late) > free.index(first) + 1


def test_eos_defaults_to_the_config(decoder_dir):
    model = RemBertForCausalLM.from_pretrained(decoder_dir, eos_token_id=None)
    free = model.generate(PROMPTS[:1], max_new_tokens=8)[0, 6:].tolist()
    model = RemBertForCausalLM.from_pretrained(decoder_dir, eos_token_id=free[1])
    assert model.generate(PROMPTS[:1], max_new_tokens=8)[0, 6:].tolist() == free[:2]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(temperature=0.0), "temperature must be a positive finite number, got 0.0"),
        (dict(temperature=-1), "temperature must be a positive finite number, got -1"),
        (dict(temperature=math.nan), "temperature must be a positive finite number, got nan"),
        (dict(temperature="hot"), "temperature must be a positive finite number, got 'hot'"),
        (dict(top_p=0.0), "top_p must be a number in (0, 1] or None, got 0.0"),
        (dict(top_p=1.5), "top_p must be a number in (0, 1] or None, got 1.5"),
        (dict(top_k=0), "top_k must be a positive integer or None (no top-k filter), got 0"),
        (dict(top_k=2.5), "top_k must be a positive integer or None (no top-k filter), got 2.5"),
        (dict(max_new_tokens=0), "max_new_tokens must be a positive integer, got 0"),
        (dict(max_new_tokens=38), "needs 41 positions, more than max_position_embeddings=40"),
        (dict(min_new_tokens=30), "min_new_tokens must be an integer in [0, max_new_tokens=20], got 30"),
        (dict(do_sample=1), "do_sample must be True or False, got 1"),
        (dict(eos_token_id=99), "eos_token_id must be a token id in [0, 99) (vocab_size=99), got 99"),
        (dict(eos_token_id=[3, -1]), "eos_token_id must be a token id in [0, 99) (vocab_size=99), got -1"),
        (dict(pad_token_id=100), "pad_token_id must be a token id in [0, 99) (vocab_size=99), got 100"),
        (dict(seed=1.5), "seed must be an integer or None, got 1.5"),
        (dict(seed=1, generator=torch.Generator()), "pass either seed or generator, not both"),
        (dict(generator=3), "generator must be a torch.Generator or None, got int"),
        (dict(attention_mask=torch.tensor([[1, 1, 0]])), "attention_mask row 0 ends with padding"),
        (dict(attention_mask=torch.tensor([[0, 0, 0]])), "attention_mask row 0 has no tokens"),
        (dict(attention_mask=torch.tensor([[1, 1]])), "attention_mask has shape (1, 2) but input_ids needs (1, 3)"),
        (dict(input_ids=torch.tensor([[1.0, 2.0, 3.0]])), "input_ids must hold integer ids"),
        (dict(input_ids=torch.tensor([1, 2, 3])), "input_ids must be [batch, length], got shape (3,)"),
        (dict(input_ids=torch.zeros((1, 0), dtype=torch.long)), "input_ids is empty"),
        (dict(input_ids=torch.tensor([[1, 2, 99]])), "input_ids must be in [0, 99)"),
    ],
)
def test_bad_arguments_are_named(model, kwargs, words):
    kwargs = {"input_ids": torch.tensor([[1, 2, 3]]), **kwargs}
    with pytest.raises(ValueError) as error:
        model.generate(**kwargs)
    assert words in str(error.value)


def test_generate_needs_a_decoder(decoder_dir):
    model = RemBertForCausalLM.from_pretrained(decoder_dir, is_decoder=False)
    with pytest.raises(GenerationError, match="generate needs a decoder: build or load the model with is_decoder=True"):
        model.generate(torch.tensor([[1, 2, 3]]))


# -- encoder-decoder ----------------------------------------------------------------------------------------


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


# -- Hugging Face --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padded", [False, True])
def test_greedy_equals_hugging_face_generate(decoder_dir, model, padded):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    theirs = transformers.RemBertForCausalLM.from_pretrained(decoder_dir, is_decoder=True).eval()
    free = model.generate(PROMPTS, attention_mask=MASK, max_new_tokens=12, eos_token_id=[])
    eos, pad = int(free[1, 8]), 98  # ends row 1 early, so stopping and padding are compared too
    prompts, mask = (PROMPTS, MASK) if padded else (PROMPTS[:, 3:], torch.ones_like(PROMPTS[:, 3:]))
    settings = dict(attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=pad)
    ours = model.generate(prompts, **settings)
    with torch.no_grad():
        reference = theirs.generate(prompts, do_sample=False, **settings)
    assert torch.equal(ours, reference)
    assert (ours == pad).any(), "a row should have ended early"


def test_certified_argmax_equals_the_float32_argmax():
    from rembert_pt.generation import CertifiedArgmax

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
