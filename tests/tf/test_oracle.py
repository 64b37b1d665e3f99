"""TensorFlow family against Hugging Face transformers 4.x (their TF models run on tf-keras): weight names,
tf_model.h5 in both directions, and the numbers, for every head."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

import rembert_tf
from rembert_spec import weight_spec
from rembert_spec.weights import HEADS
from tests.oracle import hf_config, hf_pt_class, hf_tf_class
from tests.tf.common import batch_for, config_for, max_abs_difference, tf_class, to_numpy

ALL_HEADS = list(HEADS)
ATOL = 1e-5
_POOLED = ("sequence_classification", "multiple_choice")


def oracle_batch(head: str, config, seed: int = 0) -> dict[str, np.ndarray]:
    batch = batch_for(head, config, seed)
    if head == "question_answering":
        batch["start_positions"][2] = 7  # their TF loss neither clamps nor ignores positions past the end
    return batch


def their_model(head: str, config, seed: int = 0):
    """A Hugging Face TF model with every weight perturbed, so LayerNorms and biases count too."""
    model = hf_tf_class(head)(hf_config(config))
    model(model.dummy_inputs)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(weight.numpy() + rng.normal(0.0, 0.02, weight.shape).astype(np.float32))
    return model


def their_loss(head: str, loss: tf.Tensor) -> np.ndarray:
    """Their TF losses are per example for some heads; ours are the mean, like PyTorch's."""
    return np.float32(np.mean(loss.numpy()))


def compare(theirs, ours, head: str, batch: dict, unpad: bool) -> float:
    """Max |difference| over logits, loss, hidden states and attentions; where our model skipped padding
    (unpad), per-token values are compared at real positions and our hidden states must be zero at padding."""
    mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1]).astype(bool)
    skipped = unpad and not (head == "question_answering" and "start_positions" in batch)
    real = mask if skipped else np.ones_like(mask)

    def per_token(x: np.ndarray) -> np.ndarray:
        return x.reshape(real.shape + x.shape[len(real.shape) :] if x.ndim > 2 else real.shape)[real]

    worst = 0.0
    fields = {"base": ["last_hidden_state", "pooler_output"], "question_answering": ["start_logits", "end_logits"]}
    for field in fields.get(head, ["logits"]):
        a, b = to_numpy(theirs[field]), to_numpy(ours[field])
        if field != "pooler_output" and head not in _POOLED:
            a, b = per_token(a), per_token(b)
        worst = max(worst, max_abs_difference(a, b, field))
    if "loss" in ours:
        worst = max(worst, abs(float(their_loss(head, theirs["loss"])) - float(ours["loss"])))
    for a, b in zip(to_numpy(theirs["hidden_states"]), to_numpy(ours["hidden_states"]), strict=True):
        worst = max(worst, max_abs_difference(per_token(a), per_token(b)))
        assert np.all(b.reshape(*real.shape, -1)[~real] == 0)
    for a, b in zip(to_numpy(theirs["attentions"]), to_numpy(ours["attentions"]), strict=True):
        a, b = (np.swapaxes(x, 1, 2).reshape(*real.shape, -1) for x in (a, b))  # rows by query position
        worst = max(worst, max_abs_difference(a[real], b[real]))
    assert worst < ATOL, worst
    return worst


def run(model, batch, **kwargs):
    return model(
        **{k: tf.constant(v) for k, v in batch.items()}, output_hidden_states=True, output_attentions=True, **kwargs
    )


@pytest.mark.parametrize("head", ALL_HEADS)
def test_spec_tf_names_equal_hugging_face_weight_names(head):
    """The spec against the oracle's TF names is tests/spec/test_weights.py; here, our variables against both."""
    config = config_for(head, is_decoder=True, add_cross_attention=True)
    theirs = hf_tf_class(head)(hf_config(config))
    theirs(theirs.dummy_inputs)
    names = {w.name.split("/", 1)[1]: tuple(w.shape) for w in theirs.weights}  # without the model's own scope
    assert names == {e.tf_name: e.tf_shape for e in weight_spec(config, head)}
    ours = tf_class(head)(config)
    assert {k: tuple(v.shape) for k, v in ours.named_variables()} == {
        e.pt_key: e.tf_shape for e in weight_spec(config, head)
    }


@pytest.mark.parametrize("unpad", [False, True])
@pytest.mark.parametrize("head", ALL_HEADS)
def test_hugging_face_tf_h5_loads_and_matches(head, unpad, tmp_path):
    config = config_for(head)
    theirs = their_model(head, config)
    theirs.save_pretrained(tmp_path)
    ours, info = tf_class(head).from_pretrained(tmp_path, output_loading_info=True, unpad=unpad)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    batch = oracle_batch(head, config)
    compare(run(theirs, batch), run(ours, batch), head, batch, unpad)


@pytest.mark.parametrize("head", ALL_HEADS)
def test_our_tf_h5_loads_in_hugging_face_tf_and_matches(head, tmp_path):
    config = config_for(head, hidden_act="gelu_new")
    ours = tf_class(head)(config)
    rng = np.random.default_rng(1)
    for _, variable in ours.named_variables():
        variable.assign(variable.numpy() + rng.normal(0.0, 0.02, variable.shape).astype(np.float32))
    written = ours.save_pretrained(tmp_path)
    assert sorted(p.name for p in written) == ["config.json", "tf_model.h5"]
    theirs, info = hf_tf_class(head).from_pretrained(tmp_path, output_loading_info=True)
    # They list layers, not weights: their classifier dropout holds no weight, so no file can provide it.
    assert [k for k in info["missing_keys"] if not k.startswith("dropout")] == [] and info["unexpected_keys"] == []
    batch = oracle_batch(head, config, seed=1)
    compare(run(theirs, batch), run(ours, batch), head, batch, unpad=True)


@pytest.mark.parametrize("safe", [True, False])
def test_hugging_face_pytorch_checkpoints_load_in_tensorflow(safe, tmp_path):
    """model.safetensors and pytorch_model.bin written by their PyTorch model give their PyTorch numbers."""
    config = config_for("sequence_classification")
    torch.manual_seed(0)
    theirs = hf_pt_class("sequence_classification")(hf_config(config)).eval()
    theirs.save_pretrained(tmp_path, safe_serialization=safe)
    assert (tmp_path / ("model.safetensors" if safe else "pytorch_model.bin")).is_file()
    ours, info = rembert_tf.TFRemBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    batch = oracle_batch("sequence_classification", config)
    with torch.no_grad():
        expected = theirs(**{k: torch.from_numpy(v) for k, v in batch.items()})
    got = ours(**batch)
    assert max_abs_difference(to_numpy(got.logits), to_numpy(expected.logits)) < ATOL
    assert abs(float(got.loss) - float(expected.loss)) < ATOL
