"""Batching shared by both tokenizers: truncation, special tokens, padding and tensor conversion.

Everything works on whole batches with numpy: the token ids of all texts are kept as one flat array
plus one length per text, so no Python loop runs per token. Truncation follows the ``tokenizers``
library (and so Hugging Face's fast tokenizers), including how ``longest_first`` shares the budget
between the two texts of a pair.

Example:
    >>> flat, lengths = ragged([[5, 6, 7], [8]])
    >>> layout = Layout.build(flat, lengths, None, None, specials=(2, 3))
    >>> pad_rows(layout.ids, layout.lengths, width=5, fill=0).tolist()
    [[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

logger = logging.getLogger(__name__)

VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)
PADDING_STRATEGIES = ("do_not_pad", "longest", "max_length")
TRUNCATION_STRATEGIES = ("do_not_truncate", "longest_first", "only_first", "only_second")
TENSOR_TYPES = ("np", "pt", "tf")


# --- options ----------------------------------------------------------------------------------------


def padding_strategy(padding: bool | str | None) -> str:
    """``True``/``"longest"``, ``"max_length"`` or ``False``/``None``/``"do_not_pad"``."""
    padding = getattr(padding, "value", padding)
    if padding is True:
        return "longest"
    if padding is False or padding is None:
        return "do_not_pad"
    if padding in PADDING_STRATEGIES:
        return padding
    raise ValueError(f"padding must be True, False or one of {PADDING_STRATEGIES}, got {padding!r}")


def truncation_strategy(truncation: bool | str | None) -> str:
    """``True``/``"longest_first"``, ``"only_first"``, ``"only_second"`` or ``False``/``None``."""
    truncation = getattr(truncation, "value", truncation)
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation is None:
        return "do_not_truncate"
    if truncation in TRUNCATION_STRATEGIES:
        return truncation
    raise ValueError(f"truncation must be True, False or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")


@dataclass(frozen=True)
class BatchOptions:
    """Resolved padding and truncation settings for one call."""

    padding: str
    truncation: str
    max_length: int | None
    pad_to_multiple_of: int | None = None

    @classmethod
    def resolve(
        cls,
        padding: bool | str | None,
        truncation: bool | str | None,
        max_length: int | None,
        model_max_length: int,
        pad_to_multiple_of: int | None = None,
    ) -> BatchOptions:
        """Apply Hugging Face's rules for missing values (``max_length`` alone truncates, and so on)."""
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        pad = padding_strategy(padding)
        trunc = truncation_strategy(truncation)
        if max_length is None and pad == "max_length":
            if model_max_length > LARGE_INTEGER:
                logger.warning("padding='max_length' without max_length and no model_max_length: not padding.")
                pad = "do_not_pad"
            else:
                max_length = model_max_length
        if max_length is None and trunc != "do_not_truncate":
            if model_max_length > LARGE_INTEGER:
                logger.warning("truncation without max_length and no model_max_length: not truncating.")
                trunc = "do_not_truncate"
            else:
                max_length = model_max_length
        if max_length is not None and max_length < 0:
            raise ValueError(f"max_length must be >= 0, got {max_length}")
        if pad_to_multiple_of is not None and pad_to_multiple_of <= 0:
            raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        if pad == "max_length" and pad_to_multiple_of and max_length % pad_to_multiple_of:
            raise ValueError(f"max_length ({max_length}) is not a multiple of pad_to_multiple_of")
        return cls(pad, trunc, max_length, pad_to_multiple_of)


# --- ragged arrays ----------------------------------------------------------------------------------


def ragged(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All rows as one flat int64 array, plus the length of each row."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths


def positions(lengths: np.ndarray) -> np.ndarray:
    """For every element of a flat ragged array, its index inside its row."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def truncate_rows(flat: np.ndarray, lengths: np.ndarray, keep: np.ndarray, side: str) -> np.ndarray:
    """Keep ``keep[i]`` elements of row ``i``: the first ones (``side="right"``) or the last ones."""
    if np.array_equal(keep, lengths):
        return flat
    index = positions(lengths)
    if side == "right":
        mask = index < np.repeat(keep, lengths)
    else:
        mask = index >= np.repeat(lengths - keep, lengths)
    return flat[mask]


def split_rows(values: list, lengths: np.ndarray) -> list[list]:
    """Cut a flat Python list back into rows."""
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    return [values[start:end] for start, end in zip(starts, ends, strict=True)]


# --- truncation -------------------------------------------------------------------------------------


def truncated_lengths(
    first: np.ndarray, second: np.ndarray | None, budget: int, strategy: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """How many tokens of each text survive, with the rules of the ``tokenizers`` library.

    ``budget`` is ``max_length`` minus the special tokens. ``longest_first`` on a pair keeps the
    shorter text whole if it fits in half the budget and gives the rest to the longer one; otherwise
    both get half (the longer one the odd token). ``only_first``/``only_second`` cut one text and fail
    when that text is too short.
    """
    if strategy == "do_not_truncate":
        return first, second
    if budget == 0:
        return np.zeros_like(first), None if second is None else np.zeros_like(second)
    total = first if second is None else first + second
    over = total > budget
    if not over.any():
        return first, second
    if strategy == "longest_first":
        if second is None:
            return np.minimum(first, budget), None
        return _longest_first(first, second, budget, over)
    if strategy == "only_second" and second is None:
        raise ValueError("Truncation error: only_second needs a second sequence (a text pair)")
    target = first if strategy == "only_first" else second
    to_remove = total - budget
    if np.any(over & (target <= to_remove)):
        raise ValueError(
            f"Truncation error: with {strategy}, the sequence to truncate is too short to fit max_length; "
            "use truncation='longest_first' or a larger max_length"
        )
    cut = np.where(over, target - to_remove, target)
    return (cut, second) if strategy == "only_first" else (first, cut)


def _longest_first(
    first: np.ndarray, second: np.ndarray, budget: int, over: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    swap = first > second
    short = np.minimum(first, second)
    long_keep = np.where(short > budget, short, np.maximum(short, budget - short))
    halve = short + long_keep > budget
    short_keep = np.where(halve, budget // 2, short)
    long_keep = np.where(halve, budget // 2 + budget % 2, long_keep)
    keep_first = np.where(swap, long_keep, short_keep)
    keep_second = np.where(swap, short_keep, long_keep)
    keep_first = np.where(over, np.minimum(first, keep_first), first)
    keep_second = np.where(over, np.minimum(second, keep_second), second)
    return keep_first, keep_second


# --- special tokens and padding ---------------------------------------------------------------------


@dataclass
class Layout:
    """Final sequences of a batch (special tokens included), as flat arrays plus row lengths."""

    ids: np.ndarray
    type_ids: np.ndarray
    special_mask: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        first: np.ndarray,
        first_lengths: np.ndarray,
        second: np.ndarray | None,
        second_lengths: np.ndarray | None,
        specials: tuple[int, int] | None,
        first_offsets: np.ndarray | None = None,
        second_offsets: np.ndarray | None = None,
    ) -> Layout:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` (``specials=(cls_id, sep_id)``), or ``A B``."""
        pair = second is not None
        n_special = 0 if specials is None else (3 if pair else 2)
        lengths = first_lengths + (second_lengths if pair else 0) + n_special
        starts = np.cumsum(lengths) - lengths
        total = int(lengths.sum())
        ids = np.empty(total, dtype=np.int64)
        type_ids = np.zeros(total, dtype=np.int64)
        special_mask = np.zeros(total, dtype=np.int64)
        offsets = None if first_offsets is None else np.zeros((total, 2), dtype=np.int64)
        lead = 0 if specials is None else 1
        where_first = positions(first_lengths) + np.repeat(starts + lead, first_lengths)
        ids[where_first] = first
        if offsets is not None:
            offsets[where_first] = first_offsets
        if pair:
            second_start = starts + first_lengths + 2 * lead
            where_second = positions(second_lengths) + np.repeat(second_start, second_lengths)
            ids[where_second] = second
            type_ids[where_second] = 1
            if offsets is not None:
                offsets[where_second] = second_offsets
        if specials is not None:
            cls_id, sep_id = specials
            marks = [(starts, cls_id, 0), (starts + 1 + first_lengths, sep_id, 0)]
            if pair:
                marks.append((starts + lengths - 1, sep_id, 1))
            for where, token_id, type_id in marks:
                ids[where] = token_id
                type_ids[where] = type_id
                special_mask[where] = 1
        return cls(ids, type_ids, special_mask, lengths, offsets)


def target_width(lengths: np.ndarray, options: BatchOptions) -> int | None:
    """The padded length of the batch, or None when not padding."""
    if options.padding == "do_not_pad" or len(lengths) == 0:
        return None
    width = int(lengths.max()) if options.padding == "longest" else int(options.max_length)
    multiple = options.pad_to_multiple_of
    if multiple:
        width = -(-width // multiple) * multiple
    return width


def pad_rows(flat: np.ndarray, lengths: np.ndarray, width: int, fill: int, side: str = "right") -> np.ndarray:
    """A (rows, width) matrix of ``fill`` holding each row on the right (or left) side."""
    shape = (len(lengths), width) + flat.shape[1:]
    matrix = np.full(shape, fill, dtype=flat.dtype)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = positions(lengths)
    if side == "left":
        cols = cols + np.repeat(width - lengths, lengths)
    matrix[rows, cols] = flat
    return matrix


def to_rows(flat: np.ndarray, lengths: np.ndarray, width: int | None, fill: int, side: str) -> list:
    """Rows as Python lists, padded to ``width`` when given; rows already longer stay as they are."""
    if width is None:
        return split_rows(flat.tolist(), lengths)
    if len(lengths) and int(lengths.max()) > width:
        wide = int(lengths.max())
        matrix = pad_rows(flat, lengths, wide, fill, side).tolist()
        final = np.maximum(lengths, width).tolist()
        if side == "right":
            return [row[:n] for row, n in zip(matrix, final, strict=True)]
        return [row[wide - n :] for row, n in zip(matrix, final, strict=True)]
    return pad_rows(flat, lengths, width, fill, side).tolist()


def to_matrix(flat: np.ndarray, lengths: np.ndarray, width: int | None, fill: int, side: str) -> np.ndarray:
    """The batch as one rectangular array; a clear error if the rows differ in length."""
    if len(lengths) == 0:
        return np.zeros((0, width or 0) + flat.shape[1:], dtype=flat.dtype)
    longest = int(lengths.max())
    if (width is None and int(lengths.min()) != longest) or (width is not None and longest > width):
        raise ValueError(
            "Unable to create tensor: the sequences have different lengths. "
            "Use padding=True, or padding='max_length' with truncation=True, to get equal lengths."
        )
    return pad_rows(flat, lengths, longest if width is None else width, fill, side)


# --- tensors ----------------------------------------------------------------------------------------


def as_tensor(matrix: np.ndarray, kind: str):
    """Convert an int64 matrix to the requested framework; torch and tensorflow are imported only here."""
    if kind == "np":
        return matrix
    if kind == "pt":
        import torch

        return torch.from_numpy(np.ascontiguousarray(matrix))
    if kind == "tf":
        import tensorflow as tf

        return tf.constant(matrix.astype(np.int32))
    raise ValueError(f"return_tensors must be None or one of {TENSOR_TYPES}, got {kind!r}")


def to_python_ids(ids) -> list[int]:
    """Token ids from a list, a numpy array or a torch/tensorflow tensor, as a flat list of ints."""
    if isinstance(ids, (int, np.integer)):
        return [int(ids)]
    if hasattr(ids, "numpy") and not isinstance(ids, np.ndarray):
        ids = ids.numpy()
    array = np.asarray(ids)
    if array.ndim == 0:
        return [int(array)]
    if array.ndim != 1:
        raise ValueError(f"expected one sequence of token ids, got an array of shape {array.shape}")
    return [int(i) for i in array.tolist()]
