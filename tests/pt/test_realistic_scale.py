"""PyTorch against Hugging Face where small formula differences show: the activations themselves over [-6, 6], and
every head with weights of realistic magnitude (layer inputs of O(1); see tests/realistic.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.activations import ACT2FN

import rembert_pt
from rembert_pt.modeling import activation
from rembert_spec.weights import HEADS
from tests.pt.test_oracle import assert_same_outputs, batch_for, padded, run
from tests.realistic import (
    ACTIVATION_FORMULAS,
    ACTIVATION_POINTS,
    MIN_ACTIVATION_INPUT,
    largest_activation_input,
    realistic_config,
    realistic_hf_model,
)

ATOL = 2e-5  # float32 noise here is ~3e-6; gelu_new in place of gelu moves hidden states by ~1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["gelu", "gelu_new"])
def test_activation_is_the_reference_formula(name, dtype):
    x = torch.tensor(ACTIVATION_POINTS, dtype=dtype)
    expected = ACTIVATION_FORMULAS[name](ACTIVATION_POINTS)
    np.testing.assert_allclose(activation(name)(x).double().numpy(), expected, atol=1e-6, rtol=0)
    # The formulas are Hugging Face's: its activation of that name computes them too.
    np.testing.assert_allclose(ACT2FN[name](x).double().numpy(), expected, atol=1e-6, rtol=0)


def test_the_two_gelu_formulas_differ_where_real_activations_are():
    """What makes the test above worth having: on [-4, 4] the two differ far beyond any test tolerance."""
    inside = np.abs(ACTIVATION_POINTS) <= 4
    exact, approximate = (ACTIVATION_FORMULAS[name](ACTIVATION_POINTS) for name in ("gelu", "gelu_new"))
    difference = np.abs(exact - approximate)
    assert difference[inside].max() > 1e-4


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new"])
def test_every_activation_of_a_model_follows_hidden_act(hidden_act):
    config = realistic_config("masked_lm", hidden_act=hidden_act)
    model = rembert_pt.RemBertForMaskedLM(config)
    x = torch.tensor(ACTIVATION_POINTS, dtype=torch.float32)
    expected = ACTIVATION_FORMULAS[hidden_act](ACTIVATION_POINTS)
    functions = [layer.intermediate.intermediate_act_fn for layer in model.rembert.encoder.layer]
    functions.append(model.cls.predictions.activation)
    for function in functions:
        np.testing.assert_allclose(function(x).double().numpy(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("head, hidden_act", [(head, "gelu") for head in HEADS] + [("masked_lm", "gelu_new")])
def test_every_head_matches_hugging_face_at_realistic_scale(head, hidden_act, tmp_path):
    config = realistic_config(head, hidden_act=hidden_act)
    theirs = realistic_hf_model(head, config)
    batch = batch_for(head, config)
    assert largest_activation_input(theirs, batch) > MIN_ACTIVATION_INPUT  # the scale this test is about
    theirs.save_pretrained(tmp_path)
    ours = getattr(rembert_pt, HEADS[head].pt_class).from_pretrained(tmp_path)
    explicit = run(ours, batch)
    assert_same_outputs(run(theirs, batch), explicit, head, padded(batch, head, True), atol=ATOL)
    # Without attention probabilities asked for, attention takes its fused path: the same numbers.
    with torch.no_grad():
        fused = ours(**batch)
    for field, value in fused.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(value, explicit[field], atol=ATOL, rtol=0, msg=field)
