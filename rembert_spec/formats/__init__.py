"""The checkpoint formats, one module each, and the registry that loading, saving and converting read.

Every format is a `CheckpointFormat` (see `checkpoint_format`): its names for the spec's weights, whether it keeps
Dense kernels transposed, the files it looks for, how to recognise, open and write them, and its dtypes. Adding a
format is one module that builds such an object and one line in `FORMATS` below.

>>> list(FORMATS)
['safetensors', 'pytorch_bin', 'tf_h5', 'google_tf']
>>> load_order("tf")
('tf_h5', 'safetensors', 'pytorch_bin')
>>> writable_format("torch").name, writable_format("tf").name
('safetensors', 'tf_h5')
"""

from __future__ import annotations

from pathlib import Path

from ..tensor_reader import CheckpointError
from . import google_tf, hf_h5, safetensors, torch_bin
from .checkpoint_format import CheckpointFormat

# In the order files are recognised (`format_of`); the first writable format of a framework's load order is the
# one its save_pretrained and the converter write.
FORMATS: dict[str, CheckpointFormat] = {
    fmt.name: fmt
    for fmt in (
        safetensors.FORMAT,
        torch_bin.FORMAT,
        hf_h5.FORMAT,
        google_tf.FORMAT,
    )
}

# Which file of a model directory each framework's from_pretrained takes first: its own native file, so that a
# directory saved by one framework's save_pretrained loads back from the same file.
_LOAD_ORDERS: dict[str, tuple[str, ...]] = {
    "torch": ("safetensors", "pytorch_bin", "tf_h5"),
    "tf": ("tf_h5", "safetensors", "pytorch_bin"),
}


def get_format(name: str) -> CheckpointFormat:
    """The registered format called `name`; a ValueError naming the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown checkpoint format {name!r}; known formats: {', '.join(FORMATS)}") from None


def load_order(framework: str) -> tuple[str, ...]:
    """The formats `framework` ("torch" or "tf") looks for in a model directory, preferred first."""
    try:
        return _LOAD_ORDERS[framework]
    except KeyError:
        raise ValueError(f"unknown framework {framework!r}; known frameworks: {', '.join(_LOAD_ORDERS)}") from None


def writable_format(framework: str) -> CheckpointFormat:
    """The format `framework` writes: the first of its load order that this library can write."""
    return next(FORMATS[name] for name in load_order(framework) if FORMATS[name].write is not None)


def writable_formats() -> tuple[str, ...]:
    """Names of the formats this library writes."""
    return tuple(name for name, fmt in FORMATS.items() if fmt.write is not None)


def format_of(path: Path) -> CheckpointFormat:
    """The format of a checkpoint file, prefix or checkpoint directory, judged by its name."""
    for fmt in FORMATS.values():
        if fmt.recognises(path):
            return fmt
    raise CheckpointError(f"{path}: cannot tell the checkpoint format from the file name")


__all__ = [
    "FORMATS",
    "CheckpointFormat",
    "format_of",
    "get_format",
    "load_order",
    "writable_format",
    "writable_formats",
]
