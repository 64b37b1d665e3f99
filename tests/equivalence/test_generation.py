"""PyTorch and TensorFlow generate the same tokens (and beam scores) from the same weights, whatever the decoding
options, and refuse the same arguments with the same words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import torch

from rembert_pt import RemBertForCausalLM, RemBertModel
from rembert_spec.testing import write_random_checkpoint
from rembert_tf import TFRemBertForCausalLM, TFRemBertModel
from rembert_tokenize import RemBertTokenizerFast
from rembert_tokenize.testing import train_sentencepiece
from tests.conftest import tiny_config

DECODER = dict(is_decoder=True, initializer_range=0.2)  # spread logits: varied continuations, no near-ties
PROMPTS = np.array([[5, 6, 7, 8, 9, 10], [0, 0, 0, 11, 12, 13], [0, 14, 3, 2, 1, 15]], np.int64)
MASK = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]], np.int64)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("decoder")
    write_random_checkpoint(directory, tiny_config(**DECODER), "causal_lm", seed=3, noise=0.1)
    return RemBertForCausalLM.from_pretrained(directory), TFRemBertForCausalLM.from_pretrained(directory)


@pytest.mark.parametrize("padded", [True, False])
def test_pytorch_and_tensorflow_greedy_tokens_are_identical(models, padded):
    pt_model, tf_model = models
    prompts, mask = (PROMPTS, MASK) if padded else (PROMPTS[:, 3:], np.ones_like(PROMPTS[:, 3:]))
    free = pt_model.generate(torch.tensor(prompts), attention_mask=torch.tensor(mask), max_new_tokens=10)
    eos = int(free[0, -4])  # ends row 0 before the last step
    kwargs = dict(max_new_tokens=10, eos_token_id=eos, pad_token_id=98)
    ours_pt = pt_model.generate(torch.tensor(prompts), attention_mask=torch.tensor(mask), **kwargs).numpy()
    ours_tf = tf_model.generate(tf.constant(prompts), attention_mask=tf.constant(mask), **kwargs).numpy()
    np.testing.assert_array_equal(ours_pt, ours_tf)
    assert (ours_pt == 98).any() and len(set(ours_pt[:, prompts.shape[1] :].ravel().tolist())) > 3


OPTIONS = {
    "beam search": dict(num_beams=3),
    "beam search, early_stopping, 2 returned": dict(num_beams=4, early_stopping=True, num_return_sequences=2),
    "beam search, never, length_penalty 2": dict(num_beams=3, early_stopping="never", length_penalty=2.0),
    "beam search with penalties": dict(num_beams=2, repetition_penalty=1.3, no_repeat_ngram_size=2, min_new_tokens=4),
    "penalties": dict(repetition_penalty=1.5, no_repeat_ngram_size=2),
    "min_new_tokens, eos list": dict(min_new_tokens=5, eos_token_id="two"),
    "max_length, no cache": dict(max_length=14, use_cache=False),
}


@pytest.fixture(scope="module")
def free(models):
    """Greedy continuations that never stop: where the tests' end-of-sequence ids come from."""
    return models[0].generate(torch.tensor(PROMPTS), attention_mask=torch.tensor(MASK), max_new_tokens=10)[:, 6:]


@pytest.mark.parametrize("case", list(OPTIONS))
def test_pytorch_and_tensorflow_decode_identically_with_every_option(models, free, case):
    pt_model, tf_model = models
    kwargs = dict(max_new_tokens=10, eos_token_id=int(free[0, 2]), pad_token_id=98)
    kwargs.update(OPTIONS[case], return_dict_in_generate=True, output_scores=True, output_logits=True)
    if kwargs["eos_token_id"] == "two":
        kwargs["eos_token_id"] = [int(free[1, 3]), int(free[2, 4])]
    if "max_length" in kwargs:
        del kwargs["max_new_tokens"]
    ours_pt = pt_model.generate(torch.tensor(PROMPTS), attention_mask=torch.tensor(MASK), **kwargs)
    ours_tf = tf_model.generate(tf.constant(PROMPTS), attention_mask=tf.constant(MASK), **kwargs)
    assert set(ours_pt) == set(ours_tf)
    np.testing.assert_array_equal(ours_pt.sequences.numpy(), ours_tf.sequences.numpy())
    for field in ("scores", "logits"):
        assert len(ours_pt[field]) == len(ours_tf[field])
        for pt_step, tf_step in zip(ours_pt[field], ours_tf[field], strict=True):
            np.testing.assert_allclose(pt_step.numpy(), tf_step.numpy(), rtol=0, atol=1e-5)
    if "num_beams" in kwargs:
        np.testing.assert_allclose(ours_pt.sequences_scores.numpy(), ours_tf.sequences_scores.numpy(), atol=1e-5)
        np.testing.assert_array_equal(ours_pt.beam_indices.numpy(), ours_tf.beam_indices.numpy())


def test_tokenizer_batches_generate_identically(tmp_path):
    vocab_file = train_sentencepiece(Path(__file__).parents[2] / "examples" / "data" / "multilingual.txt", tmp_path)
    tokenizer = RemBertTokenizerFast(vocab_file=vocab_file, padding_side="left")
    config = tiny_config(**DECODER, vocab_size=len(tokenizer), eos_token_id=tokenizer.sep_token_id)
    write_random_checkpoint(tmp_path, config, "causal_lm", seed=1, noise=0.1)
    pt_model, tf_model = RemBertForCausalLM.from_pretrained(tmp_path), TFRemBertForCausalLM.from_pretrained(tmp_path)
    texts = ["Кошка спит на диване весь день", "The quick brown fox", "我们去市场"]
    for options in (dict(), dict(num_beams=2, max_new_tokens=6)):
        ours_pt = pt_model.generate(**tokenizer(texts, padding=True, return_tensors="pt"), **options)
        ours_tf = tf_model.generate(**tokenizer(texts, padding=True, return_tensors="tf"), **options)
        np.testing.assert_array_equal(ours_pt.numpy(), ours_tf.numpy())
    # Prompt ids as the forward takes them: int32 kept (the sequences come back in the prompt's dtype), 8- and
    # 16-bit ids refused in both frameworks with the forward's message.
    prompt = np.array([[2, 135, 212, 3]])
    expected = pt_model.generate(torch.tensor(prompt), max_new_tokens=6).numpy()
    ours_pt = pt_model.generate(torch.tensor(prompt, dtype=torch.int32), max_new_tokens=6).numpy()
    ours_tf = tf_model.generate(tf.constant(prompt, dtype=tf.int32), max_new_tokens=6).numpy()
    assert ours_pt.dtype == ours_tf.dtype == np.int32
    np.testing.assert_array_equal(ours_pt, expected)
    np.testing.assert_array_equal(ours_tf, expected)
    for dtype in (np.uint8, np.int16):
        narrow = prompt.astype(dtype)
        with pytest.raises(ValueError, match=f"input_ids must be int32 or int64, got {dtype.__name__}"):
            pt_model.generate(torch.tensor(narrow))
        with pytest.raises(ValueError, match=f"input_ids must be int32 or int64, got {dtype.__name__}"):
            tf_model.generate(tf.constant(narrow))


def test_encoder_decoder_greedy_tokens_are_identical(tmp_path):
    write_random_checkpoint(tmp_path / "enc", tiny_config(initializer_range=0.2), "base", seed=1, noise=0.1)
    config = tiny_config(**DECODER, add_cross_attention=True)
    write_random_checkpoint(tmp_path / "dec", config, "causal_lm", seed=2, noise=0.1)
    source = np.array([[21, 22, 23, 24, 25], [31, 32, 33, 0, 0]], np.int64)
    source_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int64)
    start, start_mask = np.array([[0, 1], [1, 1]], np.int64), np.array([[0, 1], [1, 1]], np.int64)

    with torch.no_grad():
        states = RemBertModel.from_pretrained(tmp_path / "enc")(
            torch.tensor(source), attention_mask=torch.tensor(source_mask)
        ).last_hidden_state
    ours_pt = RemBertForCausalLM.from_pretrained(tmp_path / "dec").generate(
        torch.tensor(start),
        attention_mask=torch.tensor(start_mask),
        encoder_hidden_states=states,
        encoder_attention_mask=torch.tensor(source_mask),
        max_new_tokens=8,
        eos_token_id=[],
    )
    states = TFRemBertModel.from_pretrained(tmp_path / "enc")(
        tf.constant(source), attention_mask=tf.constant(source_mask)
    ).last_hidden_state
    ours_tf = TFRemBertForCausalLM.from_pretrained(tmp_path / "dec").generate(
        tf.constant(start),
        attention_mask=tf.constant(start_mask),
        encoder_hidden_states=states,
        encoder_attention_mask=tf.constant(source_mask),
        max_new_tokens=8,
        eos_token_id=[],
    )
    np.testing.assert_array_equal(ours_pt.numpy(), ours_tf.numpy())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(do_sample=True, temperature=-0.5),
        dict(do_sample=True, top_p=2),
        dict(do_sample=True, top_k=-1),
        dict(max_new_tokens=50),
        dict(eos_token_id="</s>"),
        dict(attention_mask=[[1, 1, 0]]),
        dict(num_beams=3, num_return_sequences=4),
        dict(num_beams=2, do_sample=True),
        dict(max_length=2),
        dict(min_length=50),
        dict(early_stopping="always"),
        dict(repetition_penalty=-1.0),
        dict(no_repeat_ngram_size=1.5),
        dict(return_dict_in_generate=None),
        dict(input_ids=[[1, 2, 0]], attention_mask=None),
    ],
)
def test_both_frameworks_refuse_the_same_arguments_with_the_same_words(models, kwargs):
    messages = []
    for model in models:
        with pytest.raises(ValueError) as error:
            model.generate(**{"input_ids": [[1, 2, 3]], **kwargs})
        messages.append(str(error.value))
    assert messages[0] == messages[1]


def test_both_frameworks_refuse_unknown_arguments_with_the_same_words(models):
    messages = []
    for model in models:
        with pytest.raises(TypeError) as error:
            model.generate([[1, 2, 3]], max_new_token=3, diversity_penalty=0.5)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "'max_new_token' (did you mean 'max_new_tokens'?)" in messages[0] and "diversity_penalty=0.5" in messages[0]
