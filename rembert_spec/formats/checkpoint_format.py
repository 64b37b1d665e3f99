"""What a checkpoint format is to the rest of the library: one small object with the same members for every format.

Each module of `rembert_spec.formats` builds one `CheckpointFormat` from its own functions; the registry
(`rembert_spec.formats`) lists them, and loading, saving and converting read nothing else about a format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..tensor_reader import Access, TensorReader
from ..weights import WeightEntry


class Writer(Protocol):
    def __call__(
        self,
        directory: Path,
        entries: list[WeightEntry],
        fetch: Callable[[WeightEntry], np.ndarray],
        head: str,
        dtype: np.dtype,
        max_shard_size: int | str,
        progress: Callable[[int], None] | None,
    ) -> list[Path]:
        """Write `entries` into `directory`; `fetch(entry)` gives each tensor already in the format's layout."""
        ...


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint format: its names for the spec's weights, its layout, its files, and how to read and write them.

    >>> from rembert_spec.formats import get_format
    >>> fmt = get_format("tf_h5")
    >>> fmt.file_names, fmt.transposed, fmt.dtypes
    (('tf_model.h5',), True, ('float32', 'float16', 'float64'))
    """

    name: str
    """The registry name ("safetensors", "pytorch_bin", "tf_h5", "google_tf"), shown in conversion reports."""
    file_names: tuple[str, ...]
    """What it looks for in a model directory, in order: the single file, then a shard index if it has one."""
    transposed: bool
    """It keeps Dense kernels as [in, out] (TensorFlow's layout) where PyTorch keeps [out, in]."""
    dtypes: tuple[str, ...]
    """The dtypes its writer can store, preferred first; () for a read-only format."""
    key: Callable[[WeightEntry], str | None]
    """A spec entry's name in this format's files (None: the format has no name for it)."""
    canonical_names: Callable[[Mapping[str, WeightEntry]], Callable[[str], str | None]]
    """Given the spec's entries by canonical name, a function from a key in a file to its canonical name (None:
    not a weight of the spec)."""
    recognises: Callable[[Path], bool]
    """A path is a checkpoint of this format, judged by its name (or, for a prefix, by the files beside it)."""
    open: Callable[[Path, Access], TensorReader]
    """Open a recognised path: `open(path, access)`, how its reader hands out tensors (`tensor_reader.Access`)."""
    write: Writer | None
    """Write a checkpoint into a directory, or None for a format this library only reads."""
