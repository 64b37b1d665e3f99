"""Tiny configs and padded batches (numpy) that both frameworks' tests feed their models."""

from __future__ import annotations

import numpy as np

from tests.conftest import tiny_config


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
