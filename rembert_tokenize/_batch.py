"""Batching shared by both tokenizers: truncation windows, special tokens, padding and tensor conversion.

The tokens of all texts are kept as one flat array plus one length per text. A call turns them into
rows in three vectorised steps, without a Python loop per token:

1. :func:`plan_rows` decides which tokens of which text each row holds. Truncation follows the
   ``tokenizers`` library (and so Hugging Face's fast tokenizers), including how ``longest_first``
   shares the budget between the two texts of a pair and which overflow windows a ``stride`` makes;
2. :class:`Assembly` lays each row out as ``[CLS] A [SEP] B [SEP]`` plus padding, as one array of
   *sources*: an index into the texts' tokens, or a code for a special or padding token;
3. :meth:`Assembly.take` reads any per-token value (ids, offsets, word ids, token strings) through
   the sources, so every field of every row comes from the same layout.

Example:
    >>> lengths = np.array([3, 1])
    >>> plan = plan_rows(lengths, None, BatchOptions("do_not_pad", "do_not_truncate", None), 2, 0, False, "right")
    >>> assembly = Assembly.build(plan, n_first=4, specials=True, pair=False, width=5, side="right")
    >>> assembly.take(np.array([5, 6, 7, 8]), cls=2, sep=3, pad=0).tolist()
    [2, 5, 6, 7, 3, 2, 8, 3, 0, 0]
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain

import numpy as np

logger = logging.getLogger(__name__)

VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)
PADDING_STRATEGIES = ("do_not_pad", "longest", "max_length")
TRUNCATION_STRATEGIES = ("do_not_truncate", "longest_first", "only_first", "only_second")
TENSOR_TYPES = ("np", "pt", "tf")

# Sources of the tokens that are not taken from a text. Negative, so that a table holding the text
# values followed by ``[pad, sep_pair, sep, cls]`` is indexed by the sources directly.
CLS, SEP, SEP_PAIR, PAD = -1, -2, -3, -4


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
        if max_length is not None and (not isinstance(max_length, (int, np.integer)) or max_length < 0):
            raise ValueError(f"max_length must be an integer >= 0, got {max_length!r}")
        if pad_to_multiple_of is not None and (
            not isinstance(pad_to_multiple_of, (int, np.integer)) or pad_to_multiple_of <= 0
        ):
            raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
        if (
            trunc != "do_not_truncate"
            and pad != "do_not_pad"
            and pad_to_multiple_of
            and max_length is not None
            and max_length % pad_to_multiple_of
        ):
            raise ValueError(
                f"truncation and padding are both on, but max_length ({max_length}) is not a multiple of "
                f"pad_to_multiple_of ({pad_to_multiple_of})"
            )
        return cls(pad, trunc, max_length, pad_to_multiple_of)

    def width(self, lengths: np.ndarray) -> int | None:
        """The padded length of rows with these ``lengths``, or None when not padding."""
        if self.padding == "do_not_pad":
            return None
        if self.padding == "longest":
            width = int(lengths.max()) if len(lengths) else 0
        else:
            width = int(self.max_length)
        multiple = self.pad_to_multiple_of
        if multiple and width % multiple:
            width += multiple - width % multiple
        return width


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a call builds its result.

    A long text or a large batch makes millions of small objects (ints, offset tuples, token strings);
    each allocation burst triggers a collection that walks every live object, which costs more than the
    work itself. None of these objects form reference cycles, so nothing is lost by collecting later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def pairs(flat: np.ndarray) -> list[tuple[int, int]]:
    """A (n, 2) array as a list of ``(start, end)`` tuples."""
    return list(zip(flat[:, 0].tolist(), flat[:, 1].tolist(), strict=True))


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


def split_rows(values: list, lengths: np.ndarray) -> list[list]:
    """Cut a flat Python list back into rows."""
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]] if ends else []
    return [values[start:end] for start, end in zip(starts, ends, strict=True)]


# --- the tokens of the texts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Segments:
    """The tokens of a list of texts (no special tokens) as flat arrays, plus one length per text.

    ``offsets`` (character spans in each text) are there when offsets were asked for; ``words`` (word index
    of each token in its text) and ``tokens`` (token strings) when the whole alignment was.
    """

    ids: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray | None = None
    words: np.ndarray | None = None
    tokens: list[str] | None = None

    @classmethod
    def from_ids(cls, rows: Sequence[Sequence[int]]) -> Segments:
        return cls(*ragged(rows))

    @classmethod
    def from_rows(cls, ids: list, offsets: list, words: list | None = None, tokens: list | None = None) -> Segments:
        """From per-text lists of ids and ``(start, end)`` offsets, and optionally word indices and strings."""
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.concatenate([np.asarray(row, dtype=np.int64) for row in ids]) if ids else np.zeros(0, np.int64)
        spans = np.fromiter(chain.from_iterable(chain.from_iterable(offsets)), dtype=np.int64, count=2 * len(flat))
        flat_words = None if words is None else ragged(words)[0]
        strings = None if tokens is None else list(chain.from_iterable(tokens))
        return cls(flat, lengths, spans.reshape(-1, 2), flat_words, strings)

    def grouped(self, counts: np.ndarray) -> Segments:
        """Texts that were the words of pre-split sequences (``counts[i]`` words each), joined back into
        sequences; every token's word index becomes the index of its word in the sequence."""
        owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        lengths = np.bincount(owner, weights=self.lengths, minlength=len(counts)).astype(np.int64)
        words = np.repeat(positions(counts), self.lengths)
        return Segments(self.ids, lengths, self.offsets, None if self.words is None else words, self.tokens)

    def then(self, other: Segments | None) -> Segments:
        """These tokens followed by ``other``'s (the table an :class:`Assembly` takes values from)."""
        if other is None:
            return self
        offsets = words = tokens = None
        if self.offsets is not None:
            offsets = np.concatenate([self.offsets, other.offsets])
        if self.words is not None:
            words = np.concatenate([self.words, other.words])
        if self.tokens is not None:
            tokens = self.tokens + other.tokens
        return Segments(np.concatenate([self.ids, other.ids]), np.concatenate([self.lengths, other.lengths]),
                        offsets, words, tokens)  # fmt: skip


# --- truncation -------------------------------------------------------------------------------------


def truncated_lengths(
    first: np.ndarray, second: np.ndarray | None, budget: int, strategy: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """How many tokens of each text the first row keeps, with the rules of the ``tokenizers`` library,
    and which inputs cannot be truncated (the third array, true where that input is too short).

    ``budget`` is ``max_length`` minus the special tokens. ``longest_first`` on a pair keeps the
    shorter text whole if it fits in half the budget and gives the rest to the longer one; otherwise
    both get half (the longer one the odd token). ``only_first``/``only_second`` cut one text; an input
    whose text to cut is too short to make room is flagged.
    """
    none_too_short = np.zeros(len(first), dtype=bool)
    if strategy == "do_not_truncate":
        return first, second, none_too_short
    if budget == 0:
        return np.zeros_like(first), None if second is None else np.zeros_like(second), none_too_short
    total = first if second is None else first + second
    over = total > budget
    if not over.any():
        return first, second, none_too_short
    if strategy == "longest_first":
        if second is None:
            return np.minimum(first, budget), None, none_too_short
        return (*_longest_first(first, second, budget, over), none_too_short)
    if strategy == "only_second" and second is None:
        raise ValueError("Truncation error: only_second needs a second sequence (a text pair)")
    target = first if strategy == "only_first" else second
    to_remove = total - budget
    too_short = over & (target <= to_remove)
    cut = np.where(over & ~too_short, target - to_remove, target)
    return (cut, second, too_short) if strategy == "only_first" else (first, cut, too_short)


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


def _check_truncation(
    first: np.ndarray,
    keep_first: np.ndarray,
    second: np.ndarray | None,
    keep_second: np.ndarray | None,
    too_short: np.ndarray,
    stride: int,
    strategy: str,
) -> None:
    """Refuse the call for its first input that cannot be cut: a text too short to make room, or a
    window no longer than ``stride``. Hugging Face's fast tokenizer stops at the first such input, so
    its error is the one that input gives."""
    texts = [(first, keep_first)] + ([] if second is None else [(second, keep_second)])
    windows = [(keep, (keep > 0) & (keep < lengths) & (keep <= stride)) for lengths, keep in texts]
    failing = np.flatnonzero(too_short | np.logical_or.reduce([narrow for _, narrow in windows]))
    if not len(failing):
        return
    row = failing[0]
    if too_short[row]:
        raise ValueError(
            f"Truncation error: with {strategy}, the sequence to truncate is too short to fit max_length "
            f"(input {row}); use truncation='longest_first' or a larger max_length"
        )
    keep = min(keep[row] for keep, narrow in windows if narrow[row])
    raise ValueError(
        f"stride ({stride}) must be smaller than the number of tokens a truncated text keeps per row "
        f"({int(keep)} for input {row}: max_length minus the special tokens and the other text); "
        "use a smaller stride or a larger max_length"
    )


def _window_count(lengths: np.ndarray, keep: np.ndarray, stride: int) -> np.ndarray:
    """How many windows (the row and its overflows) a text truncated to ``keep`` tokens gives."""
    step = np.maximum(keep - stride, 1)
    sliding = 1 + -(-(lengths - keep) // step)
    return np.where(keep >= lengths, 1, np.where(keep == 0, 2, sliding))


def _windows(lengths: np.ndarray, keep: np.ndarray, stride: int, index: np.ndarray, side: str):
    """Start and length of window ``index`` of each text.

    Windows hold ``keep`` tokens and overlap by ``stride``: from the start of the text moving right
    (``side="right"``), or from its end moving left. Nothing to cut: the whole text. ``keep == 0``:
    an empty window, then the whole text.
    """
    step = np.maximum(keep - stride, 1)
    if side == "right":
        start = index * step
        stop = np.minimum(start + keep, lengths)
    else:
        stop = lengths - index * step
        start = np.maximum(stop - keep, 0)
    whole = (keep >= lengths) | ((keep == 0) & (index == 1))
    empty = (keep == 0) & (index == 0)
    start = np.where(whole | empty, 0, start)
    stop = np.where(whole, lengths, np.where(empty, 0, stop))
    return start, stop - start


@dataclass(frozen=True)
class RowPlan:
    """Which tokens each output row takes: a window of the first text and one of the second."""

    sample: np.ndarray  # the input each row comes from (``overflow_to_sample_mapping``)
    first_start: np.ndarray  # index of the row's first token in the flat tokens of the first texts
    first_length: np.ndarray
    second_start: np.ndarray | None
    second_length: np.ndarray | None


def plan_rows(
    first_lengths: np.ndarray,
    second_lengths: np.ndarray | None,
    options: BatchOptions,
    n_special: int,
    stride: int,
    overflow: bool,
    side: str,
) -> RowPlan:
    """The rows of a call, in the order of Hugging Face's fast tokenizer.

    Without ``overflow`` each input gives one row. With it, every window of the truncated text(s) gives
    a row; for a pair whose both texts overflow, the rows are ``(A0, B0)``, then ``(Ai, Bj)`` for every
    later window ``Ai`` of A and every window ``Bj`` of B, then ``(A0, Bj)`` for the later ``Bj``.
    """
    if stride < 0:
        raise ValueError(f"stride must be >= 0, got {stride}")
    keep_first, keep_second = first_lengths, second_lengths
    if options.truncation != "do_not_truncate":
        if options.max_length < n_special:
            raise ValueError(f"max_length ({options.max_length}) is smaller than the {n_special} special tokens")
        keep_first, keep_second, too_short = truncated_lengths(
            first_lengths, second_lengths, options.max_length - n_special, options.truncation
        )
        _check_truncation(first_lengths, keep_first, second_lengths, keep_second, too_short, stride, options.truncation)
    ones = np.ones_like(first_lengths)
    count_first = _window_count(first_lengths, keep_first, stride) if overflow else ones
    count_second = ones
    if second_lengths is not None and overflow:
        count_second = _window_count(second_lengths, keep_second, stride)
    per_sample = count_first * count_second
    sample = np.repeat(np.arange(len(first_lengths), dtype=np.int64), per_sample)
    k = positions(per_sample)
    n_a, n_b = count_first[sample], count_second[sample]
    block = 1 + (n_a - 1) * n_b  # rows (A0, B0) and (Ai, Bj) for i >= 1
    index_a = np.where(k < block, np.where(k == 0, 0, 1 + (k - 1) // n_b), 0)
    index_b = np.where(k < block, np.where(k == 0, 0, (k - 1) % n_b), k - block + 1)
    starts = np.cumsum(first_lengths) - first_lengths
    start, length = _windows(first_lengths[sample], keep_first[sample], stride, index_a, side)
    if second_lengths is None:
        return RowPlan(sample, starts[sample] + start, length, None, None)
    second_starts = np.cumsum(second_lengths) - second_lengths
    start_b, length_b = _windows(second_lengths[sample], keep_second[sample], stride, index_b, side)
    return RowPlan(sample, starts[sample] + start, length, second_starts[sample] + start_b, length_b)


# --- layout -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assembly:
    """The final rows of a call (special tokens and padding included) as one flat array of sources.

    A source ``>= 0`` indexes the concatenated tokens of the first texts then the second texts
    (``n_first`` tokens come from the first texts); a negative source is ``CLS``, ``SEP`` (after the
    first text), ``SEP_PAIR`` (after the second) or ``PAD``. ``ranges[row, s]`` is the ``[start, stop)``
    of sequence ``s`` in the row.
    """

    sources: np.ndarray
    lengths: np.ndarray
    ranges: np.ndarray
    n_first: int
    pair: bool

    @classmethod
    def build(cls, plan: RowPlan, n_first: int, specials: bool, pair: bool, width: int | None, side: str) -> Assembly:
        """``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` (or ``A`` / ``A B`` without specials), padded."""
        lead = 1 if specials else 0
        n_special = (3 if pair else 2) if specials else 0
        a_len = plan.first_length
        b_len = plan.second_length if pair else np.zeros_like(a_len)
        content = a_len + b_len + n_special
        lengths = content if width is None else np.maximum(content, width)
        pad_before = lengths - content if side == "left" else np.zeros_like(content)
        base = np.cumsum(lengths) - lengths + pad_before
        sources = np.full(int(lengths.sum()), PAD, dtype=np.int64)
        a_at = base + lead
        sources[positions(a_len) + np.repeat(a_at, a_len)] = positions(a_len) + np.repeat(plan.first_start, a_len)
        b_at = a_at + a_len + lead
        if pair:
            where = positions(b_len) + np.repeat(b_at, b_len)
            sources[where] = n_first + positions(b_len) + np.repeat(plan.second_start, b_len)
        if specials:
            sources[base] = CLS
            sources[a_at + a_len] = SEP
            if pair:
                sources[b_at + b_len] = SEP_PAIR
        row_start = base - pad_before
        ranges = np.stack([np.stack([a_at, a_at + a_len], -1), np.stack([b_at, b_at + b_len], -1)], 1)
        return cls(sources, lengths, ranges - row_start[:, None, None], n_first, pair)

    def take(self, values: np.ndarray, cls, sep, pad, sep_pair=None) -> np.ndarray:
        """Per-token ``values`` of the texts laid out in rows (flat), with the given special values."""
        sep_pair = sep if sep_pair is None else sep_pair
        tail = np.array([pad, sep_pair, sep, cls], dtype=values.dtype).reshape((4,) + values.shape[1:])
        return np.concatenate([values, tail])[self.sources]

    def take_list(self, values: list, cls, sep, pad) -> list:
        """``take`` for a Python list (token strings)."""
        table = values + [pad, sep, sep, cls]
        return [table[i] for i in self.sources.tolist()]

    def type_ids(self, pad_type_id: int) -> np.ndarray:
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``, ``pad_type_id`` for padding."""
        second = (self.sources >= self.n_first).astype(np.int64)
        values = np.where(self.sources == SEP_PAIR, 1, np.where(self.sources == PAD, pad_type_id, second))
        return values

    def sequence_ids(self) -> np.ndarray:
        """0 / 1 for tokens of the first / second text, -1 for special and padding tokens."""
        index = np.where(self.sources >= self.n_first, 1, 0)
        return np.where(self.sources >= 0, index, -1)

    def attention_mask(self) -> np.ndarray:
        return (self.sources != PAD).astype(np.int64)

    def special_tokens_mask(self) -> np.ndarray:
        """1 for special and padding tokens, 0 for tokens of the texts."""
        return (self.sources < 0).astype(np.int64)

    def rows(self, flat: np.ndarray) -> np.ndarray | None:
        """The flat values as a (rows, width, ...) matrix, or None when the rows differ in length."""
        if len(self.lengths) == 0:
            return flat.reshape((0, 0) + flat.shape[1:])
        width = int(self.lengths[0])
        if not np.all(self.lengths == width):
            return None
        return flat.reshape((len(self.lengths), width) + flat.shape[1:])


# --- tensors ----------------------------------------------------------------------------------------


def tensor_type(kind) -> str:
    """``"np"``, ``"pt"`` or ``"tf"`` (also accepts Hugging Face's ``TensorType`` members)."""
    kind = getattr(kind, "value", kind)
    if kind not in TENSOR_TYPES:
        raise ValueError(f"return_tensors must be None or one of {TENSOR_TYPES}, got {kind!r}")
    return kind


def ids_tensor(matrix: np.ndarray, kind: str):
    """An int64 matrix built by the tokenizer as a tensor of ``kind``, with Hugging Face's dtypes
    (int64 for numpy and PyTorch, int32 for TensorFlow); torch and tensorflow are imported only here."""
    if kind == "np":
        return matrix
    if kind == "pt":
        import torch

        return torch.from_numpy(np.ascontiguousarray(matrix))
    import tensorflow as tf

    return tf.constant(matrix.astype(np.int32))


def is_tensor(value, kind: str) -> bool:
    if kind == "np":
        return isinstance(value, np.ndarray)
    module = type(value).__module__
    if kind == "pt":
        return module.startswith("torch")
    return module.startswith("tensorflow")


def as_tensor(value, kind: str):
    """Any field value (nested lists, numbers, arrays) as a tensor of ``kind``, inferring the dtype like
    Hugging Face (Python ints become int64, or int32 for TensorFlow; floats float32, or float64 for numpy).

    Rows of different lengths raise ValueError (or TypeError) from the framework.
    """
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
        value = np.array(value)
    empty = isinstance(value, (list, tuple)) and not _flat_size(value)
    if kind == "np":
        return np.asarray(value, dtype=np.int64 if empty else None)
    if kind == "pt":
        import torch

        if isinstance(value, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(value))
        return torch.tensor(value, dtype=torch.int64 if empty else None)
    import tensorflow as tf

    return tf.constant(value, dtype=tf.int32 if empty else None)


def _flat_size(value) -> int:
    if isinstance(value, (list, tuple)):
        return sum(_flat_size(v) for v in value)
    return 1


def to_python_ids(ids) -> list[int]:
    """Token ids from a list, a numpy array or a torch/tensorflow tensor, as a flat list of ints."""
    if isinstance(ids, (int, np.integer)):
        return [int(ids)]
    if hasattr(ids, "numpy") and not isinstance(ids, np.ndarray):
        ids = ids.detach().cpu().numpy() if hasattr(ids, "detach") else ids.numpy()
    array = np.asarray(ids)
    if array.ndim == 0:
        return [int(array)]
    if array.ndim != 1:
        raise ValueError(f"expected one sequence of token ids, got an array of shape {array.shape}")
    return [int(i) for i in array.tolist()]
