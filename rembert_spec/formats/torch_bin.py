"""Read PyTorch `pytorch_model.bin` state dicts without torch, and without running code from the pickle.

`torch.save` writes a zip archive (since torch 1.6)::

    <archive>/data.pkl              the pickled state dict (protocol 2)
    <archive>/data/<key>            raw bytes of each storage, stored uncompressed and 64-byte aligned
    <archive>/byteorder             "little" or "big" (absent in old files: little)
    <archive>/version, .data/serialization_id, ...

In the pickle each tensor is a call ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
requires_grad, backward_hooks[, metadata])``, and each storage is a persistent id ``('storage', storage_type, key,
location, numel)`` where storage_type is a class such as ``torch.FloatStorage``. The state dict is a
``collections.OrderedDict``.

Only what RemBERT checkpoints hold is read: little-endian zip archives of float32, float16, bfloat16, int64 and
bool tensors. Anything else (the pre-1.6 legacy format, big-endian archives, other dtypes such as float64,
complex or float8, compressed records) is refused with a CheckpointError that says what is unsupported.

The pickle is read with a restricted unpickler after its opcodes have been checked: `find_class` resolves only an
explicit allow-list of names, each mapped to a function of this module, so no callable from the file is ever
imported or run.
"""

from __future__ import annotations

import collections
import functools
import io
import math
import mmap
import os
import pickle
import pickletools
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

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
from ..weights import state_dict_names
from .checkpoint_format import CheckpointFormat

__all__ = ["FORMAT", "TorchBinReader"]

PT_BIN_NAME = "pytorch_model.bin"
PT_BIN_INDEX_NAME = "pytorch_model.bin.index.json"

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "BoolStorage": np.dtype(np.bool_),
}
_SUPPORTED = "float32, float16, bfloat16, int64 and bool tensors (what RemBERT checkpoints hold)"
# Names of torch's tensor machinery the reader does not take: other storage classes, the dtypes that come with
# `_rebuild_tensor_v3` (float8, uint16, ...), the other rebuild functions (tensors carrying Python attributes come
# through `torch._tensor._rebuild_from_type_v2`). They get "unsupported", not "refused".
_TORCH_MODULES = ("torch", "torch.storage", "torch._utils", "torch._tensor")
_TORCH_DTYPE = re.compile(
    r"(b?float|u?int|q?u?int|complex|bits)\d\w*|bool|half|double|short|long|c?float|cdouble|chalf"
)
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_LOCAL_HEADER_BYTES = 30
_MAX_TENSOR_BYTES = 1 << 60  # far beyond any real tensor; keeps numpy's size arithmetic in range
_MAX_MESSAGE = 200
_MAX_INFLATION = 20  # a compressed zip member may not claim more than this many times the file size


class _Unsupported(ValueError):
    """Internal: valid but outside what this reader takes; the reader names the file."""


def _is_tensor_type(module: str, name: str) -> bool:
    if module not in _TORCH_MODULES:
        return False
    return name.endswith("Storage") or name.startswith("_rebuild") or bool(_TORCH_DTYPE.fullmatch(name))


def _unsupported_types(names: list[str]) -> _Unsupported:
    return _Unsupported(f"tensor type(s) {', '.join(dict.fromkeys(names))}; this reader takes {_SUPPORTED}")


# --------------------------------------------------------------------------------------------------
# what the restricted unpickler builds instead of torch objects
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stands in for a torch storage class (torch.FloatStorage, ...)."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True, slots=True)
class _Storage:
    """A storage: `nbytes` bytes of the archive's storage record `key`."""

    key: str
    dtype: np.dtype
    nbytes: int


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor described by the pickle: a strided view (in elements of `dtype`) of a storage."""

    storage: _Storage
    dtype: np.dtype
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _index_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(_is_index(v) for v in value):
        raise ValueError(f"tensor {what} {_short(value)} is not a tuple of non-negative integers")
    return tuple(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    """Validate a rebuild call's arguments: the view must lie inside its storage."""
    if not isinstance(storage, _Storage):
        raise ValueError(f"tensor storage is {type(storage).__name__}, not a storage")
    if not _is_index(storage_offset):
        raise ValueError(f"tensor storage offset {_short(storage_offset)} is not a non-negative integer")
    if metadata:  # conjugate or negative views, which only complex tensors or lazy negations carry
        raise _Unsupported(f"tensor metadata {_short(metadata)}")
    shape, strides = _index_tuple(size, "size"), _index_tuple(stride, "stride")
    if len(shape) != len(strides):
        raise ValueError(f"tensor size {shape} and stride {strides} differ in length")
    count = math.prod(shape)
    if count * storage.dtype.itemsize > _MAX_TENSOR_BYTES:
        raise ValueError(f"tensor size {shape} is implausibly large")
    if count:
        span = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + 1
        end = span * storage.dtype.itemsize
        if end > storage.nbytes:
            raise ValueError(
                f"tensor view (offset {storage_offset}, size {shape}, stride {strides}) reaches byte {end} of a "
                f"{storage.nbytes}-byte storage"
            )
    return _TensorRef(storage, storage.dtype, storage_offset, shape, strides)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> _TensorRef:
    if not isinstance(data, _TensorRef):
        raise ValueError(f"parameter data is {type(data).__name__}, not a tensor")
    return data


_REBUILD_FUNCTIONS: dict[str, Callable[..., _TensorRef]] = {
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_parameter": _rebuild_parameter,
}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Every global a state-dict pickle may name, mapped to what this module uses in its place."""
    allowed: dict[tuple[str, str], Any] = {("collections", "OrderedDict"): collections.OrderedDict}
    allowed.update({("torch._utils", name): f for name, f in _REBUILD_FUNCTIONS.items()})
    allowed.update({("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()})
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals and hands storage ids to `resolve_storage`."""

    def __init__(self, file: Any, path: Path, resolve_storage: Callable[[Any], _Storage]) -> None:
        super().__init__(file)
        self._path = path
        self._resolve_storage = resolve_storage

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            if isinstance(module, str) and isinstance(name, str) and _is_tensor_type(module, name):
                raise _unsupported_types([f"{module}.{name}"]) from None
            raise CheckpointError(
                f"{self._path}: refused to load global {_short(f'{module}.{name}')} from pickle "
                "(only tensors and ordered dicts may appear in a state dict)"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        return self._resolve_storage(pid)


# Opcodes a pickler emits for dicts, lists, tuples, strings, numbers, globals and persistent ids (protocols
# 0-4). Out: protocol 5 out-of-band buffers (BYTEARRAY8 would allocate an unchecked size), INST/OBJ/NEWOBJ
# class instantiation, EXT* extension registry lookups and text PERSID.
_ALLOWED_OPCODES = frozenset(
    "PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 "
    "LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 "
    "BINBYTES SHORT_BINBYTES BINBYTES8 EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST LIST APPEND APPENDS "
    "EMPTY_DICT DICT SETITEM SETITEMS EMPTY_SET ADDITEMS FROZENSET GET BINGET LONG_BINGET PUT BINPUT "
    "LONG_BINPUT MEMOIZE GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID".split()
)
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_opcodes(stream: io.BytesIO) -> None:
    """Walk the pickle in `stream` without executing it, then rewind.

    Refuses opcodes outside `_ALLOWED_OPCODES`, memo indices beyond the opcode count (the memo would be
    grown to that size) and any length field longer than the data (pickletools checks those); names every
    tensor type of torch's that this reader does not take, before anything is unpickled.
    """
    start = stream.tell()
    unsupported = []
    for count, (opcode, arg, _) in enumerate(pickletools.genops(stream), start=1):
        if opcode.name not in _ALLOWED_OPCODES:
            raise ValueError(f"pickle opcode {opcode.name} is not allowed in a state dict")
        if opcode.name in _MEMO_PUTS and not 0 <= arg <= count:
            raise ValueError(f"pickle memo index {arg} is out of range")
        if opcode.name == "GLOBAL":
            module, _, name = arg.partition(" ")
            if (module, name) not in _ALLOWED_GLOBALS and _is_tensor_type(module, name):
                unsupported.append(f"{module}.{name}")
    if unsupported:
        raise _unsupported_types(unsupported)
    stream.seek(start)


# --------------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------------


class TorchBinReader(TensorReader):
    """Tensors of a PyTorch state dict file (`torch.save`'s zip archive), read without torch.

    The state dict structure is unpickled (with an allow-list; nothing from the file is imported or run)
    when the reader is created; tensor bytes are memory-mapped and viewed when `read` is called, so only
    the tensors you read are paged in. `read` returns views of the map: read-only, or private copy-on-write
    pages a model may adopt as its own with writable `access` (torch.save aligns every storage to 64 bytes, so
    TensorFlow can adopt them too); a copy for data that is not aligned to its dtype. Tensors the access does
    not take as views (`mapped=False`, or not aligned as asked) are read once into memory of their own.

    Supported: float32, float16, bfloat16, int64 and bool tensors and Parameters; storage offsets, arbitrary
    strides (transposed / expanded views) and storages shared by several tensors. Non-tensor values of the dict
    are skipped. Refused with CheckpointError: any other pickled global (modules, optimizers, arbitrary
    callables), a top level that is not a dict, TorchScript archives, and (as unsupported) other dtypes, tensors
    carrying Python attributes, big-endian archives, compressed records and the legacy pre-1.6 format.
    """

    def __init__(self, path: str | os.PathLike, access: Access = READ_ONLY) -> None:
        self.path = Path(path)
        self._access = access
        self._tensors: dict[str, _TensorRef] = {}
        self._offsets: dict[str, int] = {}  # storage key -> byte offset of its record in the file
        self._zip: zipfile.ZipFile | None = None
        self._map: mmap.mmap | None = None
        self._closed = False
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - owned by the reader until close()
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot open PyTorch checkpoint ({e})") from e
        try:
            stamp = FileStamp.of(self.path, self._file.fileno())
            self._size = stamp.size
            self.mapped_files = [stamp] if access.writable and access.mapped else []
            self._open()
        except CheckpointError:
            self.close()
            raise
        except _Unsupported as e:
            self.close()
            raise CheckpointError(f"{self.path}: unsupported {e}") from None
        except Exception as e:  # any parse failure of a corrupt file becomes a CheckpointError
            self.close()
            raise CheckpointError(f"{self.path}: corrupt PyTorch checkpoint ({_describe(e)})") from e

    # -- opening ---------------------------------------------------------------------------------

    def _open(self) -> None:
        head = self._file.read(8)
        self._file.seek(0)
        if head.startswith(_ZIP_LOCAL_HEADER):
            obj = self._open_zip()
        elif head.startswith(b"\x80\x02\x8a\x0a"):  # pickle protocol 2, then an 10-byte LONG1 (the legacy magic)
            raise _Unsupported(
                "legacy PyTorch checkpoint (the pre-1.6 format, not a zip archive); "
                "re-save it with torch>=1.6: torch.save(torch.load(path), path)"
            )
        elif head.startswith(b"version "):
            raise CheckpointError(f"{self.path}: a Git LFS pointer, not the checkpoint (run `git lfs pull`)")
        elif head[:2] == b"\x80\x02":
            raise CheckpointError(f"{self.path}: a bare pickle, not a torch.save state dict")
        else:
            raise CheckpointError(f"{self.path}: not a PyTorch checkpoint (not a torch.save zip archive)")
        if not isinstance(obj, dict):
            raise CheckpointError(f"{self.path}: the pickled object is a {type(obj).__name__}, not a state dict")
        self._tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, _TensorRef)}

    def _open_zip(self) -> Any:
        try:
            self._zip = zipfile.ZipFile(self._file)
        except zipfile.BadZipFile as e:
            raise CheckpointError(f"{self.path}: corrupt or truncated zip archive ({e})") from e
        members = {info.filename: info for info in self._zip.infolist()}
        prefix = self._archive_prefix(members)
        if prefix + "byteorder" in members:
            order = self._zip.read(self._checked_member(members[prefix + "byteorder"])).decode("ascii", "replace")
            if order.strip() != "little":
                raise _Unsupported(f"byte order {order.strip()!r} (only little-endian archives are read)")
        pickled = io.BytesIO(self._zip.read(self._checked_member(members[prefix + "data.pkl"])))
        referenced: dict[str, _Storage] = {}

        def resolve(pid: Any) -> _Storage:
            return self._zip_storage(pid, prefix, members, referenced)

        try:
            _check_opcodes(pickled)
            obj = _RestrictedUnpickler(pickled, self.path, resolve).load()
        except (CheckpointError, _Unsupported):
            raise
        except Exception as e:
            raise CheckpointError(f"{self.path}: corrupt pickle data ({_describe(e)})") from e
        for key in referenced:
            self._offsets[key] = self._record_offset(members[f"{prefix}data/{key}"])
        return obj

    def _archive_prefix(self, members: dict[str, zipfile.ZipInfo]) -> str:
        candidates = sorted(n[: -len("data.pkl")] for n in members if n.endswith("data.pkl") and n.count("/") <= 1)
        candidates = [c for c in candidates if c == "" or c.endswith("/")]
        if len(candidates) != 1:
            found = "no data.pkl" if not candidates else f"several data.pkl: {candidates}"
            raise CheckpointError(f"{self.path}: zip archive is not a torch.save checkpoint ({found})")
        if candidates[0] + "constants.pkl" in members or any(n.startswith(candidates[0] + "code/") for n in members):
            raise CheckpointError(f"{self.path}: a TorchScript archive (torch.jit.save), not a state dict")
        return candidates[0]

    def _checked_member(self, member: zipfile.ZipInfo) -> zipfile.ZipInfo:
        """Refuse a member that would decompress to far more than the file holds (a zip bomb)."""
        if member.file_size > max(_MAX_INFLATION * self._size, 1 << 20):
            raise CheckpointError(f"{self.path}: zip member {member.filename} claims {member.file_size} bytes")
        return member

    def _zip_storage(
        self, pid: Any, prefix: str, members: dict[str, zipfile.ZipInfo], referenced: dict[str, _Storage]
    ) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {_short(pid)}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"storage type {_short(storage_type)} is not a torch storage type")
        if not isinstance(key, str) or not _is_index(numel):
            raise ValueError(f"malformed storage id {_short(pid)}")
        storage = _Storage(key, storage_type.dtype, numel * storage_type.dtype.itemsize)
        if referenced.setdefault(key, storage) != storage:
            raise ValueError(f"storage {key!r} is referenced with two different types or sizes")
        member = members.get(f"{prefix}data/{key}")
        if member is None:
            raise ValueError(f"storage record data/{key} is missing from the archive")
        if member.file_size != storage.nbytes:
            raise ValueError(
                f"storage record data/{key} holds {member.file_size} bytes, the pickle expects {storage.nbytes}"
            )
        return storage

    def _record_offset(self, member: zipfile.ZipInfo) -> int:
        """Where a storage record's bytes start in the file: records are stored, so they are memory-mapped there."""
        if member.flag_bits & 0x1:
            raise CheckpointError(f"{self.path}: zip member {member.filename} is encrypted")
        if member.compress_type != zipfile.ZIP_STORED:
            raise _Unsupported(f"compressed zip member {member.filename} (torch.save stores tensors uncompressed)")
        self._file.seek(member.header_offset)
        header = self._file.read(_ZIP_LOCAL_HEADER_BYTES)
        if len(header) != _ZIP_LOCAL_HEADER_BYTES or not header.startswith(_ZIP_LOCAL_HEADER):
            raise CheckpointError(f"{self.path}: bad zip local header for {member.filename}")
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        offset = member.header_offset + _ZIP_LOCAL_HEADER_BYTES + name_length + extra_length
        if offset + member.file_size > self._size:
            raise CheckpointError(f"{self.path}: zip member {member.filename} runs past the end of the file")
        return offset

    # -- TensorReader ----------------------------------------------------------------------------

    def keys(self) -> list[str]:
        return list(self._tensors)

    def __contains__(self, key: str) -> bool:
        return key in self._tensors

    def info(self, key: str) -> TensorInfo:
        ref = self._ref(key)
        return TensorInfo(ref.shape, ref.dtype)

    def read(self, key: str, transient: bool = False) -> np.ndarray:
        ref = self._ref(key)
        try:
            if not transient and ref.storage.nbytes and _is_contiguous(ref.shape, ref.strides):
                offset = self._offsets[ref.storage.key] + ref.offset * ref.dtype.itemsize
                if self._access.wants_private_copy(offset):  # a map starts at a page: aligned as the offset is
                    return read_private(self._file, offset, ref.dtype, ref.shape, self.path, key)
            array = _strided_view(self._storage_bytes(ref.storage), ref)
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"{self.path}: tensor {key!r}: cannot read ({_describe(e)})") from e
        if not array.flags.aligned:
            array = array.copy()
        return array

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # arrays handed out still view the map; it is released when they are freed
            self._map = None
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if getattr(self, "_file", None) is not None:
            self._file.close()
        self._closed = True

    # -- reading ---------------------------------------------------------------------------------

    def _ref(self, key: str) -> _TensorRef:
        if self._closed:
            raise CheckpointError(f"{self.path}: reader is closed")
        try:
            return self._tensors[key]
        except KeyError:
            raise self._missing(key) from None

    def _storage_bytes(self, storage: _Storage) -> np.ndarray:
        """The storage's bytes as a uint8 array: a view of the file's memory map."""
        if storage.nbytes == 0:
            return np.zeros(0, dtype=np.uint8)
        offset = self._offsets[storage.key]
        if self._map is None:
            mode = mmap.ACCESS_COPY if self._access.writable else mmap.ACCESS_READ
            self._map = mmap.mmap(self._file.fileno(), 0, access=mode)
        if offset + storage.nbytes > len(self._map):
            raise CheckpointError(f"{self.path}: storage {storage.key!r} lies past the end of the file")
        return np.frombuffer(self._map, dtype=np.uint8, count=storage.nbytes, offset=offset)


def _describe(error: BaseException) -> str:
    return _short(f"{type(error).__name__}: {error}")


def _is_contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides), strict=True):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _strided_view(data: np.ndarray, ref: _TensorRef) -> np.ndarray:
    """The tensor as a view of its storage bytes (validated to lie inside them); strided views are read-only."""
    itemsize = ref.dtype.itemsize
    count = math.prod(ref.shape)
    if count == 0:
        return np.zeros(ref.shape, dtype=ref.dtype)
    start = ref.offset * itemsize
    if _is_contiguous(ref.shape, ref.strides):
        return data[start : start + count * itemsize].view(ref.dtype).reshape(ref.shape)
    span = sum((n - 1) * s for n, s in zip(ref.shape, ref.strides, strict=True)) + 1
    base = data[start : start + span * itemsize].view(ref.dtype)
    byte_strides = tuple(s * itemsize for s in ref.strides)
    return np.lib.stride_tricks.as_strided(base, shape=ref.shape, strides=byte_strides, writeable=False)


# --------------------------------------------------------------------------------------------------
# the format
# --------------------------------------------------------------------------------------------------


def _open(path: Path, access: Access) -> TensorReader:
    if path.name.endswith(".index.json"):
        return ShardedReader(path, functools.partial(TorchBinReader, access=access))
    return TorchBinReader(path, access)


FORMAT = CheckpointFormat(
    name="pytorch_bin",
    file_names=(PT_BIN_NAME, PT_BIN_INDEX_NAME),
    transposed=False,
    dtypes=(),
    key=lambda entry: entry.pt_key,
    canonical_names=state_dict_names,
    recognises=lambda path: path.name.endswith((".bin", ".pt", ".pth", ".bin.index.json")),
    open=_open,
    write=None,
)
