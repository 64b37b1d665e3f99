"""The text arguments of a tokenizer call, checked and sorted into first texts, second texts and batching.

Accepted forms, as in Hugging Face:

- ``text`` a string (one text), a list of strings (a batch), or a list of ``(text, pair)`` tuples;
  ``text_pair`` a string or a list with one entry per text;
- with ``is_split_into_words=True``, a text is a list of words: ``text`` is a list of strings (one
  text) or a list of such lists (a batch); ``text_pair`` has the same form.

Example:
    >>> parse_inputs(["a b", "c"], ["x", "y"], False)
    Inputs(first=['a b', 'c'], second=['x', 'y'], batched=True, split=False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Inputs:
    """Checked call inputs: texts (or word lists when ``split``), their pairs, and whether it was a batch."""

    first: list
    second: list | None
    batched: bool
    split: bool


def parse_inputs(text: Any, text_pair: Any, is_split_into_words: bool) -> Inputs:
    """Sort the ``text`` / ``text_pair`` arguments of a call; a wrong type or shape raises naming it."""
    if text is None:
        raise TypeError("the tokenizer needs text: a string, a list of strings, or lists of words")
    if is_split_into_words:
        return _parse_words(text, text_pair)
    return _parse_texts(text, text_pair)


def _parse_texts(text: Any, text_pair: Any) -> Inputs:
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"text_pair must be a string when text is a string, got {type(text_pair).__name__}")
        return Inputs([text], None if text_pair is None else [text_pair], False, False)
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"text must be a string or a list of strings, got {type(text).__name__}")
    items = list(text)
    if text_pair is not None:
        pairs = _batch_pairs(text_pair, len(items))
        _check_texts(items, "text")
        _check_texts(pairs, "text_pair")
        return Inputs(items, pairs, True, False)
    if any(isinstance(item, (list, tuple)) for item in items):
        firsts, seconds = _split_pairs(items)
        _check_texts(firsts, "text")
        _check_texts(seconds, "text_pair")
        return Inputs(firsts, seconds, True, False)
    _check_texts(items, "text")
    return Inputs(items, None, True, False)


def _parse_words(text: Any, text_pair: Any) -> Inputs:
    if isinstance(text, str) or not isinstance(text, (list, tuple)):
        raise TypeError(
            "with is_split_into_words=True, text must be a list of words (list of str) or a batch of such lists, "
            f"got {type(text).__name__}"
        )
    batched = bool(text) and isinstance(text[0], (list, tuple))
    if not batched:
        _check_words(text, "text")
        if text_pair is None:
            return Inputs([list(text)], None, False, True)
        if isinstance(text_pair, str) or not isinstance(text_pair, (list, tuple)):
            raise TypeError("with is_split_into_words=True, text_pair must be a list of words too")
        _check_words(text_pair, "text_pair")
        return Inputs([list(text)], [list(text_pair)], False, True)
    items = list(text)
    pairs = None if text_pair is None else _batch_pairs(text_pair, len(items))
    for index, words in enumerate(items):
        _check_words(words, f"text[{index}]")
        if pairs is not None:
            _check_words(pairs[index], f"text_pair[{index}]")
    return Inputs([list(w) for w in items], None if pairs is None else [list(w) for w in pairs], True, True)


def _batch_pairs(text_pair: Any, size: int) -> list:
    if isinstance(text_pair, str) or not isinstance(text_pair, (list, tuple)):
        raise TypeError("when text is a batch, text_pair must be a list with one entry per text")
    if len(text_pair) != size:
        raise ValueError(f"text has {size} entries but text_pair has {len(text_pair)}; give one pair per text")
    return list(text_pair)


def _split_pairs(items: list) -> tuple[list, list]:
    for index, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"text[{index}] is {item!r}: each item of a batch of pairs must be a (text, pair) tuple")
    return [item[0] for item in items], [item[1] for item in items]


def _check_texts(items: list, name: str) -> None:
    for index, item in enumerate(items):
        if not isinstance(item, str):
            if item is None and name == "text_pair":
                raise TypeError(
                    f"text_pair[{index}] is None: in a batch of pairs every text needs a second text "
                    "(use '' for an empty one, or encode the single texts in their own call)"
                )
            raise TypeError(f"{name}[{index}] must be a string, got {type(item).__name__}")


def _check_words(words: Any, name: str) -> None:
    if isinstance(words, str) or not isinstance(words, (list, tuple)):
        raise TypeError(f"{name} must be a list of words (str), got {type(words).__name__}")
    for index, word in enumerate(words):
        if not isinstance(word, str):
            raise TypeError(f"{name}[{index}] must be a word (str), got {type(word).__name__}")
