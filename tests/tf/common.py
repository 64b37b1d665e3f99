"""Helpers shared by the TensorFlow tests and the PyTorch / TensorFlow equivalence tests (numpy in, numpy out)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

import rembert_tf
from rembert_spec.weights import HEADS
from tests.batches import batch_for, config_for  # noqa: F401  (re-exported for the TF tests)


def tf_class(head: str):
    return getattr(rembert_tf, HEADS[head].tf_class)


def to_numpy(tree):
    """A model output (record, tuples of tensors) as plain dicts / lists of numpy arrays."""
    if isinstance(tree, Mapping):
        return {k: to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return [to_numpy(v) for v in tree]
    if isinstance(tree, tf.Tensor):
        return tree.numpy()
    if hasattr(tree, "detach"):  # a torch tensor
        return tree.detach().float().numpy()
    return np.asarray(tree)


def max_abs_difference(a, b, path: str = "") -> float:
    """The largest |a - b| over two output trees, which must have the same fields and shapes."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: fields {sorted(a)} != {sorted(b)}"
        return max((max_abs_difference(a[k], b[k], f"{path}.{k}") for k in a), default=0.0)
    if isinstance(a, list):
        assert len(a) == len(b), f"{path}: {len(a)} entries != {len(b)}"
        pairs = enumerate(zip(a, b, strict=True))
        return max((max_abs_difference(x, y, f"{path}[{i}]") for i, (x, y) in pairs), default=0.0)
    assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
    if a.size == 0:
        return 0.0
    both_nan = np.isnan(a) & np.isnan(b)
    assert not np.any(np.isnan(a) ^ np.isnan(b)), f"{path}: NaN in one output only"
    return float(np.max(np.where(both_nan, 0.0, np.abs(a.astype(np.float64) - b.astype(np.float64)))))


def run_tf(model, inputs: Mapping[str, np.ndarray], mode: str = "eager", **flags):
    """Call `model` in eager mode, inside tf.function ("graph") or inside tf.function(jit_compile=True) ("xla")."""
    tensors = {k: tf.nest.map_structure(tf.convert_to_tensor, v) for k, v in inputs.items()}
    if mode == "eager":
        return model(**tensors, **flags)
    function = tf.function(lambda kwargs: model(**kwargs, **flags), jit_compile=mode == "xla")
    return function(tensors)
