"""Added tokens: the strings matched whole in the text before the Unigram model sees it.

:class:`AddedVocabulary` keeps its table the way the ``tokenizers`` library does, because matching
depends on more than the final table: ``tokenizers`` remembers every token it was given, in order, in
two lists (the first version of each special token; every version of the other tokens), and matches
the tokens of those lists marked ``normalized=False`` as written in the raw text (leftmost, then
longest), then those marked ``normalized=True``, in their normalised form, in the normalised text in
between. A token re-added with other flags therefore keeps matching the old way too (Hugging Face's
RemBERT ``[MASK]`` is matched as written *and* after normalisation for that reason). The flags used
for a match (``lstrip``/``rstrip``/``single_word``) are those of the token's current entry.

How a tokenizer fills the table (both of ours, exactly as Hugging Face's fast tokenizer does):

1. one call with the tokens it starts from: the sentencepiece model's control and user-defined pieces
   (in id order, control pieces special), or the ``added_tokens`` of a ``tokenizer.json``;
2. one call with the ``added_tokens_decoder`` entries of ``tokenizer_config.json`` and the special
   tokens not in the table yet (a special token given as a token object always goes in);
3. a call per ``add_tokens`` / ``add_special_tokens``.

Example:
    >>> vocab = AddedVocabulary(vocab_size=10)
    >>> vocab.add_tokens([AddedToken("[CLS]", special=True)], {"[CLS]": 2}.get)
    1
    >>> vocab.compile(str.lower)
    >>> vocab.split_raw("a[CLS]b")
    ['a', (2, '[CLS]'), 'b']
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace

# Word boundaries (``single_word``) follow the Unicode 16 tables the ``tokenizers`` library is built with; Python's
# own database is older before 3.14 and knows nothing of letters added since (Egyptian hieroglyph marks, Todhri...).
if sys.version_info >= (3, 14):
    import unicodedata
else:
    import unicodedata2 as unicodedata

# Unicode White_Space: what Rust's regex ``\s`` (used by ``tokenizers`` for lstrip/rstrip) matches.
WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

PieceToId = Callable[[str], "int | None"]

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


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
    def parse(cls, value: str | dict | AddedToken | object) -> AddedToken:
        """A token, not yet resolved, from a string, a ``tokenizer_config.json`` dict, one of ours, or any
        object with the same attributes (such as ``tokenizers.AddedToken``)."""
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, AddedToken):
            return value
        if isinstance(value, dict):
            if not isinstance(value.get("content"), str):
                raise TypeError(f"an added token needs a 'content' string, got {value!r}")
            return cls(value["content"], **{k: bool(value[k]) for k in _FLAGS if k in value})
        if isinstance(getattr(value, "content", None), str):
            flags = {k: bool(getattr(value, k, False)) for k in ("single_word", "lstrip", "rstrip", "special")}
            normalized = getattr(value, "normalized", None)
            # tokenizers reports an unset `normalized` as `not special`: keep it unset, so that it follows
            # the final `special` as in tokenizers.
            return cls(value.content, normalized=None if normalized == (not flags["special"]) else normalized, **flags)
        raise TypeError(f"expected a token as str, dict or AddedToken, got {type(value).__name__}")

    @classmethod
    def coerce(cls, value: str | dict | AddedToken | object, special: bool | None = None) -> AddedToken:
        """:meth:`parse`, then ``special`` (if given) overrides the flag and ``normalized`` is resolved."""
        token = cls.parse(value)
        if special is not None:
            token = replace(token, special=special)
        if token.normalized is None:
            token = replace(token, normalized=not token.special)
        return token

    def to_dict(self) -> dict:
        """The ``added_tokens_decoder`` entry of ``tokenizer_config.json``."""
        data = asdict(AddedToken.coerce(self))
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
    """The added-token table (id -> token), its history, and the matching that splits text around it."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.by_id: dict[int, AddedToken] = {}
        self.by_content: dict[str, int] = {}
        self._specials: list[AddedToken] = []  # the first version of each special token, in order
        self._special_contents: set[str] = set()
        self._others: list[AddedToken] = []  # every version of the other tokens, in order
        self._raw = self._normalized = _Matcher({}, {})

    def add_tokens(self, tokens: Iterable[AddedToken | str], piece_to_id: PieceToId) -> int:
        """Add tokens exactly as ``tokenizers`` does; return how many were not skipped as empty or repeats.

        A token already in the table keeps its id (its entry takes the new flags), a piece of the model
        takes the piece's id, anything else gets the next id after the vocabulary and the added tokens.
        Call :meth:`compile` afterwards.
        """
        tokens = [AddedToken.coerce(token) for token in tokens]
        for token in tokens:
            if token.special and token.content and token.content not in self._special_contents:
                self._specials.append(token)
                self._special_contents.add(token.content)
        skipped = 0
        for token in tokens:
            if not token.content or token in self.by_id.values():
                skipped += 1
                continue
            token_id = self.by_content.get(token.content)
            if token_id is None:
                token_id = piece_to_id(token.content)
            if token_id is None:
                token_id = self._next_id()
            self.by_content[token.content] = token_id
            self.by_id[token_id] = token
            if token.content not in self._special_contents:
                self._others.append(token)
        return len(tokens) - skipped

    def _next_id(self) -> int:
        if not self.by_content:
            return self.vocab_size
        highest = max(self.by_content.values())
        return highest + 1 if highest >= self.vocab_size or self.vocab_size == 0 else self.vocab_size

    def reloaded(self, piece_to_id: PieceToId) -> AddedVocabulary:
        """The table as ``tokenizers`` has it after a save and load (or a pickle): the current tokens, added
        in id order in one step, the history of earlier versions gone."""
        fresh = AddedVocabulary(self.vocab_size)
        fresh.add_tokens([token for _, token in self.tokens_in_id_order()], piece_to_id)
        return fresh

    def tokens_in_id_order(self) -> list[tuple[int, AddedToken]]:
        return sorted(self.by_id.items())

    def is_special(self, content: str) -> bool:
        """Whether a token was ever added as special (what decoding with ``skip_special_tokens`` drops)."""
        return content in self._special_contents

    @property
    def extra_size(self) -> int:
        """How many added tokens have ids beyond the model's vocabulary."""
        return sum(1 for token_id in self.by_id if token_id >= self.vocab_size)

    # --- matching -------------------------------------------------------------------------------

    def compile(self, normalize: Callable[[str], str]) -> None:
        """Prepare the two matchers; ``normalize`` gives the normalised form of ``normalized`` tokens."""
        raw: dict[str, int] = {}
        normalized: dict[str, int] = {}
        for token in self._specials + self._others:
            token_id = self.by_content[token.content]
            if token.normalized:
                normalized.setdefault(normalize(token.content), token_id)
            else:
                raw.setdefault(token.content, token_id)
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


def _is_word_character(char: str) -> bool:
    """Rust's regex ``\\w`` (Unicode): letters, marks, decimal digits, letter numbers, connector
    punctuation, the joiners, and the other alphabetic characters such as circled letters."""
    category = unicodedata.category(char)
    return (
        category[0] in "LM" or category in ("Nd", "Nl", "Pc") or char in "\u200c\u200d" or "\u24b6" <= char <= "\u24e9"
    )


def _is_single_word(text: str, start: int, stop: int) -> bool:
    before = start == 0 or not _is_word_character(text[start - 1])
    after = stop == len(text) or not _is_word_character(text[stop])
    return before and after
