"""The text pipeline shared by both tokenizers: normalisation and the metaspace word split.

The order follows Hugging Face's ``RemBertTokenizerFast`` (built by its RemBERT converter):

1. replace ````` and ``''`` by ``"``, and collapse runs of two or more spaces into one;
2. unless ``keep_accents``: NFKD, then drop combining marks;
3. if ``do_lower_case``: lowercase, one character at a time;
4. the model's own ``precompiled_charsmap`` (e.g. ``nmt_nfkc``), if it has one;
5. spaces become ``▁``, a ``▁`` is put in front unless one is already there, and the text is cut into
   words, each starting at a ``▁``.

``remove_space`` is accepted and saved but, as in Hugging Face's fast tokenizer, has no effect.

Both tokenizers run steps 1-4 with the normalizers of the ``tokenizers`` library, so they agree with
each other (and with Hugging Face) on every code point: Python's ``unicodedata`` follows another Unicode
version than those Rust tables, and the charsmap step works on grapheme clusters, which the standard
library cannot segment.

Example:
    >>> normalizer = build_normalizer(do_lower_case=True, keep_accents=False, precompiled_charsmap=b"")
    >>> normalizer.normalize_str("``Crème''   Brûlée")
    '"creme" brulee'
    >>> metaspace_words("creme brulee")
    ['▁creme', '▁brulee']
"""

from __future__ import annotations

import re

from tokenizers import Regex, normalizers

SPIECE_UNDERLINE = "\u2581"
_WORD = re.compile(f"{SPIECE_UNDERLINE}[^{SPIECE_UNDERLINE}]*")


def normalizer_steps(do_lower_case: bool, keep_accents: bool, precompiled_charsmap: bytes) -> list:
    """The ``tokenizers`` normalizers for steps 1-4, in order."""
    steps = [
        normalizers.Replace("``", '"'),
        normalizers.Replace("''", '"'),
        normalizers.Replace(Regex(" {2,}"), " "),
    ]
    if not keep_accents:
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if do_lower_case:
        steps.append(normalizers.Lowercase())
    if precompiled_charsmap:
        steps.append(normalizers.Precompiled(precompiled_charsmap))
    return steps


def build_normalizer(do_lower_case: bool, keep_accents: bool, precompiled_charsmap: bytes):
    """One ``tokenizers`` normalizer running steps 1-4."""
    return normalizers.Sequence(normalizer_steps(do_lower_case, keep_accents, precompiled_charsmap))


def metaspace(text: str) -> str:
    """Step 5 without the cut: spaces to ``▁`` and a leading ``▁``; empty text stays empty."""
    if not text:
        return text
    text = text.replace(" ", SPIECE_UNDERLINE)
    return text if text[0] == SPIECE_UNDERLINE else SPIECE_UNDERLINE + text


def metaspace_words(text: str) -> list[str]:
    """Step 5: the words the Unigram model segments, each starting with ``▁``."""
    return _WORD.findall(metaspace(text))


def metaspace_decode(tokens: list[str]) -> str:
    """Join tokens back into text: ``▁`` becomes a space, except in the first token where it is dropped."""
    if not tokens:
        return ""
    first = tokens[0].replace(SPIECE_UNDERLINE, "")
    return first + "".join(tokens[1:]).replace(SPIECE_UNDERLINE, " ")
