"""Model directories and checkpoint files seen through the weight spec.

`open_checkpoint` finds the weights in a directory (or takes a file or a Google checkpoint prefix) and returns a
`SpecCheckpoint`: the file's tensors under canonical names, in PyTorch's layout. Loading a model is then one
loop (`load_weights`) and writing one is another (`write_weights`); both backends and the converter use them,
so missing, unexpected and mis-shaped tensors are reported with the same words whatever the format.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import CONFIG_NAME, RemBertConfig
from .fit import check_fit, name_list, sentence
from .formats import (
    FORMATS,
    format_of,
    get_format,
    google_tf,
    hf_h5,
    load_order,
    safetensors,
    torch_bin,
    writable_formats,
)
from .formats.safetensors import DEFAULT_MAX_SHARD_SIZE
from .tensor_reader import READ_ONLY, Access, CheckpointError, FileStamp, TensorReader
from .weights import IGNORED_KEYS, WeightEntry, all_weight_names, canonical_name, detect_head, weight_spec

logger = logging.getLogger("rembert")

# The registry's names, kept importable here for the backends (rembert_spec.formats is where formats live).
SAFETENSORS = safetensors.FORMAT.name
PYTORCH_BIN = torch_bin.FORMAT.name
TF_H5 = hf_h5.FORMAT.name
GOOGLE_TF = google_tf.FORMAT.name


def find_weights_file(directory: str | os.PathLike, prefer: Iterable[str] = load_order("torch")) -> Path:
    """The weights of a model directory: the first file found of the `prefer` formats, in order, else of the other
    registered formats (a Google checkpoint directory's `checkpoint` file). Raises naming what was looked for."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such model directory")
    prefer = [get_format(name) for name in prefer]
    for fmt in prefer + [fmt for fmt in FORMATS.values() if fmt not in prefer]:
        for name in fmt.file_names:
            if (directory / name).is_file():
                return directory / name
    looked_for = [name for fmt in prefer for name in fmt.file_names]
    raise CheckpointError(f"{directory}: no weights found (looked for {', '.join(looked_for)})")


@dataclass
class SpecCheckpoint:
    """A checkpoint's tensors under canonical names, read in PyTorch's layout.

    Tensors whose names the spec does not know stay reachable under their raw names in `unknown_keys`.
    """

    reader: TensorReader
    format: str  # the registry name of its format
    _keys: dict[str, str] = field(default_factory=dict)  # canonical name -> key in the file
    unknown_keys: list[str] = field(default_factory=list)
    known: dict[str, WeightEntry] = field(default_factory=dict)  # every name the spec knows for this config
    config: RemBertConfig | None = None  # the config it was opened for

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
        return entry.tf_transpose and get_format(self.format).transposed

    def shape(self, entry: WeightEntry) -> tuple[int, ...]:
        shape = self.reader.info(self._keys[entry.name]).shape
        return tuple(reversed(shape)) if self._file_transposed(entry) else tuple(shape)

    def dtype(self, entry: WeightEntry) -> np.dtype:
        return self.reader.info(self._keys[entry.name]).dtype

    def _transposed(self, entry: WeightEntry, tf_layout: bool) -> bool:
        return entry.tf_transpose and self._file_transposed(entry) != tf_layout

    def _copied(self, entry: WeightEntry, tf_layout: bool, dtype: np.dtype | None) -> bool:
        """The caller copies this tensor anyway: transposed to its layout, or cast to the `dtype` it stores."""
        return self._transposed(entry, tf_layout) or (dtype is not None and np.dtype(dtype) != self.dtype(entry))

    def read(self, entry: WeightEntry, tf_layout: bool = False, dtype: np.dtype | None = None) -> np.ndarray:
        """The tensor in PyTorch's layout, or TensorFlow's with `tf_layout` (Dense kernels [in, out]).

        Where the file keeps the other layout, or holds another dtype than the `dtype` the caller will store, the
        caller copies it anyway: it then comes as a (transposed) view of the file's map, so that copy is the only
        pass over the bytes, whatever the reader's access."""
        transposed = self._transposed(entry, tf_layout)
        array = self.reader.read(self._keys[entry.name], transient=self._copied(entry, tf_layout, dtype))
        return array.T if transposed else array

    def read_ahead(self, entries: list[WeightEntry], tf_layout: bool = False, dtype: np.dtype | None = None) -> None:
        """Let the reader start reading now, on a background thread, the tensors that `load_weights` with the same
        arguments will read into memory of their own (those of `entries` the file holds in their shape, not
        copied by the caller anyway), while the caller does other work: builds the model. The tensors are the
        same, and so are the errors (raised when each is read); only the time moves."""
        keys = [
            self._keys[entry.name]
            for entry in entries
            if entry.name in self._keys
            and self.shape(entry) == entry.shape
            and not self._copied(entry, tf_layout, dtype)
        ]
        self.reader.read_ahead(keys)

    @property
    def mapped_files(self) -> list[FileStamp]:
        """The files whose pages arrays read with writable, mapped access may keep using (`FileStamp`)."""
        return list(self.reader.mapped_files)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> SpecCheckpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _index_keys(reader: TensorReader, fmt: str, known: dict[str, WeightEntry]) -> tuple[dict[str, str], list[str]]:
    name_of = get_format(fmt).canonical_names(known)
    keys, unknown = {}, []
    for key in reader.keys():
        name = name_of(key)
        if name is None or name in keys:
            if canonical_name(key) not in IGNORED_KEYS:
                unknown.append(key)
        else:
            keys[name] = key
    return keys, unknown


def _exists(path: Path) -> bool:
    """A file, a directory, or a prefix naming files beside it (Google's `model.ckpt` -> `model.ckpt.index`)."""
    return path.exists() or (path.parent.is_dir() and any(path.parent.glob(f"{glob.escape(path.name)}.*")))


def open_checkpoint(
    path: str | os.PathLike,
    config: RemBertConfig,
    prefer: Iterable[str] = load_order("torch"),
    access: Access = READ_ONLY,
) -> SpecCheckpoint:
    """Open a model directory, a weights file, or a Google TF checkpoint prefix, for reading through the spec.

    In a directory, the formats are looked for in the order of `prefer` (registry names, see
    `rembert_spec.formats.load_order`). `access` says how tensors come back (`tensor_reader.Access`): read-only
    views of a memory map (the default); writable copy-on-write views, which a model may adopt as its own storage
    without copying; or memory of their own, read once (`PRIVATE`).
    """
    path = Path(path)
    if path.is_dir():
        path = find_weights_file(path, prefer)
    elif not _exists(path):
        raise CheckpointError(f"{path}: no such file or directory")
    fmt = format_of(path)
    reader = fmt.open(path, access)
    known = all_weight_names(config)
    keys, unknown = _index_keys(reader, fmt.name, known)
    return SpecCheckpoint(reader, fmt.name, keys, unknown, known, config)


# -- loading ----------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What a load found, in the model's PyTorch state-dict names (the same for every format).

    `cause` is one sentence when most of the checkpoint does not fit the config (see `rembert_spec.fit`).
    """

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    cause: str | None = None
    mapped_files: list[FileStamp] = field(default_factory=list)  # files whose copy-on-write pages were handed out

    def as_dict(self) -> dict[str, list]:
        return {
            "missing_keys": list(self.missing_keys),
            "unexpected_keys": list(self.unexpected_keys),
            "mismatched_keys": list(self.mismatched_keys),
            "error_msgs": [],
        }

    @property
    def exact(self) -> bool:
        """Every tensor the model has came from the checkpoint, and every tensor of the checkpoint was used."""
        return not (self.missing_keys or self.unexpected_keys or self.mismatched_keys)

    def details(self, model_name: str) -> list[str]:
        """One line per kind of problem, long name lists cut to their first few names and a count."""
        lines = []
        if self.unexpected_keys:
            lines.append(
                f"{len(self.unexpected_keys)} weight(s) of the checkpoint not used by {model_name}: "
                f"{name_list(self.unexpected_keys)}"
            )
        if self.missing_keys:
            lines.append(
                f"{len(self.missing_keys)} weight(s) of {model_name} not in the checkpoint, newly initialized: "
                f"{name_list(self.missing_keys)}"
            )
        if self.mismatched_keys:
            shapes = [f"{key} {found} in the checkpoint, {shape}" for key, found, shape in self.mismatched_keys]
            lines.append(
                f"{len(self.mismatched_keys)} weight(s) of {model_name} of another shape in the checkpoint, newly "
                f"initialized: {name_list(shapes)}"
            )
        return lines

    def headline(self, model_name: str, path: Path) -> str | None:
        """The first sentence when most of the checkpoint does not fit the config, else None."""
        if not self.cause:
            return None
        return sentence(f"{path} does not fit the config of {model_name}: {self.cause}")

    def log(self, model_name: str, path: Path) -> None:
        """Warn about what did not fit: the cause first when there is one, then each list, summarised."""
        lines = self.details(model_name)
        headline = self.headline(model_name, path)
        if headline:
            logger.warning("\n".join([headline, *(f"  {line}" for line in lines)]))
        else:
            for line in lines:
                logger.warning("%s: %s", path, line)

    def strict_error(self, model_name: str, path: Path) -> CheckpointError | None:
        """The error `strict=True` raises when the checkpoint and the model do not hold the same tensors."""
        if self.exact:
            return None
        headline = self.headline(model_name, path) or f"{path} does not hold exactly the weights of {model_name}."
        details = " ".join(f"{line}." for line in self.details(model_name))
        return CheckpointError(f"{headline} {details} (strict=True: pass strict=False to load it anyway)")


def load_weights(
    entries: list[WeightEntry],
    checkpoint: SpecCheckpoint,
    assign: Callable[[WeightEntry, np.ndarray], None],
    ignore_mismatched_sizes: bool = False,
    strict: bool = False,
    model_name: str = "the model",
    tf_layout: bool = False,
    dtype: np.dtype | None = None,
) -> LoadReport:
    """For each spec entry, read its tensor (PyTorch's layout, or TensorFlow's with `tf_layout`) and hand it to
    `assign`, which stores it as `dtype` (None: as the file holds it); report what did not fit.

    Checked before any tensor is read, from names and shapes: a shape mismatch is an error naming the tensor and
    both shapes unless `ignore_mismatched_sizes`; with `strict`, so is any missing or unused tensor. Either error,
    and the report, say first why the checkpoint does not fit when most of it does not (`LoadReport.cause`).
    """
    fit = check_fit(checkpoint, entries)
    cause = fit.cause()
    if fit.mismatched and not ignore_mismatched_sizes:
        why = cause or fit.sizes_sentence()
        entry, found = fit.mismatched[0]
        others = f" ({len(fit.mismatched) - 1} more tensor(s) differ too)" if len(fit.mismatched) > 1 else ""
        raise CheckpointError(
            f"{checkpoint.path}: {why + ': ' if why else ''}tensor {entry.pt_key!r} "
            f"({checkpoint.file_key(entry.name)}) has shape {found} in the checkpoint but the model expects "
            f"{entry.shape}{others}; pass ignore_mismatched_sizes=True to initialize it instead"
        )
    # Unused tensors are named as the loading model would name them, like missing ones.
    wanted = {entry.name for entry in entries}
    prefix = next((e.pt_key[: -len(e.name)] for e in entries if e.in_backbone), "")
    backbone = {name for name, entry in checkpoint.known.items() if entry.in_backbone}
    report = LoadReport(
        missing_keys=[entry.pt_key for entry in fit.missing],
        unexpected_keys=[
            prefix + name if name in backbone else name for name in checkpoint.names() if name not in wanted
        ]
        + checkpoint.unknown_keys,
        mismatched_keys=[(entry.pt_key, found, entry.shape) for entry, found in fit.mismatched],
        cause=cause,
    )
    error = report.strict_error(model_name, checkpoint.path) if strict else None
    if error is not None:
        raise error
    fresh = {entry.name for entry in fit.missing} | {entry.name for entry, _ in fit.mismatched}
    for entry in entries:
        if entry.name not in fresh:
            assign(entry, checkpoint.read(entry, tf_layout, dtype))
    report.mapped_files = checkpoint.mapped_files
    return report


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
    """Write `entries` in the format registered as `fmt` (model.safetensors under PyTorch names, tf_model.h5 under
    Hugging Face's TF names, ...), in that format's layout.

    `fetch(entry)` returns one tensor in PyTorch's layout (a memory-mapped view is fine); it is called once per
    entry, in order, and written as `dtype` a block of rows at a time, so memory stays near one block however
    large the tensor. `progress(n_bytes)` is told after each block.
    """
    format_ = FORMATS.get(fmt)
    if format_ is None or format_.write is None:
        raise ValueError(f"cannot write checkpoint format {fmt!r}; writable formats: {', '.join(writable_formats())}")

    def in_layout(entry: WeightEntry) -> np.ndarray:
        array = fetch(entry)
        if tuple(array.shape) != entry.shape:
            raise ValueError(f"tensor {entry.pt_key!r} has shape {tuple(array.shape)}, the spec says {entry.shape}")
        return array.T if format_.transposed and entry.tf_transpose else array

    return format_.write(Path(directory), entries, in_layout, head, np.dtype(dtype), max_shard_size, progress)


__all__ = [
    "CONFIG_NAME",
    "FORMATS",
    "GOOGLE_TF",
    "PYTORCH_BIN",
    "SAFETENSORS",
    "TF_H5",
    "LoadReport",
    "SpecCheckpoint",
    "detect_head",
    "find_weights_file",
    "load_order",
    "load_weights",
    "open_checkpoint",
    "weight_spec",
    "write_weights",
]
