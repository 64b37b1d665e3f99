"""Eval mode is deterministic with every dropout probability above 0 (hidden, attention, classifier): repeated calls
give the same numbers, Hugging Face's numbers in eval mode, on both attention paths (fused, and the one that
returns attention probabilities), with and without skipping padding."""

from __future__ import annotations

import pytest
import torch

import rembert_pt
from rembert_spec.weights import HEADS
from tests.pt.test_oracle import assert_same_outputs, batch_for, padded, run
from tests.realistic import ALL_DROPOUT, realistic_config, realistic_hf_model

ATOL = 2e-5


def _tensors(output) -> dict[str, torch.Tensor]:
    return {k: v for k, v in output.items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("head", list(HEADS))
def test_eval_is_deterministic_and_equals_hugging_face_with_every_dropout_on(head, tmp_path):
    config = realistic_config(head, **ALL_DROPOUT)
    theirs = realistic_hf_model(head, config)
    theirs.save_pretrained(tmp_path)
    batch = batch_for(head, config)
    reference = run(theirs, batch)
    for unpad in (True, False):
        ours = getattr(rembert_pt, HEADS[head].pt_class).from_pretrained(tmp_path, unpad=unpad)  # in eval mode
        with torch.no_grad():
            fused = [_tensors(ours(**batch)) for _ in range(2)]
        explicit = [run(ours, batch) for _ in range(2)]
        for name, value in fused[0].items():
            assert torch.equal(value, fused[1][name]), f"{name} changed between two eval calls (unpad={unpad})"
            torch.testing.assert_close(value, _tensors(explicit[0])[name], atol=ATOL, rtol=0, msg=name)
        for name, value in _tensors(explicit[0]).items():
            assert torch.equal(value, _tensors(explicit[1])[name]), f"{name} changed between two eval calls"
        assert_same_outputs(reference, explicit[0], head, padded(batch, head, unpad), atol=ATOL)


def test_the_same_model_in_training_mode_draws_dropout():
    """The dropout configuration above is live: in training mode two calls differ."""
    config = realistic_config("sequence_classification", **ALL_DROPOUT)
    model = rembert_pt.RemBertForSequenceClassification(config).train()
    batch = batch_for("sequence_classification", config)
    first, second = model(**batch).logits, model(**batch).logits
    assert not torch.equal(first, second)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, model(**batch).logits)
