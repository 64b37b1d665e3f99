"""Added tokens: the strings matched whole in the text before the Unigram model sees it.

The table is built exactly like the one Hugging Face's fast tokenizer ends up with, so that both of
our tokenizers (and a ``tokenizer.json`` written by either library) agree on it:

1. the model's control and user-defined pieces, in id order (control pieces are special);
2. the entries of ``added_tokens_decoder`` from ``tokenizer_config.json``, in id order;
3. the special tokens that are not there yet (a mask token given as text matches with the spaces in
   front of it, and after normalisation, like Hugging Face's ``[MASK]``).

Matching follows the ``tokenizers`` library: every token is first looked for as written in the raw text
(leftmost, then longest); tokens with ``normalized=True`` are then also looked for, in their normalised
form, in the normalised pieces in between. ``lstrip``/``rstrip`` take the Unicode white space next to a
match along.

Example:
    >>> vocab = AddedVocabulary(vocab_size=10)
    >>> vocab.add(AddedToken("[CLS]", special=True), {"[CLS]": 2}.get)
    2
    >>> vocab.compile(str.lower)
    >>> vocab.split_raw("a[CLS]b")
    ['a', (2, '[CLS]'), 'b']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace

# Unicode White_Space: what Rust's regex ``\s`` (used by ``tokenizers`` for lstrip/rstrip) matches.
WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

PieceToId = Callable[[str], "int | None"]

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@dataclass(frozen=True)
class AddedToken:
    """A token matched whole in the text, with Hugging Face's flags.

    ``normalized`` left at None means what ``tokenizers`` does: True for an ordinary token, False for a
    special one (decided when the token is added, e.g. ``add_tokens(..., special_tokens=True)``).

    Example:
        >>> AddedToken("[MASK]", lstrip=True, special=True).lstrip
        True
    """

    content: str
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool | None = None
    special: bool = False

    def __post_init__(self):
        if not isinstance(self.content, str):
            raise TypeError(f"an added token's content must be a string, got {type(self.content).__name__}")

    @classmethod
    def coerce(cls, value: str | dict | AddedToken | object, special: bool | None = None) -> AddedToken:
        """A resolved token from a string, a ``tokenizer_config.json`` dict, one of ours, or any object
        with the same attributes (such as ``tokenizers.AddedToken``); ``special`` overrides its flag."""
        if isinstance(value, str):
            token = cls(value)
        elif isinstance(value, AddedToken):
            token = value
        elif isinstance(value, dict):
            names = ("single_word", "lstrip", "rstrip", "normalized", "special")
            fields = {k: bool(value[k]) for k in names if k in value}
            token = cls(str(value["content"]), **fields)
        elif isinstance(getattr(value, "content", None), str):
            flags = {k: bool(getattr(value, k, False)) for k in ("single_word", "lstrip", "rstrip", "special")}
            normalized = getattr(value, "normalized", None)
            # tokenizers reports an unset `normalized` as `not special`: keep it unset, so that it follows
            # the final `special` as in tokenizers.
            token = cls(value.content, normalized=None if normalized == (not flags["special"]) else normalized, **flags)
        else:
            raise TypeError(f"expected a token as str, dict or AddedToken, got {type(value).__name__}")
        if special is not None:
            token = replace(token, special=special)
        if token.normalized is None:
            token = replace(token, normalized=not token.special)
        return token

    def to_dict(self) -> dict:
        """The ``added_tokens_decoder`` entry of ``tokenizer_config.json``."""
        data = asdict(self)
        return {key: data[key] for key in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}

    def __str__(self) -> str:
        return self.content


def special_token(name: str, value: str | dict | AddedToken | object) -> tuple[AddedToken, bool]:
    """A special token argument as the tokenizer keeps it, and whether it counts as a token object.

    The mask token given as text becomes a token that takes the spaces before it along and is also
    matched after normalisation, as in Hugging Face's RemBERT tokenizers.
    """
    if isinstance(value, str):
        if name == "mask_token":
            return AddedToken(value, lstrip=True, normalized=True, special=True), True
        return AddedToken(value, special=True), False
    return AddedToken.coerce(value, special=True), True


class AddedVocabulary:
    """The added-token table (id -> token) and the matching that splits text around its tokens."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.by_id: dict[int, AddedToken] = {}
        self.by_content: dict[str, int] = {}
        self._raw = self._normalized = _Matcher({}, {})

    # --- building the table ---------------------------------------------------------------------

    def add(self, token: AddedToken, piece_to_id: PieceToId) -> int:
        """Add or update one token the way ``tokenizers`` does; return its id.

        A token already in the table keeps its id, a piece of the model takes the piece's id, anything
        else gets the next free id after the model's vocabulary. Call :meth:`compile` afterwards.
        """
        token = AddedToken.coerce(token)
        token_id = self.by_content.get(token.content)
        if token_id is None:
            token_id = piece_to_id(token.content)
        if token_id is None:
            token_id = self._next_id()
        self.by_content[token.content] = token_id
        self.by_id[token_id] = token
        return token_id

    def add_all(self, tokens: Iterable[AddedToken], piece_to_id: PieceToId) -> int:
        """Add tokens in order, skipping empty ones and exact repeats; return how many were not skipped
        (what ``tokenizers`` and Hugging Face's ``add_tokens`` return)."""
        added = 0
        for token in map(AddedToken.coerce, tokens):
            if token.content and self.by_id.get(self.by_content.get(token.content, -1)) != token:
                self.add(token, piece_to_id)
                added += 1
        return added

    def add_special(self, tokens: Iterable[tuple[AddedToken, bool]], piece_to_id: PieceToId) -> None:
        """Add special tokens as Hugging Face does: ``(token, given_as_object)`` pairs.

        A special token given as plain text is added only if its text is not in the table yet; one given
        as a token object (like the mask token, which RemBERT wraps to strip the space before it) always
        replaces the entry, flags included.
        """
        for token, given_as_object in tokens:
            if given_as_object or token.content not in self.by_content:
                self.add_all([token], piece_to_id)

    def _next_id(self) -> int:
        if not self.by_id:
            return self.vocab_size
        highest = max(self.by_id)
        return highest + 1 if highest >= self.vocab_size else self.vocab_size

    def tokens_in_id_order(self) -> list[tuple[int, AddedToken]]:
        return sorted(self.by_id.items())

    @property
    def extra_size(self) -> int:
        """How many added tokens have ids beyond the model's vocabulary."""
        return sum(1 for token_id in self.by_id if token_id >= self.vocab_size)

    # --- matching -------------------------------------------------------------------------------

    def compile(self, normalize: Callable[[str], str]) -> None:
        """Prepare the two matchers; ``normalize`` gives the normalised form of ``normalized`` tokens."""
        raw: dict[str, int] = {}
        normalized: dict[str, int] = {}
        for token_id, token in self.tokens_in_id_order():
            raw.setdefault(token.content, token_id)
            if token.normalized:
                normalized.setdefault(normalize(token.content), token_id)
        self._raw = _Matcher(raw, self.by_id)
        self._normalized = _Matcher({k: v for k, v in normalized.items() if k}, self.by_id)

    @property
    def raw_pattern(self) -> re.Pattern | None:
        """The regex finding tokens as written in raw text (None when there are none)."""
        return self._raw.pattern

    @property
    def normalized_pattern(self) -> re.Pattern | None:
        """The regex finding normalised tokens (None when there are none)."""
        return self._normalized.pattern

    def split_raw(self, text: str) -> list[str | tuple[int, str]]:
        """Cut raw text into pieces of text and ``(id, matched text)`` for the tokens found as written."""
        return self._raw.split(text)

    def split_normalized(self, text: str) -> list[str | tuple[int, str]]:
        """Cut normalised text into pieces of text and ``(id, matched text)`` for the normalised tokens."""
        return self._normalized.split(text)


class _Matcher:
    """Leftmost-longest search for a set of strings, with ``tokenizers``' strip and word rules."""

    def __init__(self, ids: dict[str, int], tokens: dict[int, AddedToken]):
        self._ids = ids
        self._tokens = tokens
        ordered = sorted(ids, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def split(self, text: str) -> list[str | tuple[int, str]]:
        if self.pattern is None or not text:
            return [text] if text else []
        pieces: list[str | tuple[int, str]] = []
        done = 0
        for match in self.pattern.finditer(text):
            start, stop = match.span()
            token_id = self._ids[match.group()]
            token = self._tokens[token_id]
            if token.single_word and not _is_single_word(text, start, stop):
                continue
            if token.lstrip:
                start = max(_strip_left(text, start), done)
            if token.rstrip:
                stop = _strip_right(text, stop)
            if done < start:
                pieces.append(text[done:start])
            pieces.append((token_id, text[start:stop]))
            done = max(done, stop)
        if done < len(text):
            pieces.append(text[done:])
        return pieces


def _strip_left(text: str, start: int) -> int:
    while start > 0 and text[start - 1] in WHITE_SPACE:
        start -= 1
    return start


def _strip_right(text: str, stop: int) -> int:
    while stop < len(text) and text[stop] in WHITE_SPACE:
        stop += 1
    return stop


_WORD_CHAR = re.compile(r"\w")


def _is_single_word(text: str, start: int, stop: int) -> bool:
    before = start == 0 or not _WORD_CHAR.match(text[start - 1])
    after = stop == len(text) or not _WORD_CHAR.match(text[stop])
    return before and after
