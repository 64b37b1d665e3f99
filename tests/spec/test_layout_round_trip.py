"""PyTorch layout -> TensorFlow layout -> PyTorch layout through the spec, with values that show a transpose: every
square weight (query, key, value, attention output, pooler, cross-attention) is far from symmetric, so a transpose
flag flipped for one of them cannot hide behind its shape.

The TensorFlow layout is checked in the file itself, with h5py, against what Hugging Face's TF models hold: every
Keras Dense `kernel` is [in, out], the PyTorch weight transposed, and nothing else is transposed. Which variables
are kernels comes from their model, not from our spec.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import safetensors.numpy

from rembert_spec import weight_spec
from rembert_spec.checkpoint import open_checkpoint, write_weights
from tests.conftest import tiny_config
from tests.oracle import hf_config, hf_tf_class

CONFIG = tiny_config(is_decoder=True, add_cross_attention=True, num_hidden_layers=1)


def _asymmetric_values(head: str) -> dict[str, np.ndarray]:
    """A value for each parameter (PyTorch layout, float32); square ones are far from their transpose."""
    rng = np.random.default_rng(7)
    values = {}
    for entry in weight_spec(CONFIG, head):
        value = rng.normal(size=entry.shape).astype(np.float32)
        if value.ndim == 2 and value.shape[0] == value.shape[1]:
            value += np.triu(np.full(value.shape, 3.0, np.float32))  # upper triangle raised: W != W.T everywhere
            assert np.abs(value - value.T)[~np.eye(len(value), dtype=bool)].min() > 0
        values[entry.name] = value
    return values


def _hugging_face_kernels(head: str) -> dict[str, tuple[int, ...]]:
    """Their TF model's Dense kernels: weight name (without the model scope) -> shape."""
    model = hf_tf_class(head)(hf_config(CONFIG))
    model(model.dummy_inputs)
    return {w.name.split("/", 1)[1]: tuple(w.shape) for w in model.weights if w.name.endswith("/kernel:0")}


def _h5_weights(path) -> dict[str, np.ndarray]:
    """Every weight of a Keras-2 h5 file found as Keras finds it (layer_names, then each layer's weight_names),
    by its name without the saving model's scope."""
    with h5py.File(path) as f:
        weights = {}
        for layer in f.attrs["layer_names"]:
            group = f[layer.decode()]
            for name in group.attrs["weight_names"]:
                weights[name.decode().split("/", 1)[1]] = group[name.decode()][()]
        return weights


@pytest.mark.parametrize("head", ["masked_lm", "sequence_classification"])
def test_pt_layout_to_tf_layout_and_back(head, tmp_path):
    values = _asymmetric_values(head)
    entries = weight_spec(CONFIG, head)
    squares = [e for e in entries if len(e.shape) == 2 and e.shape[0] == e.shape[1]]
    assert len(squares) >= 8 + (head == "sequence_classification")  # self and cross attention, the pooler

    # PyTorch layout -> tf_model.h5
    write_weights(tmp_path / "tf", "tf_h5", entries, lambda e: values[e.name], head=head)
    kernels = _hugging_face_kernels(head)
    stored = _h5_weights(tmp_path / "tf" / "tf_model.h5")
    assert set(stored) == {e.tf_name for e in entries}
    for entry in entries:
        if entry.tf_name in kernels:
            assert stored[entry.tf_name].shape == kernels[entry.tf_name], entry.tf_name
            np.testing.assert_array_equal(stored[entry.tf_name], values[entry.name].T, err_msg=entry.tf_name)
        else:
            np.testing.assert_array_equal(stored[entry.tf_name], values[entry.name], err_msg=entry.tf_name)
    assert {e.tf_name for e in entries} >= set(kernels)

    # tf_model.h5 -> PyTorch layout, read through the spec and written as model.safetensors
    with open_checkpoint(tmp_path / "tf", CONFIG) as checkpoint:
        for entry in entries:
            np.testing.assert_array_equal(checkpoint.read(entry), values[entry.name], err_msg=entry.name)
        write_weights(tmp_path / "pt", "safetensors", entries, checkpoint.read, head=head)
    back = safetensors.numpy.load_file(tmp_path / "pt" / "model.safetensors")
    assert set(back) == {e.pt_key for e in entries}
    for entry in entries:
        np.testing.assert_array_equal(back[entry.pt_key], values[entry.name], err_msg=entry.pt_key)
