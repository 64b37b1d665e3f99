"""Retrieval with sentence embeddings, as XTREME's BUCC (bitext mining) and Tatoeba (translation search) use them.

- `similarity(a, b)`: the [len(a), len(b)] matrix of cosine similarities (or dot products);
- `margin_scores(a, b, k)`: the ratio margin of Artetxe & Schwenk (2019): a pair's cosine divided by the mean
  cosine of each side to its k nearest neighbours on the other side, which discounts "hub" sentences that are
  close to everything;
- `nearest_neighbours(a, b)`: for each row of a, the best row of b (by cosine or by margin);
- `retrieval_accuracy(a, b)`: Tatoeba's measure, the share of a[i] whose nearest neighbour is b[i];
- `mine_pairs(a, b, k, threshold)`: BUCC's mining: for each sentence of either side, its best partner by margin,
  kept when the score passes the threshold, each pair once, best first; `bitext_f1` scores them against gold pairs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .feature_extraction import l2_normalize

METRICS = ("cosine", "dot")


def _matrix(vectors: Any, name: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a vector or a [n, dim] matrix of vectors, got shape {array.shape}")
    return array


def similarity(a: Any, b: Any, metric: str = "cosine") -> np.ndarray:
    """[len(a), len(b)] similarities between the rows of a and b (vectors or [n, dim] matrices)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b have vectors of different sizes: {a.shape[1]} and {b.shape[1]}")
    if metric == "cosine":
        a, b = l2_normalize(a), l2_normalize(b)
    return a @ b.T


def _mean_top_k(scores: np.ndarray, k: int, axis: int) -> np.ndarray:
    k = min(k, scores.shape[axis])
    top = -np.partition(-scores, k - 1, axis=axis)
    return np.take(top, np.arange(k), axis=axis).mean(axis=axis)


def margin_scores(a: Any, b: Any, k: int = 4) -> np.ndarray:
    """[len(a), len(b)] ratio-margin scores: cos(x, y) / (mean cos of x to its k nearest b / 2 + mean cos of y
    to its k nearest a / 2)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    cosine = similarity(a, b)
    a_side = _mean_top_k(cosine, k, axis=1)[:, None]
    b_side = _mean_top_k(cosine, k, axis=0)[None, :]
    return cosine / ((a_side + b_side) / 2)


def nearest_neighbours(a: Any, b: Any, margin: bool = False, k: int = 4) -> np.ndarray:
    """For each row of a, the index of its nearest row of b (by cosine, or by ratio margin with `margin=True`)."""
    scores = margin_scores(a, b, k) if margin else similarity(a, b)
    return scores.argmax(axis=1)


def retrieval_accuracy(a: Any, b: Any, margin: bool = False, k: int = 4) -> float:
    """Share of rows i of a whose nearest neighbour in b is row i (a and b are translations, in order)."""
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a and b must be aligned translations of equal count, got {len(a)} and {len(b)}")
    return float((nearest_neighbours(a, b, margin, k) == np.arange(len(a))).mean()) if len(a) else 0.0


def mine_pairs(a: Any, b: Any, k: int = 4, threshold: float | None = None) -> list[tuple[int, int, float]]:
    """Candidate translation pairs (i in a, j in b, margin score), best first: each sentence's best partner by
    margin in both directions, each pair once, kept when its score is at least `threshold` (if given)."""
    scores = margin_scores(a, b, k)
    candidates = {(i, int(j)) for i, j in enumerate(scores.argmax(axis=1))}
    candidates |= {(int(i), j) for j, i in enumerate(scores.argmax(axis=0))}
    pairs = sorted(((i, j, float(scores[i, j])) for i, j in candidates), key=lambda p: (-p[2], p[0], p[1]))
    return [p for p in pairs if threshold is None or p[2] >= threshold]


def bitext_f1(predicted: Iterable[tuple[int, int]], gold: Iterable[tuple[int, int]]) -> dict[str, float]:
    """Precision, recall and F1 of mined pairs against the gold pairs (BUCC's measure)."""
    predicted = {(int(p[0]), int(p[1])) for p in predicted}
    gold = {(int(g[0]), int(g[1])) for g in gold}
    hits = len(predicted & gold)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
