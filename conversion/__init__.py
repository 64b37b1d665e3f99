"""Streaming RemBERT checkpoint conversion between PyTorch and TensorFlow formats (`rembert-convert`).

>>> from conversion import convert
>>> report = convert("my-rembert", "my-rembert-tf", to="tf")  # doctest: +SKIP

torch and tensorflow are imported only by `verify=True` / `--verify`.
"""

from .converter import TOKENIZER_FILES, ConversionReport, VerificationFailed, convert
from .plan import ConversionError
from .staging import OutputExistsError

__all__ = [
    "TOKENIZER_FILES",
    "ConversionError",
    "ConversionReport",
    "OutputExistsError",
    "VerificationFailed",
    "convert",
]
