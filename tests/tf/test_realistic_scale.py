"""TensorFlow against Hugging Face where small formula differences show: the activations themselves over [-6, 6],
and every head with weights of realistic magnitude (layer inputs of O(1); see tests/realistic.py).

The reference is Hugging Face's PyTorch model on the same checkpoint (its TF twin computes the same numbers,
tests/tf/test_oracle.py), which is also what a user converting between the frameworks compares with.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch
from transformers.activations_tf import get_tf_activation

from rembert_spec.weights import HEADS
from rembert_tf.modeling import activation
from tests.realistic import (
    ACTIVATION_FORMULAS,
    ACTIVATION_POINTS,
    MIN_ACTIVATION_INPUT,
    largest_activation_input,
    realistic_config,
    realistic_hf_model,
)
from tests.tf.common import batch_for, max_abs_difference, tf_class, to_numpy

ATOL = 2e-5  # float32 noise here is a few 1e-6; gelu_new in place of gelu moves hidden states by ~1e-3
_POOLED = ("sequence_classification", "multiple_choice")


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("name", ["gelu", "gelu_new"])
def test_activation_is_the_reference_formula(name, dtype):
    x = tf.constant(ACTIVATION_POINTS, dtype=dtype)
    expected = ACTIVATION_FORMULAS[name](ACTIVATION_POINTS)
    np.testing.assert_allclose(activation(name)(x).numpy().astype(np.float64), expected, atol=1e-6, rtol=0)
    # The formulas are Hugging Face's (TF) and torch's: their functions of that name compute them too.
    np.testing.assert_allclose(get_tf_activation(name)(x).numpy().astype(np.float64), expected, atol=1e-6, rtol=0)
    torch_function = torch.nn.functional.gelu
    as_torch = torch.tensor(ACTIVATION_POINTS, dtype=torch.float64)
    reference = torch_function(as_torch) if name == "gelu" else torch_function(as_torch, approximate="tanh")
    np.testing.assert_allclose(reference.numpy(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new"])
def test_every_activation_of_a_model_follows_hidden_act(hidden_act):
    config = realistic_config("masked_lm", hidden_act=hidden_act)
    model = tf_class("masked_lm")(config)
    x = tf.constant(ACTIVATION_POINTS, dtype=tf.float32)
    expected = ACTIVATION_FORMULAS[hidden_act](ACTIVATION_POINTS)
    functions = [layer.intermediate.intermediate_act_fn for layer in model.rembert.encoder.layer]
    functions.append(model.cls.predictions.activation)
    for function in functions:
        np.testing.assert_allclose(function(x).numpy().astype(np.float64), expected, atol=1e-6, rtol=0)


def reference_outputs(theirs, batch: dict[str, np.ndarray]) -> dict:
    with torch.no_grad():
        out = theirs(
            **{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True, output_attentions=True
        )
    return to_numpy({k: v for k, v in out.items() if k != "past_key_values"})


def assert_close_to_reference(
    reference: dict, ours: dict, head: str, batch: dict, atol: float, unpad: bool = True
) -> None:
    """Outputs, loss, hidden states and attention rows equal at real positions; with `unpad` our hidden states are
    zero at padding (the model skipped it), theirs are not compared there."""
    real = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1]).astype(bool)
    if head == "question_answering" and "start_positions" in batch:
        real = np.ones_like(real)  # the QA loss needs every position: padding is computed

    def per_token(x: np.ndarray) -> np.ndarray:
        return x.reshape(*real.shape, -1)[real]

    fields = {"base": ["last_hidden_state", "pooler_output"], "question_answering": ["start_logits", "end_logits"]}
    worst = {}
    for field in fields.get(head, ["logits"]):
        a, b = reference[field], ours[field]
        if field != "pooler_output" and head not in _POOLED:
            a, b = per_token(a), per_token(b)
        worst[field] = max_abs_difference(a, b, field)
    if "loss" in reference:
        worst["loss"] = abs(float(reference["loss"]) - float(ours["loss"]))
    for i, (a, b) in enumerate(zip(reference["hidden_states"], ours["hidden_states"], strict=True)):
        worst[f"hidden_states[{i}]"] = max_abs_difference(per_token(a), per_token(b))
        assert not unpad or np.all(b.reshape(*real.shape, -1)[~real] == 0)
    for i, (a, b) in enumerate(zip(reference["attentions"], ours["attentions"], strict=True)):
        a, b = (np.swapaxes(x, 1, 2).reshape(*real.shape, -1) for x in (a, b))  # rows by query position
        worst[f"attentions[{i}]"] = max_abs_difference(a[real], b[real])
    assert max(worst.values()) < atol, worst


@pytest.mark.parametrize("head, hidden_act", [(head, "gelu") for head in HEADS] + [("masked_lm", "gelu_new")])
def test_every_head_matches_hugging_face_at_realistic_scale(head, hidden_act, tmp_path):
    config = realistic_config(head, hidden_act=hidden_act)
    theirs = realistic_hf_model(head, config)
    batch = batch_for(head, config)
    torch_batch = {k: torch.from_numpy(v) for k, v in batch.items()}
    assert largest_activation_input(theirs, torch_batch) > MIN_ACTIVATION_INPUT  # the scale this test is about
    theirs.save_pretrained(tmp_path)
    ours = tf_class(head).from_pretrained(tmp_path)
    got = ours(**batch, output_hidden_states=True, output_attentions=True)
    got = to_numpy({k: v for k, v in got.items() if k != "past_key_values"})
    assert_close_to_reference(reference_outputs(theirs, batch), got, head, batch, ATOL)
