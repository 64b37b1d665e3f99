"""tf_model.h5 in Hugging Face's Keras-2 layout, read and written with h5py (never through Keras).

Layout: the file's `layer_names` attribute lists top-level layers (`rembert`, `mlm___cls`, `classifier`...);
each layer group's `weight_names` attribute lists full weight names (`<model scope>/rembert/.../kernel:0`), and
the dataset of a weight sits at `<layer>/<weight name>`. An attribute too large for an HDF5 object header is
split into `weight_names0`, `weight_names1`, ... as Keras does. Dense kernels are stored [in, out].

Weight names are Keras variable paths built from the canonical name:

>>> from rembert_spec import RemBertConfig, weight_spec
>>> config = RemBertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
>>> [weight_name(entry) for entry in weight_spec(config, "masked_lm")[5:8]]
['rembert/encoder/embedding_hidden_mapping_in/kernel:0', 'rembert/encoder/embedding_hidden_mapping_in/bias:0', \
'rembert/encoder/layer_._0/attention/self/query/kernel:0']
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import h5py
import numpy as np

from .. import streaming
from ..atomic import atomic_write
from ..tensor_reader import (
    READ_AHEAD_SUPPORTED,
    READ_ONLY,
    Access,
    CheckpointError,
    FileStamp,
    PlannedRead,
    ReadAhead,
    TensorInfo,
    TensorReader,
    read_private,
)
from ..weights import WeightEntry, get_head
from ..write_behind import WriteBehind
from .checkpoint_format import CheckpointFormat

H5_NAME = "tf_model.h5"
BACKBONE_SCOPE = "rembert"
_ATTRIBUTE_LIMIT = 64512  # bytes an HDF5 object header holds for attributes
ALIGNMENT = 64  # bytes; what Eigen (TensorFlow's tensors) requires of a buffer it uses without copying


# -- names ------------------------------------------------------------------------------------------------------
# Hugging Face's TF RemBERT names variables as Keras layers do: Dense "kernel"/"bias", LayerNormalization
# "gamma"/"beta", the position and token-type tables "embeddings" (Keras Embedding layers), the word table and the
# LM decoder "weight" (plain add_weight). Layer `i` of the encoder is the scope `layer_._i`, the LM head `mlm___cls`.
_KERAS_EMBEDDINGS = ("embeddings.position_embeddings", "embeddings.token_type_embeddings")
_LAYER_NORM_LEAVES = {"weight": "gamma", "bias": "beta"}


def variable_leaf(entry: WeightEntry) -> str:
    """The Keras variable name of a parameter inside its layer: kernel, bias, gamma, beta, embeddings or weight.
    Google's checkpoints use the same leaves (`rembert_spec.formats.google_tf`)."""
    module, parameter = entry.name.rsplit(".", 1)
    if module.endswith("LayerNorm"):
        return _LAYER_NORM_LEAVES[parameter]
    if entry.tf_transpose:
        return "kernel"
    if module in _KERAS_EMBEDDINGS:
        return "embeddings"
    return parameter


def weight_name(entry: WeightEntry) -> str:
    """The weight's name in tf_model.h5 without the saving model's scope: `rembert/encoder/layer_._0/.../kernel:0`."""
    path = entry.name.rsplit(".", 1)[0].replace(".", "/")
    path = re.sub(r"^cls/", "mlm___cls/", re.sub(r"\blayer/(\d+)", r"layer_._\1", path))
    scope = f"{BACKBONE_SCOPE}/" if entry.in_backbone else ""
    return f"{scope}{path}/{variable_leaf(entry)}:0"


def _canonical_names(known: Mapping[str, WeightEntry]) -> Callable[[str], str | None]:
    by_weight_name = {weight_name(entry): name for name, entry in known.items()}
    # The first component of a key is the saving model's own scope (tf_rem_bert_for_masked_lm, ...).
    return lambda key: by_weight_name.get(key.split("/", 1)[-1])


# -- reading ----------------------------------------------------------------------------------------------------


def _read_attribute_list(group: h5py.Group, name: str) -> list[str]:
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _write_attribute_list(group: h5py.Group, name: str, values: list[str]) -> None:
    encoded = np.array([v.encode("utf-8") for v in values])
    chunks = max(1, -(-encoded.nbytes // _ATTRIBUTE_LIMIT))
    if chunks == 1:
        group.attrs[name] = encoded
        return
    for i, part in enumerate(np.array_split(encoded, chunks)):
        group.attrs[f"{name}{i}"] = part


class H5Reader(TensorReader):
    """Weights of a Hugging Face tf_model.h5. Contiguous datasets are memory-mapped, not copied (read-only, or
    writable private pages with writable `access`); those the access does not take as views (`mapped=False`, or
    not aligned as asked: Hugging Face's own files place most datasets at offsets TensorFlow cannot use in place)
    are read once, straight from the file into memory of their own."""

    def __init__(self, path: str | os.PathLike, access: Access = READ_ONLY):
        self.path = Path(path)
        self._access = access
        self._map_mode = "c" if access.writable else "r"
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise CheckpointError(f"{self.path}: not a readable HDF5 file ({e})") from None
        self._raw: BinaryIO | None = None  # the file's bytes, for datasets read into memory of their own
        self._ahead: ReadAhead | None = None
        try:
            self._datasets = self._index()
            self._raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 - owned by the reader until close()
            stamp = FileStamp.of(self.path, self._raw.fileno())
        except CheckpointError:
            self.close()
            raise
        except Exception as e:  # h5py raises many types for damaged files; all mean the same to a user
            self.close()
            raise CheckpointError(f"{self.path}: corrupt tf_model.h5 ({type(e).__name__}: {e})") from None
        self._size = stamp.size
        self.mapped_files = [stamp] if access.writable and access.mapped else []

    def _index(self) -> dict[str, h5py.Dataset]:
        if "layer_names" not in self._file.attrs:
            raise CheckpointError(f"{self.path}: not a Keras weights file (no layer_names attribute)")
        datasets = {}
        for layer in _read_attribute_list(self._file, "layer_names"):
            if layer not in self._file:
                raise CheckpointError(f"{self.path}: layer {layer!r} is listed but has no group")
            group = self._file[layer]
            for weight_name in _read_attribute_list(group, "weight_names"):
                dataset = group.get(weight_name)
                if not isinstance(dataset, h5py.Dataset):
                    raise CheckpointError(f"{self.path}: weight {weight_name!r} is listed but has no dataset")
                datasets[weight_name] = dataset
        return datasets

    def keys(self) -> list[str]:
        return list(self._datasets)

    def __contains__(self, key: str) -> bool:
        return key in self._datasets

    def info(self, key: str) -> TensorInfo:
        if key not in self._datasets:
            raise self._missing(key)
        dataset = self._datasets[key]
        return TensorInfo(tuple(dataset.shape), np.dtype(dataset.dtype))

    def _contiguous(self, dataset: h5py.Dataset) -> int | None:
        """The byte offset of a dataset stored as one run of plain numbers inside the file; None for one HDF5 must
        assemble (chunked, compressed, empty, or of another kind). ValueError when its data runs past the end."""
        offset = dataset.id.get_offset()
        if offset is None or not dataset.size or dataset.dtype.kind not in "fiub":
            return None
        if offset + dataset.size * dataset.dtype.itemsize > self._size:
            raise ValueError(f"its data runs past the end of the file ({self._size} bytes)")
        return offset

    def read_ahead(self, keys: Sequence[str]) -> None:
        """Start reading, on a background thread, the datasets of `keys` that `read` would read into memory of
        their own (`tensor_reader.ReadAhead`); `read` then takes them from it. Anything unusual about a dataset
        (not contiguous, past the end of the file) is left to `read`, which says what is wrong."""
        if self._ahead is not None or not READ_AHEAD_SUPPORTED:
            return
        planned = []
        for key in keys:
            dataset = self._datasets.get(key)
            try:
                offset = None if dataset is None else self._contiguous(dataset)
            except Exception:  # noqa: BLE001 - `read` raises the error, with its message
                continue
            if offset is not None and self._access.wants_private_copy(offset):
                planned.append(PlannedRead(key, offset, np.dtype(dataset.dtype), tuple(dataset.shape)))
        if planned:
            self._ahead = ReadAhead(self._raw.fileno(), self.path, planned)

    def read(self, key: str, transient: bool = False) -> np.ndarray:
        if key not in self._datasets:
            raise self._missing(key)
        if self._ahead is not None and (array := self._ahead.take(key)) is not None:
            return array
        dataset = self._datasets[key]
        try:
            offset = self._contiguous(dataset)
            if offset is None:
                return np.asarray(dataset[()])  # chunked, compressed or empty: HDF5 assembles it
            shape, dtype = tuple(dataset.shape), np.dtype(dataset.dtype)
            # A map starts at a page boundary, so a dataset's address there is aligned as its file offset is.
            if not transient and self._access.wants_private_copy(offset):
                return read_private(self._raw, offset, dtype, shape, self.path, key)
            return np.memmap(self.path, dtype=dtype, mode=self._map_mode, offset=offset, shape=shape)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{self.path}: cannot read tensor {key!r} ({e})") from None

    def close(self) -> None:
        if getattr(self, "_ahead", None) is not None:
            self._ahead.close()  # before the file it reads is closed
            self._ahead = None
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
        if getattr(self, "_raw", None) is not None:
            self._raw.close()
            self._raw = None


# -- writing ----------------------------------------------------------------------------------------------------


def write_h5(
    path: str | os.PathLike,
    plan: Iterable[tuple[str, str, tuple[int, ...], np.dtype]],
    fetch: Callable[[str], np.ndarray],
    progress: Callable[[int], None] | None = None,
    block_bytes: int = streaming.BLOCK_BYTES,
) -> Path:
    """Write a Keras-2 h5 weights file. `plan` rows are (layer, full weight name, shape, dtype), in order.

    HDF5 lays out the file first: every dataset is created contiguous, with its space allocated and no fill.
    Then `fetch(weight name)` supplies one tensor at a time (any strides, any dtype) and its bytes go straight to
    the dataset's place in the file, a block of rows at a time (`progress(n_bytes)` after each): plain file writes,
    several times faster than HDF5's own. The file appears at `path` only when complete.
    """
    plan = [(layer, name, tuple(shape), np.dtype(dtype).newbyteorder("<")) for layer, name, shape, dtype in plan]
    layers: dict[str, list[str]] = {}
    for layer, weight_name, _, _ in plan:
        layers.setdefault(layer, []).append(weight_name)
    path = Path(path)
    with atomic_write(path) as tmp:
        # Data aligned to 64 bytes can be used in place by frameworks that need aligned buffers (TensorFlow).
        with h5py.File(tmp, "w", alignment_threshold=1, alignment_interval=ALIGNMENT) as f:
            _write_attribute_list(f, "layer_names", list(layers))
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.21.0"
            for layer, weight_names in layers.items():
                _write_attribute_list(f.create_group(layer), "weight_names", weight_names)
            offsets = [_allocate(f[layer], name, shape, dtype) for layer, name, shape, dtype in plan]
        with open(tmp, "r+b") as raw:
            write_behind = WriteBehind(raw)
            for (_, name, shape, dtype), offset in zip(plan, offsets, strict=True):
                _write_data(raw, offset, name, shape, dtype, fetch, path, progress, block_bytes, write_behind)
    return path


def _allocate(group: h5py.Group, name: str, shape: tuple[int, ...], dtype: np.dtype) -> int | None:
    """Create a contiguous dataset whose space is allocated now and never filled; its byte offset in the file."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return group.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl).id.get_offset()


def _write_data(
    raw,
    offset: int | None,
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    fetch: Callable[[str], np.ndarray],
    path: Path,
    progress: Callable[[int], None] | None,
    block_bytes: int,
    write_behind: WriteBehind,
) -> None:
    array = fetch(name)
    if tuple(array.shape) != shape:
        raise ValueError(f"{path}: tensor {name!r} has shape {tuple(array.shape)}, the plan said {shape}")
    if offset is None:  # an empty dataset has no storage
        return
    try:
        raw.seek(offset)
        for block in streaming.row_blocks(array, dtype, block_bytes):
            raw.write(block.reshape(-1).view(np.uint8).data)
            write_behind.written()
            if progress is not None:
                progress(block.nbytes)
    except OSError as e:
        raise OSError(e.errno, f"{path}: cannot write tensor {name!r} ({e.strerror or e})") from e


# -- the format -----------------------------------------------------------------------------------------------


def _write(
    directory: Path,
    entries: list[WeightEntry],
    fetch: Callable[[WeightEntry], np.ndarray],
    head: str,
    dtype: np.dtype,
    max_shard_size: int | str,
    progress: Callable[[int], None] | None,
) -> list[Path]:
    """tf_model.h5, always one file (`max_shard_size` does not apply): each weight under the head's model scope."""
    if dtype.name not in FORMAT.dtypes:
        raise ValueError(f"{H5_NAME} cannot hold {dtype}; use float32 or float16")
    scope = get_head(head).tf_scope
    by_key = {f"{scope}/{weight_name(entry)}": entry for entry in entries}
    # Each weight goes in the group of its top-level layer: `rembert`, `mlm___cls`, `classifier`, ...
    plan = [(key.split("/", 2)[1], key, entry.tf_shape, dtype) for key, entry in by_key.items()]
    directory.mkdir(parents=True, exist_ok=True)
    return [write_h5(directory / H5_NAME, plan, lambda key: fetch(by_key[key]), progress)]


FORMAT = CheckpointFormat(
    name="tf_h5",
    file_names=(H5_NAME,),
    transposed=True,
    dtypes=("float32", "float16", "float64"),
    key=weight_name,
    canonical_names=_canonical_names,
    recognises=lambda path: path.name.endswith((".h5", ".hdf5")),
    open=lambda path, access: H5Reader(path, access),
    write=_write,
)
