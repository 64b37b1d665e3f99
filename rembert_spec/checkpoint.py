"""Model directories and checkpoint files seen through the weight spec.

`open_checkpoint` finds the weights in a directory (or takes a file or a Google checkpoint prefix) and returns a
`SpecCheckpoint`: the file's tensors under canonical names, in PyTorch's layout. Loading a model is then one
loop (`load_weights`) and writing one is another (`write_weights`); both backends and the converter use them,
so missing, unexpected and mis-shaped tensors are reported with the same words whatever the format.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import CONFIG_NAME, RemBertConfig
from .h5_file import H5_NAME, H5Reader, write_h5
from .safetensors_file import (
    DEFAULT_MAX_SHARD_SIZE,
    SAFETENSORS_INDEX_NAME,
    SAFETENSORS_NAME,
    SafetensorsReader,
    write_safetensors_checkpoint,
)
from .tensor_file import CheckpointError, ShardedReader, TensorReader
from .weights import IGNORED_KEYS, WeightEntry, all_weight_names, canonical_name, get_head, weight_spec

logger = logging.getLogger("rembert")

PT_BIN_NAME = "pytorch_model.bin"
PT_BIN_INDEX_NAME = "pytorch_model.bin.index.json"

SAFETENSORS = "safetensors"
PYTORCH_BIN = "pytorch_bin"
TF_H5 = "tf_h5"
GOOGLE_TF = "google_tf"
FORMATS = (SAFETENSORS, PYTORCH_BIN, TF_H5, GOOGLE_TF)

# Which file of a model directory each kind of reader looks for, in order of preference.
_DIRECTORY_FILES = {
    SAFETENSORS: (SAFETENSORS_NAME, SAFETENSORS_INDEX_NAME),
    PYTORCH_BIN: (PT_BIN_NAME, PT_BIN_INDEX_NAME),
    TF_H5: (H5_NAME,),
}


def _open_torch_bin(path: Path) -> TensorReader:
    from .torch_bin import TorchBinReader

    return TorchBinReader(path)


def _open_file(path: Path, copy_on_write: bool = False) -> tuple[str, TensorReader]:
    name = path.name
    if name == SAFETENSORS_INDEX_NAME or name.endswith(".safetensors.index.json"):
        return SAFETENSORS, ShardedReader(path, functools.partial(SafetensorsReader, copy_on_write=copy_on_write))
    if name == PT_BIN_INDEX_NAME or name.endswith(".bin.index.json"):
        return PYTORCH_BIN, ShardedReader(path, _open_torch_bin)
    if name.endswith(".safetensors"):
        return SAFETENSORS, SafetensorsReader(path, copy_on_write)
    if name.endswith((".bin", ".pt", ".pth")):
        return PYTORCH_BIN, _open_torch_bin(path)
    if name.endswith((".h5", ".hdf5")):
        return TF_H5, H5Reader(path, copy_on_write)
    if name.endswith(".index") or Path(f"{path}.index").is_file():
        from .tf_checkpoint import TFCheckpointReader

        return GOOGLE_TF, TFCheckpointReader(path)
    raise CheckpointError(f"{path}: cannot tell the checkpoint format from the file name")


def find_weights_file(directory: str | os.PathLike, prefer: Iterable[str] = (SAFETENSORS, PYTORCH_BIN, TF_H5)) -> Path:
    """The weights file of a model directory, by format preference. Raises naming what was looked for."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such model directory")
    looked_for = []
    for fmt in prefer:
        for name in _DIRECTORY_FILES[fmt]:
            looked_for.append(name)
            if (directory / name).is_file():
                return directory / name
    if (directory / "checkpoint").is_file():
        return directory
    raise CheckpointError(f"{directory}: no weights found (looked for {', '.join(looked_for)})")


@dataclass
class SpecCheckpoint:
    """A checkpoint's tensors under canonical names, read in PyTorch's layout.

    Tensors whose names the spec does not know stay reachable under their raw names in `unknown_keys`.
    """

    reader: TensorReader
    format: str
    _keys: dict[str, str] = field(default_factory=dict)  # canonical name -> key in the file
    unknown_keys: list[str] = field(default_factory=list)
    known: dict[str, WeightEntry] = field(default_factory=dict)  # every name the spec knows for this config

    @property
    def path(self) -> Path:
        return self.reader.path

    def names(self) -> list[str]:
        return list(self._keys)

    def __contains__(self, name: str) -> bool:
        return name in self._keys

    def file_key(self, name: str) -> str:
        return self._keys[name]

    def _file_transposed(self, entry: WeightEntry) -> bool:
        # Google's checkpoints and tf_model.h5 both keep Dense kernels as [in, out].
        return entry.tf_transpose and self.format in (TF_H5, GOOGLE_TF)

    def shape(self, entry: WeightEntry) -> tuple[int, ...]:
        shape = self.reader.info(self._keys[entry.name]).shape
        return tuple(reversed(shape)) if self._file_transposed(entry) else tuple(shape)

    def dtype(self, entry: WeightEntry) -> np.dtype:
        return self.reader.info(self._keys[entry.name]).dtype

    def read(self, entry: WeightEntry) -> np.ndarray:
        """The tensor in PyTorch's layout; a transposed view (no copy) where the file's layout differs."""
        array = self.reader.read(self._keys[entry.name])
        return array.T if self._file_transposed(entry) else array

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> SpecCheckpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _index_keys(reader: TensorReader, fmt: str, known: dict[str, WeightEntry]) -> tuple[dict[str, str], list[str]]:
    by_file_name: dict[str, str] = {}
    if fmt == TF_H5:
        by_file_name = {entry.tf_name: name for name, entry in known.items()}
    elif fmt == GOOGLE_TF:
        by_file_name = {entry.google_name: name for name, entry in known.items() if entry.google_name}
    keys, unknown = {}, []
    for key in reader.keys():
        if fmt in (SAFETENSORS, PYTORCH_BIN):
            name = canonical_name(key)
            name = name if name in known else None
        elif fmt == TF_H5:
            # The first component is the saving model's own scope (tf_rem_bert_for_masked_lm, ...).
            name = by_file_name.get(key.split("/", 1)[-1])
        else:
            name = by_file_name.get(key)
        if name is None or name in keys:
            if canonical_name(key) not in IGNORED_KEYS:
                unknown.append(key)
        else:
            keys[name] = key
    return keys, unknown


def open_checkpoint(
    path: str | os.PathLike,
    config: RemBertConfig,
    prefer: Iterable[str] = (SAFETENSORS, PYTORCH_BIN, TF_H5),
    copy_on_write: bool = False,
) -> SpecCheckpoint:
    """Open a model directory, a weights file, or a Google TF checkpoint prefix, for reading through the spec.

    With `copy_on_write`, memory-mapped tensors come back writable (private pages), so a model may adopt them
    as its own storage without copying.
    """
    path = Path(path)
    if path.is_dir():
        path = find_weights_file(path, prefer)
    elif not path.exists() and not Path(f"{path}.index").is_file():
        raise CheckpointError(f"{path}: no such file or directory")
    fmt, reader = _open_file(path, copy_on_write) if not path.is_dir() else _open_google_directory(path)
    known = all_weight_names(config)
    keys, unknown = _index_keys(reader, fmt, known)
    return SpecCheckpoint(reader, fmt, keys, unknown, known)


def _open_google_directory(path: Path) -> tuple[str, TensorReader]:
    from .tf_checkpoint import TFCheckpointReader

    return GOOGLE_TF, TFCheckpointReader(path)


# -- loading ----------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What a load found, in the model's PyTorch state-dict names (the same for every format)."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return {
            "missing_keys": list(self.missing_keys),
            "unexpected_keys": list(self.unexpected_keys),
            "mismatched_keys": list(self.mismatched_keys),
            "error_msgs": [],
        }

    def log(self, model_name: str, path: Path) -> None:
        if self.unexpected_keys:
            logger.warning(
                "Some weights of %s were not used by %s: %s", path, model_name, ", ".join(self.unexpected_keys)
            )
        if self.missing_keys:
            logger.warning(
                "Some weights of %s were not in %s and are newly initialized: %s",
                model_name,
                path,
                ", ".join(self.missing_keys),
            )
        for key, found, expected in self.mismatched_keys:
            logger.warning(
                "%s: %s has shape %s in the checkpoint but %s in %s; newly initialized",
                path,
                key,
                found,
                expected,
                model_name,
            )


def load_weights(
    entries: list[WeightEntry],
    checkpoint: SpecCheckpoint,
    assign: Callable[[WeightEntry, np.ndarray], None],
    ignore_mismatched_sizes: bool = False,
) -> LoadReport:
    """For each spec entry, read its tensor (PyTorch layout) and hand it to `assign`; report what did not fit.

    A shape mismatch is an error naming the tensor and both shapes unless `ignore_mismatched_sizes`.
    """
    report = LoadReport()
    wanted = {entry.name for entry in entries}
    for entry in entries:
        if entry.name not in checkpoint:
            report.missing_keys.append(entry.pt_key)
            continue
        found = checkpoint.shape(entry)
        if found != entry.shape:
            if not ignore_mismatched_sizes:
                raise CheckpointError(
                    f"{checkpoint.path}: tensor {entry.pt_key!r} ({checkpoint.file_key(entry.name)}) has shape "
                    f"{found} in the checkpoint but the model expects {entry.shape}; pass "
                    "ignore_mismatched_sizes=True to initialize it instead"
                )
            report.mismatched_keys.append((entry.pt_key, found, entry.shape))
            continue
        assign(entry, checkpoint.read(entry))
    # Unused tensors are named as the loading model would name them, like missing ones.
    prefix = next((e.pt_key[: -len(e.name)] for e in entries if e.in_backbone), "")
    backbone = {name for name, entry in checkpoint.known.items() if entry.in_backbone}
    report.unexpected_keys = [
        prefix + name if name in backbone else name for name in checkpoint.names() if name not in wanted
    ] + checkpoint.unknown_keys
    return report


def detect_head(checkpoint: SpecCheckpoint, config: RemBertConfig) -> str:
    """Which head wrote a checkpoint, judged by the tensors it holds."""
    names = set(checkpoint.names())
    if "cls.predictions.decoder.weight" in names:
        return "causal_lm" if config.is_decoder else "masked_lm"
    if "qa_outputs.weight" in names:
        return "question_answering"
    if "classifier.weight" in names:
        if checkpoint.shape(checkpoint.known["classifier.weight"])[0] == 1 and config.num_labels != 1:
            return "multiple_choice"
        return "sequence_classification" if "pooler.dense.weight" in names else "token_classification"
    return "base"


# -- writing ----------------------------------------------------------------------------------------------


def write_weights(
    directory: str | os.PathLike,
    fmt: str,
    entries: list[WeightEntry],
    fetch: Callable[[WeightEntry], np.ndarray],
    head: str,
    dtype: np.dtype | str = np.float32,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write `entries` as model.safetensors (PyTorch names) or tf_model.h5 (Hugging Face's TF names).

    `fetch(entry)` returns one tensor in PyTorch's layout (a memory-mapped view is fine); it is called once per
    entry, in order, and written as `dtype` a block of rows at a time, so memory stays near one block however
    large the tensor. `progress(n_bytes)` is told after each block.
    """
    directory = Path(directory)
    dtype = np.dtype(dtype)

    def in_layout(entry: WeightEntry, transpose: bool) -> np.ndarray:
        array = fetch(entry)
        if tuple(array.shape) != entry.shape:
            raise ValueError(f"tensor {entry.pt_key!r} has shape {tuple(array.shape)}, the spec says {entry.shape}")
        return array.T if transpose else array

    if fmt == SAFETENSORS:
        by_key = {entry.pt_key: entry for entry in entries}
        plan = [(entry.pt_key, entry.shape, dtype) for entry in entries]
        return write_safetensors_checkpoint(
            directory,
            plan,
            lambda key: in_layout(by_key[key], False),
            max_shard_size=max_shard_size,
            progress=progress,
        )
    if fmt == TF_H5:
        if dtype.kind != "f" or dtype.itemsize < 2 or dtype.name == "bfloat16":
            raise ValueError(f"tf_model.h5 cannot hold {dtype}; use float32 or float16")
        scope = get_head(head).tf_scope
        by_key = {f"{scope}/{entry.tf_name}": entry for entry in entries}
        plan = [(entry.h5_layer, f"{scope}/{entry.tf_name}", entry.tf_shape, dtype) for entry in entries]
        directory.mkdir(parents=True, exist_ok=True)
        fetch_tf = lambda key: in_layout(by_key[key], by_key[key].tf_transpose)  # noqa: E731
        return [write_h5(directory / H5_NAME, plan, fetch_tf, progress)]
    raise ValueError(f"cannot write checkpoint format {fmt!r}; writable formats: {SAFETENSORS}, {TF_H5}")


__all__ = [
    "CONFIG_NAME",
    "FORMATS",
    "LoadReport",
    "SpecCheckpoint",
    "detect_head",
    "find_weights_file",
    "load_weights",
    "open_checkpoint",
    "weight_spec",
    "write_weights",
]
