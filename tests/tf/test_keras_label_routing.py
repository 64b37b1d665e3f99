"""Keras routes each label in the dict of inputs to its own output: a question-answering model's start_positions
score start_logits and its end_positions score end_logits. A continuous metric (cross-entropy, not accuracy, which
a random tiny model often gets equally wrong for both outputs) tells a swap apart; found by `make mutate`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.tf.common import batch_for, config_for, tf_class

OUTPUTS = {"start_logits": "start_positions", "end_logits": "end_positions"}


def _cross_entropy(logits: np.ndarray, positions: np.ndarray) -> float:
    """Hugging Face's QA loss for one output, by hand: positions clamped to the length, the length itself skipped."""
    length = logits.shape[-1]
    positions = np.clip(positions, 0, length)
    keep = positions != length
    rows = logits[keep].astype(np.float64)
    rows = rows - rows.max(-1, keepdims=True)
    log_probs = rows - np.log(np.exp(rows).sum(-1, keepdims=True))
    return float(-log_probs[np.arange(keep.sum()), positions[keep]].mean())


def test_question_answering_labels_in_the_dict_score_their_own_outputs():
    head = "question_answering"
    config = config_for(head)
    keras.utils.set_random_seed(0)
    model = tf_class(head)(config)
    features = batch_for(head, config, batch=4)
    assert (features["start_positions"] != features["end_positions"]).all()  # a swap changes every row
    ce = {output: [keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="ce")] for output in OUTPUTS}
    model.compile("sgd", metrics=ce)
    result = model.evaluate(features, verbose=0, return_dict=True)
    outputs = model(features)  # the positions given: padding computed as the loss computes it
    for output, label in OUTPUTS.items():
        expected = _cross_entropy(outputs[output].numpy(), features[label])
        assert result[f"{output}_ce"] == pytest.approx(expected, abs=1e-5), output
