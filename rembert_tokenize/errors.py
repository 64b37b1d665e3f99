"""Exceptions raised by the tokenizers."""

from __future__ import annotations


class TokenizerFileError(ValueError):
    """A tokenizer file (``sentencepiece.model``, ``tokenizer.json``, ...) is truncated, corrupted or unusable.

    The message always names the file.

    Example:
        >>> str(TokenizerFileError("vocab/sentencepiece.model", "not a valid sentencepiece model"))
        'vocab/sentencepiece.model: not a valid sentencepiece model'
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.path, self.reason))
