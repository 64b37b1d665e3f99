"""Inference is deterministic with every dropout probability above 0 (hidden, attention, classifier): repeated calls
(training left out, or training=False; eagerly and in a tf.function) give the same numbers, Hugging Face's numbers
in eval mode, with and without skipping padding."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

from rembert_spec.weights import HEADS
from tests.realistic import ALL_DROPOUT, realistic_config, realistic_hf_model
from tests.tf.common import batch_for, tf_class, to_numpy
from tests.tf.test_realistic_scale import assert_close_to_reference, reference_outputs

ATOL = 2e-5


def _outputs(model, batch, **flags) -> dict[str, np.ndarray]:
    out = model(**batch, output_hidden_states=True, output_attentions=True, **flags)
    return to_numpy({k: v for k, v in out.items() if k != "past_key_values"})


@pytest.mark.parametrize("head", list(HEADS))
def test_inference_is_deterministic_and_equals_hugging_face_with_every_dropout_on(head, tmp_path):
    config = realistic_config(head, **ALL_DROPOUT)
    theirs = realistic_hf_model(head, config)  # in eval mode
    theirs.save_pretrained(tmp_path)
    batch = batch_for(head, config)
    reference = reference_outputs(theirs, batch)
    for unpad in (True, False):
        ours = tf_class(head).from_pretrained(tmp_path, unpad=unpad)
        graph = tf.function(lambda inputs, model=ours: model(**inputs))
        tensors = {k: tf.constant(v) for k, v in batch.items()}
        eager = [_outputs(ours, batch), _outputs(ours, batch, training=False)]
        compiled = []
        if unpad:  # tracing costs a second or two per model: once is enough
            compiled = [to_numpy({k: v for k, v in graph(tensors).items() if k != "past_key_values"}) for _ in range(2)]
        for first, second in [eager] + ([compiled] if compiled else []):
            for name, value in first.items():
                assert np.array_equal(value, second[name]), f"{name} changed between two calls (unpad={unpad})"
        for name, value in (compiled[0] if compiled else {}).items():  # a graph may round differently, not draw dropout
            np.testing.assert_allclose(value, eager[0][name], atol=ATOL, rtol=0, err_msg=name)
        assert_close_to_reference(reference, eager[0], head, batch, ATOL, unpad)


def test_the_same_model_in_training_draws_dropout():
    """The dropout configuration above is live: with training=True two calls differ."""
    config = realistic_config("sequence_classification", **ALL_DROPOUT)
    model = tf_class("sequence_classification")(config)
    batch = batch_for("sequence_classification", config)
    first, second = (model(**batch, training=True).logits.numpy() for _ in range(2))
    assert not np.array_equal(first, second)
    assert torch.equal(*(torch.from_numpy(model(**batch).logits.numpy()) for _ in range(2)))
