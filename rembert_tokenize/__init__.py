"""RemBERT tokenizers: ``RemBertTokenizer`` (sentencepiece) and ``RemBertTokenizerFast`` (tokenizers).

Both give the same ids as Hugging Face's ``RemBertTokenizerFast`` and as each other, for every text.

Example:
    >>> from rembert_tokenize import RemBertTokenizerFast
    >>> tokenizer = RemBertTokenizerFast(vocab_file="sentencepiece.model")  # doctest: +SKIP
    >>> tokenizer("Grüße aus Köln!").input_ids  # doctest: +SKIP
    [2, 1021, 42, 301, 85, 3]
"""

from rembert_tokenize._added import AddedToken
from rembert_tokenize.encoding import BatchEncoding, CharSpan, Encoding, TokenSpan
from rembert_tokenize.errors import TokenizerFileError
from rembert_tokenize.fast import RemBertTokenizerFast
from rembert_tokenize.slow import RemBertTokenizer

__all__ = [
    "AddedToken",
    "BatchEncoding",
    "CharSpan",
    "Encoding",
    "RemBertTokenizer",
    "RemBertTokenizerFast",
    "TokenSpan",
    "TokenizerFileError",
]
