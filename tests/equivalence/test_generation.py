"""PyTorch and TensorFlow generate the same tokens from the same weights, and refuse the same arguments with the
same words."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

from rembert_pt import RemBertForCausalLM, RemBertModel
from rembert_spec.testing import write_random_checkpoint
from rembert_tf import TFRemBertForCausalLM, TFRemBertModel
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
        dict(temperature=-0.5),
        dict(top_p=2),
        dict(top_k=-1),
        dict(max_new_tokens=50),
        dict(eos_token_id="</s>"),
        dict(attention_mask=[[1, 1, 0]]),
    ],
)
def test_both_frameworks_refuse_the_same_arguments_with_the_same_words(models, kwargs):
    messages = []
    for model in models:
        with pytest.raises(ValueError) as error:
            model.generate([[1, 2, 3]], **kwargs)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
