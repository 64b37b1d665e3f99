"""Helpers shared by the TensorFlow tests and the PyTorch / TensorFlow equivalence tests (numpy in, numpy out)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

import rembert_tf
from rembert_spec.weights import HEADS
from tests.conftest import tiny_config


def tf_class(head: str):
    return getattr(rembert_tf, HEADS[head].tf_class)


def config_for(head: str, **overrides):
    if head == "causal_lm":
        overrides.setdefault("is_decoder", True)
    return tiny_config(**overrides)


def batch_for(head: str, config, seed: int = 0, batch: int = 3, length: int = 9) -> dict[str, np.ndarray]:
    """A padded batch with token types and the head's labels (int64 numpy arrays)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, config.vocab_size, (batch, length))
    mask = np.ones_like(ids)
    mask[1, length - 3 :] = 0
    mask[-1, 3:] = 0
    types = np.zeros_like(ids)
    types[:, length // 2 :] = 1
    out = dict(input_ids=ids, attention_mask=mask, token_type_ids=types)
    if head == "multiple_choice":
        out = {k: np.repeat(v[:, None], 4, axis=1) for k, v in out.items()}
        out["labels"] = rng.integers(0, 4, (batch,))
    elif head in ("masked_lm", "causal_lm"):
        labels = rng.integers(0, config.vocab_size, ids.shape)
        labels[mask == 0] = -100
        labels[0, :2] = -100
        out["labels"] = labels
    elif head == "token_classification":
        labels = rng.integers(0, config.num_labels, ids.shape)
        labels[mask == 0] = -100
        out["labels"] = labels
    elif head == "sequence_classification":
        out["labels"] = rng.integers(0, config.num_labels, (batch,))
    elif head == "question_answering":
        out["start_positions"] = np.array([1, 2, 30] + [0] * (batch - 3))[:batch]  # 30: clamped and ignored
        out["end_positions"] = np.array([3, 5, 2] + [1] * (batch - 3))[:batch]
    return out


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
