"""What a tokenizer call returns: ``BatchEncoding`` (a dict of fields) and, per row, an ``Encoding``.

Both follow Hugging Face: ``BatchEncoding`` is a dict with attribute access, tensor conversion, ``.to``
and the alignment methods of its fast tokenizers (``tokens``, ``word_ids``, ``sequence_ids``,
``char_to_token``, ``token_to_chars``, ``word_to_tokens``, ...); an ``Encoding`` has the read-only
interface of ``tokenizers.Encoding``. Both of our tokenizers return alignments (Hugging Face's slow
tokenizers do not). A call computes them only when first asked for, so plain encoding stays fast.

Example:
    >>> encoding = BatchEncoding({"input_ids": [2, 17, 3], "attention_mask": [1, 1, 1]})
    >>> encoding.input_ids == encoding["input_ids"]
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from rembert_tokenize import _batch


class CharSpan(NamedTuple):
    """Characters ``[start, end)`` of the original text."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Tokens ``[start, end)`` of an encoded row."""

    start: int
    end: int


class Encoding:
    """One row of a tokenizer call and its alignment to the text; the read-only interface of
    ``tokenizers.Encoding``.

    ``sequence_ranges`` maps a sequence index (0, or 1 for the second text of a pair) to the
    ``(start, stop)`` of its tokens in the row.

    Example:
        >>> row = tokenizer("Grüße aus Köln").encodings[0]  # doctest: +SKIP
        >>> row.tokens[:3], row.word_ids[:3], row.char_to_token(6)  # doctest: +SKIP
        (['[CLS]', '▁gr', 'u'], [None, 0, 0], 4)
    """

    def __init__(
        self,
        ids: list[int],
        type_ids: list[int],
        tokens: list[str],
        offsets: list[tuple[int, int]],
        attention_mask: list[int],
        special_tokens_mask: list[int],
        word_ids: list[int | None],
        sequence_ids: list[int | None],
        sequence_ranges: dict[int, tuple[int, int]],
    ):
        self.ids = ids
        self.type_ids = type_ids
        self.tokens = tokens
        self.offsets = offsets
        self.attention_mask = attention_mask
        self.special_tokens_mask = special_tokens_mask
        self.word_ids = word_ids
        self.sequence_ids = sequence_ids
        self.sequence_ranges = sequence_ranges
        self.overflowing: list[Encoding] = []

    @property
    def words(self) -> list[int | None]:
        return self.word_ids

    @property
    def n_sequences(self) -> int:
        return len(self.sequence_ranges)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Encoding(num_tokens={len(self.ids)}, n_sequences={self.n_sequences})"

    def _range(self, sequence_index: int) -> range:
        # Like tokenizers: a sequence that the row does not have means the whole row.
        start, stop = self.sequence_ranges.get(sequence_index, (0, len(self.ids)))
        return range(start, stop)

    def token_to_sequence(self, token_index: int) -> int | None:
        """The sequence (0 or 1) a token belongs to; None for special and padding tokens."""
        for sequence, (start, stop) in self.sequence_ranges.items():
            if start <= token_index < stop:
                return sequence
        return None

    def token_to_word(self, token_index: int) -> int | None:
        """The word a token belongs to (in its own sequence); None for special and padding tokens."""
        if self.token_to_sequence(token_index) is None:
            return None
        return self.word_ids[token_index]

    def token_to_chars(self, token_index: int) -> tuple[int, int] | None:
        """The ``(start, end)`` characters of a token in its text; None for special and padding tokens."""
        if self.token_to_sequence(token_index) is None:
            return None
        return self.offsets[token_index]

    def char_to_token(self, char_pos: int, sequence_index: int = 0) -> int | None:
        """The first token of the given sequence whose characters include ``char_pos``."""
        for index in self._range(sequence_index):
            start, end = self.offsets[index]
            if start <= char_pos < end:
                return index
        return None

    def char_to_word(self, char_pos: int, sequence_index: int = 0) -> int | None:
        token = self.char_to_token(char_pos, sequence_index)
        return None if token is None else self.token_to_word(token)

    def word_to_tokens(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        """The ``(start, end)`` tokens of a word of the given sequence; None when it has none here."""
        start = end = None
        for index in self._range(sequence_index):
            word = self.word_ids[index]
            if word is not None and word > word_index:
                break
            if word == word_index:
                start = index if start is None else start
                end = index + 1
        return None if start is None else (start, end)

    def word_to_chars(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        span = self.word_to_tokens(word_index, sequence_index)
        if span is None:
            return None
        return self.offsets[span[0]][0], self.offsets[span[1] - 1][1]


class BatchEncoding(dict):
    """The result of calling a tokenizer: a dict of fields that also allows attribute access.

    Like Hugging Face's ``BatchEncoding``: ``encoding[i]`` is the :class:`Encoding` of row ``i``
    (``encoding[a:b]`` a list of them; without alignment, a slice of every field); ``tokens(i)``,
    ``word_ids(i)``, ``sequence_ids(i)`` and the ``char_to_token`` / ``token_to_chars`` /
    ``word_to_tokens`` / ``token_to_word`` family map between text and tokens; ``convert_to_tensors``
    and ``to(device)`` convert and move the fields.

    Example:
        >>> encoding = BatchEncoding({"input_ids": [2, 17, 3], "attention_mask": [1, 1, 1]})
        >>> encoding.input_ids == encoding["input_ids"]
        True
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        encoding: Encoding | list[Encoding] | None = None,
        tensor_type: str | None = None,
        prepend_batch_axis: bool = False,
        n_sequences: int | None = None,
    ):
        super().__init__(data or {})
        if isinstance(encoding, Encoding):
            encoding = [encoding]
        self._encodings: list[Encoding] | None = encoding
        self._make_encodings: Callable[[], list[Encoding]] | None = None
        if n_sequences is None and encoding:
            n_sequences = encoding[0].n_sequences
        self._n_sequences = n_sequences
        self._is_fast = False
        self.convert_to_tensors(tensor_type, prepend_batch_axis)

    @classmethod
    def _from_call(
        cls, data: dict[str, Any], make_encodings: Callable[[], list[Encoding]], n_sequences: int, is_fast: bool
    ) -> BatchEncoding:
        """A tokenizer's result: the alignment is computed by ``make_encodings`` when first asked for."""
        encoding = cls(data, n_sequences=n_sequences)
        encoding._make_encodings = make_encodings
        encoding._is_fast = is_fast
        return encoding

    # --- dict and attribute access --------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_encodings", "_make_encodings", "_n_sequences", "_is_fast"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r} (fields: {list(self)})") from None

    def __getitem__(self, item):
        # As in Hugging Face: a field by name; with the alignment, rows (Encodings) by index or slice;
        # without it, a slice of every field.
        if isinstance(item, str):
            return dict.__getitem__(self, item)
        if isinstance(item, (int, slice)) and self.encodings is not None:
            return self.encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(f"BatchEncoding keys are field names (str), row indices (int) or slices, got {item!r}")

    @property
    def data(self) -> BatchEncoding:
        """The fields (this dict itself), as Hugging Face's ``BatchEncoding.data``."""
        return self

    def __getstate__(self) -> dict:
        # Keep the alignment when pickling: compute it now if it was asked for lazily.
        encodings = self._encodings
        if encodings is None and self._make_encodings is not None:
            encodings = self._rows("pickling")
        return {"encodings": encodings, "n_sequences": self._n_sequences, "is_fast": self._is_fast}

    def __setstate__(self, state: dict) -> None:
        self._encodings = state.get("encodings")
        self._make_encodings = None
        self._n_sequences = state.get("n_sequences")
        self._is_fast = state.get("is_fast", False)

    # --- about the call -------------------------------------------------------------------------

    @property
    def n_sequences(self) -> int | None:
        """1 (single texts) or 2 (pairs) for a tokenizer's result; None when unknown."""
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        """Whether :class:`RemBertTokenizerFast` made this (both tokenizers give the same alignments)."""
        return self._is_fast

    @property
    def encodings(self) -> list[Encoding] | None:
        """One :class:`Encoding` per row, or None when this did not come from a tokenizer call."""
        if self._encodings is None and self._make_encodings is not None:
            self._encodings = self._make_encodings()
            self._make_encodings = None
        return self._encodings

    def _rows(self, what: str) -> list[Encoding]:
        rows = self.encodings
        if rows is None:
            raise ValueError(
                f"{what} needs the alignment of a tokenizer call; this BatchEncoding was built from plain "
                "fields (by pad() or by hand). Call the tokenizer on the text to get it."
            )
        return rows

    def _row(self, what: str, batch_index: int) -> Encoding:
        rows = self._rows(what)
        if not -len(rows) <= batch_index < len(rows):
            raise IndexError(f"{what}: batch index {batch_index} is out of range for {len(rows)} rows")
        return rows[batch_index]

    @staticmethod
    def _split(first: int, second: int | None) -> tuple[int, int]:
        """``(batch index, index)`` from the ``f(index)`` / ``f(batch_index, index)`` call forms."""
        return (0, first) if second is None else (first, second)

    # --- alignment ------------------------------------------------------------------------------

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of a row (special and padding tokens included)."""
        return self._row("tokens()", batch_index).tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of a row, the index of its word in its text (None for special and padding tokens)."""
        return self._row("word_ids()", batch_index).word_ids

    def words(self, batch_index: int = 0) -> list[int | None]:
        """Same as :meth:`word_ids` (Hugging Face's older name)."""
        return self.word_ids(batch_index)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of a row, 0 (first text), 1 (second text) or None (special and padding tokens)."""
        return self._row("sequence_ids()", batch_index).sequence_ids

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        batch, token = self._split(batch_or_token_index, token_index)
        row = self._row("token_to_sequence()", batch)
        return row.token_to_sequence(_index(token, len(row)))

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The word of a token: ``token_to_word(token)`` or ``token_to_word(batch_index, token)``."""
        batch, token = self._split(batch_or_token_index, token_index)
        row = self._row("token_to_word()", batch)
        return row.token_to_word(_index(token, len(row)))

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        """The characters of a token in its text; None for special and padding tokens."""
        batch, token = self._split(batch_or_token_index, token_index)
        row = self._row("token_to_chars()", batch)
        span = row.token_to_chars(_index(token, len(row)))
        return None if span is None else CharSpan(*span)

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        """The token covering a character of the text (of sequence ``sequence_index`` for pairs)."""
        batch, char = self._split(batch_or_char_index, char_index)
        return self._row("char_to_token()", batch).char_to_token(char, sequence_index)

    def char_to_word(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        batch, char = self._split(batch_or_char_index, char_index)
        return self._row("char_to_word()", batch).char_to_word(char, sequence_index)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        """The tokens of a word; None when the row holds none of it (e.g. cut by truncation)."""
        batch, word = self._split(batch_or_word_index, word_index)
        span = self._row("word_to_tokens()", batch).word_to_tokens(word, sequence_index)
        return None if span is None else TokenSpan(*span)

    def word_to_chars(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> CharSpan | None:
        batch, word = self._split(batch_or_word_index, word_index)
        span = self._row("word_to_chars()", batch).word_to_chars(word, sequence_index)
        return None if span is None else CharSpan(*span)

    # --- tensors --------------------------------------------------------------------------------

    def convert_to_tensors(self, tensor_type: str | None = None, prepend_batch_axis: bool = False) -> BatchEncoding:
        """Turn every field into a ``"np"``, ``"pt"`` or ``"tf"`` tensor (in place); returns self."""
        if tensor_type is None:
            return self
        kind = _batch.tensor_type(tensor_type)
        for key, value in list(self.items()):
            if prepend_batch_axis:
                value = [value]
            if _batch.is_tensor(value, kind):
                continue
            try:
                self[key] = _batch.as_tensor(value, kind)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"Unable to create a tensor from the field {key!r}: its rows have different lengths or it "
                    "is not numeric. Use padding=True (and truncation=True) to get rows of equal length."
                ) from exc
        return self

    def to(self, device, *, non_blocking: bool = False) -> BatchEncoding:
        """Move every PyTorch tensor to ``device`` (``"cpu"``, ``"cuda:0"``, an int or a ``torch.device``);
        other values stay as they are. Returns self."""
        if not (isinstance(device, (str, int)) or type(device).__module__.startswith("torch")):
            raise TypeError(f"to() takes a device ('cpu', 'cuda:0', an int or a torch.device), got {device!r}")
        for key, value in list(self.items()):
            if type(value).__module__.startswith("torch") and callable(getattr(value, "to", None)):
                self[key] = value.to(device=device, non_blocking=non_blocking)
        return self


def _index(index: int, length: int) -> int:
    return index + length if index < 0 else index
