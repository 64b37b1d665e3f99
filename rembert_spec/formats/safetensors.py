"""model.safetensors, single or sharded, read by memory map and written one tensor at a time.

The format is small enough to own: 8 bytes of little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw bytes. Owning it lets us validate every header field before a byte
of data is touched, hand out zero-copy numpy views, stream writes from a plan, and handle bfloat16 in numpy.
Tensors are named by their PyTorch state-dict keys, in PyTorch's layout.
"""

from __future__ import annotations

import functools
import json
import math
import mmap
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

from .. import streaming
from ..atomic import atomic_write
from ..tensor_reader import (
    READ_ONLY,
    Access,
    CheckpointError,
    FileStamp,
    ShardedReader,
    TensorInfo,
    TensorReader,
    read_private,
)
from ..weights import WeightEntry, state_dict_names
from ..write_behind import WriteBehind
from .checkpoint_format import CheckpointFormat

SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_SIZE = 5 * 10**9
_MAX_HEADER_BYTES = 100 * 2**20

_DTYPES: dict[str, np.dtype] = {  # the usual model dtypes first: FORMAT.dtypes lists them in this order
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F64": np.dtype(np.float64),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


def dtype_name(dtype: np.dtype) -> str:
    try:
        return _DTYPE_NAMES[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"safetensors cannot store dtype {np.dtype(dtype)}") from None


# -- reading ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    info: TensorInfo
    begin: int  # absolute file offset
    end: int


def _parse_header(path: Path, file_size: int, head: bytes) -> tuple[dict[str, _Entry], dict[str, str]]:
    if file_size < 8:
        raise CheckpointError(f"{path}: not a safetensors file (only {file_size} bytes)")
    (header_len,) = np.frombuffer(head[:8], dtype="<u8")
    header_len = int(header_len)
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > file_size:
        raise CheckpointError(
            f"{path}: corrupt or truncated safetensors file (header of {header_len} bytes, file of {file_size})"
        )
    try:
        header = json.loads(head[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: corrupt safetensors header (__metadata__ must map strings to strings)")
    data_start = 8 + header_len
    entries = {}
    for name, desc in header.items():
        entries[name] = _parse_entry(path, name, desc, data_start)
    _check_layout(path, entries, data_start, file_size)
    return entries, metadata


def _parse_entry(path: Path, name: str, desc: object, data_start: int) -> _Entry:
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: corrupt safetensors header for tensor {name!r}: {why}")

    if not isinstance(desc, dict):
        raise bad("entry is not an object")
    dtype = _DTYPES.get(desc.get("dtype"))
    if dtype is None:
        raise bad(f"unsupported dtype {desc.get('dtype')!r}")
    shape, offsets = desc.get("shape"), desc.get("data_offsets")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad(f"bad shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets)):
        raise bad(f"bad data_offsets {offsets!r}")
    begin, end = offsets
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise bad(f"shape {tuple(shape)} of {dtype} needs {math.prod(shape) * dtype.itemsize} bytes, not {end - begin}")
    return _Entry(TensorInfo(tuple(shape), dtype), data_start + begin, data_start + end)


def _check_layout(path: Path, entries: Mapping[str, _Entry], data_start: int, file_size: int) -> None:
    position = data_start
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            raise CheckpointError(
                f"{path}: corrupt safetensors header: tensor {name!r} starts at byte {entry.begin - data_start} "
                f"of the data, expected {position - data_start} (overlap or gap)"
            )
        position = entry.end
    if position != file_size:
        raise CheckpointError(
            f"{path}: truncated or corrupt safetensors file: data ends at byte {position}, file has {file_size}"
        )


class SafetensorsReader(TensorReader):
    """One .safetensors file, memory-mapped; `read` returns zero-copy views.

    Views are read-only, or with writable `access` private copy-on-write pages: a model can then use them as its
    parameters directly, and only pages it later changes are copied (the file itself is never written). Tensors
    the access does not take as views (`mapped=False`, or not aligned as asked) are read once into memory of
    their own.
    """

    def __init__(self, path: str | os.PathLike, access: Access = READ_ONLY):
        self.path = Path(path)
        self._access = access
        try:
            self._file = open(self.path, "rb", buffering=0)
        except FileNotFoundError:
            raise CheckpointError(f"{self.path}: no such file") from None
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot open ({e.strerror})") from None
        try:
            size = os.fstat(self._file.fileno()).st_size
            mode = mmap.ACCESS_COPY if access.writable else mmap.ACCESS_READ
            self._mmap = mmap.mmap(self._file.fileno(), 0, access=mode) if size else None
            head = self._mmap[:8] if self._mmap else b""
            if len(head) == 8:  # only the header itself is read: the tensors stay on disk until asked for
                header_len = int.from_bytes(head, "little")
                head += self._mmap[8 : 8 + min(header_len, _MAX_HEADER_BYTES)]
            self._entries, self.metadata = _parse_header(self.path, size, head)
            self._base = _address(self._mmap) if self._mmap else 0
            keeps_map = access.writable and access.mapped
            self.mapped_files = [FileStamp.of(self.path, self._file.fileno())] if keeps_map else []
        except BaseException:
            self.close()
            raise

    def keys(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def info(self, key: str) -> TensorInfo:
        try:
            return self._entries[key].info
        except KeyError:
            raise self._missing(key) from None

    def read(self, key: str, transient: bool = False) -> np.ndarray:
        entry = self._entries.get(key)
        if entry is None:
            raise self._missing(key)
        count = math.prod(entry.info.shape)
        if count == 0:
            return np.zeros(entry.info.shape, entry.info.dtype)
        if not transient and self._access.wants_private_copy(self._base + entry.begin):
            return read_private(self._file, entry.begin, entry.info.dtype, entry.info.shape, self.path, key)
        array = np.frombuffer(self._mmap, dtype=entry.info.dtype, count=count, offset=entry.begin)
        return array.reshape(entry.info.shape)

    def close(self) -> None:
        # Views handed out keep the map alive through their buffer; closing only drops our references.
        self._mmap = None
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None


def _address(memory: mmap.mmap) -> int:
    """Where a map starts in memory (page-aligned), to tell which offsets in it are aligned."""
    return np.frombuffer(memory, np.uint8, count=1).ctypes.data if len(memory) else 0


# -- writing ----------------------------------------------------------------------------------------------

TensorPlan = Iterable[tuple[str, tuple[int, ...], np.dtype]]


def _header_bytes(plan: list[tuple[str, tuple[int, ...], np.dtype]], metadata: Mapping[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, shape, dtype in plan:
        size = math.prod(shape) * np.dtype(dtype).itemsize
        header[name] = {
            "dtype": dtype_name(dtype),
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # keeps tensor data 8-byte aligned, as the reference writer does
    return len(raw).to_bytes(8, "little") + raw


def _write_error(error: OSError, path: Path, name: str) -> OSError:
    return OSError(error.errno, f"{path}: cannot write tensor {name!r} ({error.strerror or error})")


def write_safetensors(
    path: str | os.PathLike,
    plan: TensorPlan,
    fetch: Callable[[str], np.ndarray],
    metadata: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    block_bytes: int = streaming.BLOCK_BYTES,
) -> Path:
    """Write tensors in `plan` order, calling `fetch(name)` for one tensor at a time.

    The header comes from the plan, so nothing is buffered: each tensor (any strides, any dtype) is cast and
    written a block of rows at a time, and `progress(n_bytes)` is told after each block. The file appears at
    `path` only when complete.
    """
    plan = [(name, tuple(shape), np.dtype(dtype)) for name, shape, dtype in plan]
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        write_behind = WriteBehind(f)
        f.write(_header_bytes(plan, metadata or {}))
        for name, shape, dtype in plan:
            array = fetch(name)
            if tuple(array.shape) != shape:
                raise ValueError(f"{path}: tensor {name!r} has shape {tuple(array.shape)}, the plan said {shape}")
            try:
                for block in streaming.row_blocks(array, dtype, block_bytes):
                    f.write(block.reshape(-1).view(np.uint8).data)  # raw bytes: bfloat16 has no buffer code
                    write_behind.written()
                    if progress is not None:
                        progress(block.nbytes)
            except OSError as e:
                raise _write_error(e, path, name) from e
    return path


def parse_size(size: int | str) -> int:
    """'5GB' -> 5_000_000_000, '500MiB' -> 524_288_000; ints pass through."""
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"shard size must be positive, got {size}")
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B)?\s*", str(size).upper())
    if not match:
        raise ValueError(f"cannot read a size from {size!r}; write e.g. 5GB, 500MB or 2GiB")
    number, unit = float(match.group(1)), match.group(2) or "B"
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}.get(unit) or 2 ** (
        10 * "KMGT".index(unit[0]) + 10
    )
    value = int(number * scale)
    if value <= 0:
        raise ValueError(f"shard size must be positive, got {size!r}")
    return value


def write_safetensors_checkpoint(
    directory: str | os.PathLike,
    plan: TensorPlan,
    fetch: Callable[[str], np.ndarray],
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    metadata: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    block_bytes: int = streaming.BLOCK_BYTES,
) -> list[Path]:
    """model.safetensors, or model-0000i-of-0000n.safetensors shards plus their index when over max_shard_size."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    limit = parse_size(max_shard_size)
    plan = [(name, tuple(shape), np.dtype(dtype)) for name, shape, dtype in plan]
    shards: list[list] = [[]]
    shard_bytes = 0
    for item in plan:
        size = math.prod(item[1]) * item[2].itemsize
        if shards[-1] and shard_bytes + size > limit:
            shards.append([])
            shard_bytes = 0
        shards[-1].append(item)
        shard_bytes += size
    metadata = {"format": "pt", **(metadata or {})}
    if len(shards) == 1:
        stale_index = directory / SAFETENSORS_INDEX_NAME
        written = [write_safetensors(directory / SAFETENSORS_NAME, plan, fetch, metadata, progress, block_bytes)]
        stale_index.unlink(missing_ok=True)
        return written
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    written = [
        write_safetensors(directory / n, shard, fetch, metadata, progress, block_bytes)
        for n, shard in zip(names, shards, strict=True)
    ]
    index = {
        "metadata": {"total_size": sum(math.prod(s) * d.itemsize for _, s, d in plan)},
        "weight_map": {name: n for n, shard in zip(names, shards, strict=True) for name, _, _ in shard},
    }
    index_path = directory / SAFETENSORS_INDEX_NAME
    with atomic_write(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    (directory / SAFETENSORS_NAME).unlink(missing_ok=True)  # it would shadow the shards when loading
    return [*written, index_path]


# -- the format -----------------------------------------------------------------------------------------------


def _recognises(path: Path) -> bool:
    return path.name.endswith((".safetensors", ".safetensors.index.json"))


def _open(path: Path, access: Access) -> TensorReader:
    if path.name.endswith(".index.json"):
        return ShardedReader(path, functools.partial(SafetensorsReader, access=access))
    return SafetensorsReader(path, access)


def _write(
    directory: Path,
    entries: list[WeightEntry],
    fetch: Callable[[WeightEntry], np.ndarray],
    head: str,
    dtype: np.dtype,
    max_shard_size: int | str,
    progress: Callable[[int], None] | None,
) -> list[Path]:
    by_key = {entry.pt_key: entry for entry in entries}
    plan = [(entry.pt_key, entry.shape, dtype) for entry in entries]
    return write_safetensors_checkpoint(
        directory, plan, lambda key: fetch(by_key[key]), max_shard_size=max_shard_size, progress=progress
    )


FORMAT = CheckpointFormat(
    name="safetensors",
    file_names=(SAFETENSORS_NAME, SAFETENSORS_INDEX_NAME),
    transposed=False,
    dtypes=tuple(dtype.name for dtype in _DTYPES.values()),
    key=lambda entry: entry.pt_key,
    canonical_names=state_dict_names,
    recognises=_recognises,
    open=_open,
    write=_write,
)
