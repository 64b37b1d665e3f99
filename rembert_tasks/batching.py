"""Running a model over many inputs: inputs taken in chunks, their rows sorted by length into padded batches, the
outputs handed back in input order, with an optional progress bar.

A *feature* is one row for the model (a text, or one window of a long context): a dict with at least
`input_ids`, and `token_type_ids` when the task sets them. The model is reached through a `ModelRunner` (see
`rembert_tasks.base`), so nothing here knows which framework runs it.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

# A list longer than this shows a progress bar unless the call says otherwise (progress_bar=False).
PROGRESS_MIN_INPUTS = 256
# Inputs tokenised and sorted together; bounds the memory held for one chunk's features and outputs.
MIN_CHUNK = 256


def is_stream(inputs: Any) -> bool:
    """Inputs to be answered one result at a time: generators, iterators, datasets (anything iterable that is not a
    text, a dict, a list or a tuple)."""
    if isinstance(inputs, (str, bytes, Mapping, list, tuple)):
        return False
    return isinstance(inputs, Iterable) or (hasattr(inputs, "__getitem__") and hasattr(inputs, "__len__"))


def iterate(inputs: Any) -> Iterator[Any]:
    """Iterate a stream; a dataset that has only __len__ and __getitem__ is read by index."""
    if isinstance(inputs, Iterable):
        return iter(inputs)
    return (inputs[i] for i in range(len(inputs)))


def known_length(inputs: Any) -> int | None:
    try:
        return len(inputs)
    except TypeError:
        return None


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def progress_bar(show: bool | None, total_inputs: int | None) -> Any:
    """A tqdm bar counting model rows, or None. `show=None` shows it for lists longer than PROGRESS_MIN_INPUTS."""
    if show is None:
        show = total_inputs is not None and total_inputs > PROGRESS_MIN_INPUTS
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress_bar=True needs tqdm: pip install tqdm (or pip install 'rembert[tasks]')") from None
    return tqdm(total=0, unit="row", file=sys.stderr, dynamic_ncols=True)


def pad_batch(features: Sequence[Mapping[str, Sequence[int]]], pad_token_id: int) -> dict[str, np.ndarray]:
    """input_ids, attention_mask and token_type_ids (0 where a feature has none) of a batch, padded on the right
    to its longest row."""
    length = max(len(f["input_ids"]) for f in features)
    input_ids = np.full((len(features), length), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(features), length), dtype=np.int64)
    token_type_ids = np.zeros((len(features), length), dtype=np.int64)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        input_ids[row, :n] = feature["input_ids"]
        attention_mask[row, :n] = 1
        if "token_type_ids" in feature:
            token_type_ids[row, :n] = feature["token_type_ids"]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def run_sorted(
    features: Sequence[Mapping[str, Any]],
    run_batch: Callable[[dict[str, np.ndarray]], Mapping[str, Any]],
    keep: Callable[[Mapping[str, Any], Mapping[str, Any], int], dict[str, Any]],
    batch_size: int,
    pad_token_id: int,
    bar: Any = None,
) -> list[dict[str, Any]]:
    """Run every feature through the model, longest first in batches of `batch_size`; return, in the features'
    order, what `keep(feature, batch_outputs, row)` takes from each row of the outputs."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    kept: list[dict[str, Any] | None] = [None] * len(features)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        outputs = run_batch(pad_batch([features[i] for i in rows], pad_token_id))
        for row, index in enumerate(rows):
            kept[index] = keep(features[index], outputs, row)
        if bar is not None:
            bar.update(len(rows))
    return kept  # type: ignore[return-value]
