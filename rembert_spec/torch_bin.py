"""Read PyTorch `pytorch_model.bin` state dicts without torch, and without running code from the pickle.

`torch.save` writes a zip archive (since torch 1.6)::

    <archive>/data.pkl              the pickled state dict (protocol 2)
    <archive>/data/<key>            raw bytes of each storage, stored uncompressed and 64-byte aligned
    <archive>/byteorder             "little" or "big" (absent in old files: little)
    <archive>/version, .data/serialization_id, ...

In the pickle each tensor is a call ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size,
stride, requires_grad, backward_hooks[, metadata])`` (``_rebuild_tensor_v3`` with an explicit dtype for
dtypes without a legacy storage class, e.g. uint16 or float8), and each storage is a persistent id
``('storage', storage_type, key, location, numel)`` where storage_type is a class such as
``torch.FloatStorage`` (or ``torch.UntypedStorage`` with v3). The state dict is a
``collections.OrderedDict``.

The legacy (pre-1.6) format is a sequence of pickles in one file: a magic number, a protocol version,
system info, the state dict (persistent ids ``('storage', type, key, location, numel, view_metadata)``),
the list of storage keys, then for each key an int64 little-endian element count and the storage bytes.

Both are read with a restricted unpickler: `find_class` resolves only an explicit allow-list of names,
each mapped to a function of this module, so no callable from the file is ever imported or run.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import mmap
import os
import pickle
import pickletools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from .tensor_file import CheckpointError, TensorInfo, TensorReader

__all__ = ["TorchBinReader"]

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
}
_TORCH_DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "int16": np.dtype(np.int16),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "float8_e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_LOCAL_HEADER_BYTES = 30
_MAX_TENSOR_BYTES = 1 << 60  # far beyond any real tensor; keeps numpy's size arithmetic in range
_MAX_MESSAGE = 200
_MAX_INFLATION = 20  # a compressed zip member may not claim more than this many times the file size


# --------------------------------------------------------------------------------------------------
# what the restricted unpickler builds instead of torch objects
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stands in for a torch storage class (torch.FloatStorage, torch.UntypedStorage, ...)."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True, slots=True)
class _TorchDType:
    """Stands in for a torch dtype (torch.float32, ...)."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True, slots=True)
class _TensorClass:
    """Stands in for torch.Tensor / torch.nn.Parameter as used by _rebuild_from_type_v2."""

    name: str


@dataclass(frozen=True, slots=True)
class _Storage:
    """A storage: `nbytes` bytes starting `byte_offset` bytes into the file's storage record `key`."""

    key: str
    dtype: np.dtype
    nbytes: int
    byte_offset: int = 0


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor described by the pickle: a strided view (in elements of `dtype`) of a storage."""

    storage: _Storage
    dtype: np.dtype
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    conj: bool = False
    neg: bool = False


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _index_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(_is_index(v) for v in value):
        raise ValueError(f"tensor {what} {_short(value)} is not a tuple of non-negative integers")
    return tuple(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _tensor_ref(storage: Any, offset: Any, size: Any, stride: Any, dtype: np.dtype | None = None) -> _TensorRef:
    """Validate a rebuild call's arguments: the view must lie inside its storage."""
    if not isinstance(storage, _Storage):
        raise ValueError(f"tensor storage is {type(storage).__name__}, not a storage")
    if not _is_index(offset):
        raise ValueError(f"tensor storage offset {_short(offset)} is not a non-negative integer")
    shape, strides = _index_tuple(size, "size"), _index_tuple(stride, "stride")
    if len(shape) != len(strides):
        raise ValueError(f"tensor size {shape} and stride {strides} differ in length")
    dtype = storage.dtype if dtype is None else dtype
    count = math.prod(shape)
    if count * dtype.itemsize > _MAX_TENSOR_BYTES:
        raise ValueError(f"tensor size {shape} is implausibly large")
    if count:
        end = (offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + 1) * dtype.itemsize
        if end > storage.nbytes:
            raise ValueError(
                f"tensor view (offset {offset}, size {shape}, stride {strides}) reaches byte {end} of a "
                f"{storage.nbytes}-byte storage"
            )
    return _TensorRef(storage, dtype, offset, shape, strides)


def _with_metadata(ref: _TensorRef, metadata: Any) -> _TensorRef:
    if not metadata:
        return ref
    if not isinstance(metadata, dict) or not set(metadata) <= {"conj", "neg"}:
        raise ValueError(f"unsupported tensor metadata {_short(metadata)}")
    return dataclasses.replace(ref, conj=bool(metadata.get("conj")), neg=bool(metadata.get("neg")))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _TensorRef:
    return _tensor_ref(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    return _with_metadata(_tensor_ref(storage, storage_offset, size, stride), metadata)


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> _TensorRef:
    if not isinstance(dtype, _TorchDType):
        raise ValueError(f"tensor dtype {_short(dtype)} is not a torch dtype")
    return _with_metadata(_tensor_ref(storage, storage_offset, size, stride, dtype.dtype), metadata)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> _TensorRef:
    if not isinstance(data, _TensorRef):
        raise ValueError(f"parameter data is {type(data).__name__}, not a tensor")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> _TensorRef:
    return _rebuild_parameter(data)


_REBUILD_FUNCTIONS: dict[str, Callable[..., _TensorRef]] = {
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor_v3": _rebuild_tensor_v3,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter_with_state,
}


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> _TensorRef:
    """A tensor (or Parameter) carrying Python attributes: rebuild the tensor, drop the attributes."""
    if func not in _REBUILD_FUNCTIONS.values() or not isinstance(new_type, _TensorClass):
        raise ValueError(f"unsupported tensor subclass rebuild {_short(func)}, {_short(new_type)}")
    if not isinstance(args, tuple):
        raise ValueError("tensor rebuild arguments are not a tuple")
    return func(*args)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Every global a state-dict pickle may name, mapped to what this module uses in its place."""
    allowed: dict[tuple[str, str], Any] = {("collections", "OrderedDict"): collections.OrderedDict}
    allowed.update({("torch._utils", name): f for name, f in _REBUILD_FUNCTIONS.items()})
    allowed[("torch._tensor", "_rebuild_from_type_v2")] = _rebuild_from_type_v2
    allowed.update({("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()})
    untyped = _StorageType("UntypedStorage", np.dtype(np.uint8))
    allowed.update({("torch", "UntypedStorage"): untyped, ("torch.storage", "UntypedStorage"): untyped})
    allowed.update({("torch", name): _TorchDType(name, dtype) for name, dtype in _TORCH_DTYPES.items()})
    for module, name in (
        ("torch", "Tensor"),
        ("torch._tensor", "Tensor"),
        ("torch.nn.parameter", "Parameter"),
    ):
        allowed[(module, name)] = _TensorClass(name)
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals and hands storage ids to `resolve_storage`."""

    def __init__(self, file: Any, path: Path, resolve_storage: Callable[[Any], _Storage] | None) -> None:
        super().__init__(file)
        self._path = path
        self._resolve_storage = resolve_storage

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise CheckpointError(
                f"{self._path}: refused to load global {_short(f'{module}.{name}')} from pickle "
                "(only tensors and ordered dicts may appear in a state dict)"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if self._resolve_storage is None:
            raise CheckpointError(f"{self._path}: unexpected persistent id {_short(pid)} in pickle")
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


class _BoundedReader:
    """A read-only view of `file` from its current position to `end` that never reads past `end`.

    Reads are clamped, so a corrupt length field in a pickle cannot make the reader allocate more than
    the file holds.
    """

    def __init__(self, file: Any, end: int) -> None:
        self._file = file
        self._end = end

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int) -> int:
        return self._file.seek(offset)

    def read(self, n: int = -1) -> bytes:
        remaining = max(self._end - self._file.tell(), 0)
        return self._file.read(remaining if n is None or n < 0 else min(n, remaining))

    def readline(self, limit: int = -1) -> bytes:
        remaining = max(self._end - self._file.tell(), 0)
        return self._file.readline(remaining if limit is None or limit < 0 else min(limit, remaining))


def _check_opcodes(stream: _BoundedReader | io.BytesIO) -> None:
    """Walk the next pickle in `stream` without executing it, then rewind.

    Refuses opcodes outside `_ALLOWED_OPCODES`, memo indices beyond the opcode count (the memo would be
    grown to that size) and any length field longer than the data (pickletools checks those).
    """
    start = stream.tell()
    for count, (opcode, arg, _) in enumerate(pickletools.genops(stream), start=1):
        if opcode.name not in _ALLOWED_OPCODES:
            raise ValueError(f"pickle opcode {opcode.name} is not allowed in a state dict")
        if opcode.name in _MEMO_PUTS and not 0 <= arg <= count:
            raise ValueError(f"pickle memo index {arg} is out of range")
    stream.seek(start)


def _storage_dtype(storage_type: Any) -> np.dtype:
    if isinstance(storage_type, _StorageType | _TorchDType):
        return storage_type.dtype
    raise ValueError(f"storage type {_short(storage_type)} is not a torch storage type")


# --------------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """Where the bytes of one storage record live: at `offset` in the file, or in a compressed zip member."""

    nbytes: int
    offset: int | None = None
    member: str | None = None


class TorchBinReader(TensorReader):
    """Tensors of a PyTorch state dict file (`torch.save` zip or legacy format), read without torch.

    The state dict structure is unpickled (with an allow-list; nothing from the file is imported or run)
    when the reader is created; tensor bytes are memory-mapped and viewed when `read` is called, so only
    the tensors you read are paged in. `read` returns read-only arrays (views of the map where possible;
    a copy for big-endian files, unaligned data, conjugate/negative views and compressed zip members).

    Supported: float16/32/64, bfloat16, float8, (u)int8..64, bool, complex; storage offsets, arbitrary
    strides (transposed / expanded views) and storages shared by several tensors; Parameters and tensors
    with Python attributes. Non-tensor values of the dict are skipped. Refused with CheckpointError:
    any other pickled global (modules, optimizers, arbitrary callables), a top level that is not a dict,
    quantized/sparse tensors, TorchScript archives and the pre-1.0 tar format.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tensors: dict[str, _TensorRef] = {}
        self._records: dict[str, _Record] = {}
        self._big_endian = False
        self._zip: zipfile.ZipFile | None = None
        self._map: mmap.mmap | None = None
        self._closed = False
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - owned by the reader until close()
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot open PyTorch checkpoint ({e})") from e
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self._open()
        except CheckpointError:
            self.close()
            raise
        except Exception as e:  # any parse failure of a corrupt file becomes a CheckpointError
            self.close()
            raise CheckpointError(f"{self.path}: corrupt PyTorch checkpoint ({_describe(e)})") from e

    # -- opening ---------------------------------------------------------------------------------

    def _open(self) -> None:
        head = self._file.read(8)
        self._file.seek(0)
        if head.startswith(_ZIP_LOCAL_HEADER):
            obj = self._open_zip()
        elif head.startswith(b"\x80\x02\x8a\x0a"):  # pickle protocol 2, then an 10-byte LONG1 (the magic)
            obj = self._open_legacy()
        elif head.startswith(b"version "):
            raise CheckpointError(f"{self.path}: a Git LFS pointer, not the checkpoint (run `git lfs pull`)")
        elif head[:2] == b"\x80\x02":
            raise CheckpointError(f"{self.path}: a bare pickle, not a torch.save state dict")
        else:
            raise CheckpointError(
                f"{self.path}: not a PyTorch checkpoint (neither a torch.save zip archive nor the legacy "
                "pickle format); if it comes from a very old torch, re-save it with a modern torch"
            )
        self._tensors = self._collect_tensors(obj)

    def _unpickle(self, file: Any, resolve_storage: Callable[[Any], _Storage] | None) -> Any:
        """Load the next pickle from `file` (positioned at it) after checking its opcodes."""
        try:
            _check_opcodes(file)
            return _RestrictedUnpickler(file, self.path, resolve_storage).load()
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"{self.path}: corrupt pickle data ({_describe(e)})") from e

    def _collect_tensors(self, obj: Any) -> dict[str, _TensorRef]:
        if not isinstance(obj, dict):
            raise CheckpointError(f"{self.path}: the pickled object is a {type(obj).__name__}, not a state dict")
        return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, _TensorRef)}

    def _open_zip(self) -> Any:
        try:
            self._zip = zipfile.ZipFile(self._file)
        except zipfile.BadZipFile as e:
            raise CheckpointError(f"{self.path}: corrupt or truncated zip archive ({e})") from e
        members = {info.filename: info for info in self._zip.infolist()}
        prefix = self._archive_prefix(members)
        self._big_endian = self._zip_byteorder(members, prefix) == "big"
        pickled = self._zip.read(self._checked_member(members[prefix + "data.pkl"]))
        referenced: dict[str, _Storage] = {}

        def resolve(pid: Any) -> _Storage:
            return self._zip_storage(pid, prefix, members, referenced)

        obj = self._unpickle(io.BytesIO(pickled), resolve)
        for key in referenced:
            self._records[key] = self._zip_record(members[f"{prefix}data/{key}"])
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

    def _zip_byteorder(self, members: dict[str, zipfile.ZipInfo], prefix: str) -> str:
        if prefix + "byteorder" not in members:
            return "little"
        order = self._zip.read(self._checked_member(members[prefix + "byteorder"])).decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise CheckpointError(f"{self.path}: unknown byteorder record {order!r}")
        return order

    def _zip_storage(
        self, pid: Any, prefix: str, members: dict[str, zipfile.ZipInfo], referenced: dict[str, _Storage]
    ) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {_short(pid)}")
        _, storage_type, key, _location, numel = pid
        dtype = _storage_dtype(storage_type)
        if not isinstance(key, str) or not _is_index(numel):
            raise ValueError(f"malformed storage id {_short(pid)}")
        storage = _Storage(key, dtype, numel * dtype.itemsize)
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

    def _zip_record(self, member: zipfile.ZipInfo) -> _Record:
        """Locate a member's bytes: stored members are memory-mapped at their data offset."""
        if member.flag_bits & 0x1:
            raise CheckpointError(f"{self.path}: zip member {member.filename} is encrypted")
        if member.compress_type != zipfile.ZIP_STORED:
            return _Record(member.file_size, member=member.filename)
        self._file.seek(member.header_offset)
        header = self._file.read(_ZIP_LOCAL_HEADER_BYTES)
        if len(header) != _ZIP_LOCAL_HEADER_BYTES or not header.startswith(_ZIP_LOCAL_HEADER):
            raise CheckpointError(f"{self.path}: bad zip local header for {member.filename}")
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        offset = member.header_offset + _ZIP_LOCAL_HEADER_BYTES + name_length + extra_length
        if offset + member.file_size > self._size:
            raise CheckpointError(f"{self.path}: zip member {member.filename} runs past the end of the file")
        return _Record(member.file_size, offset=offset)

    def _open_legacy(self) -> Any:
        stream = _BoundedReader(self._file, self._size)
        if self._unpickle(stream, None) != _LEGACY_MAGIC:
            raise CheckpointError(f"{self.path}: not a PyTorch checkpoint (bad legacy magic number)")
        protocol = self._unpickle(stream, None)
        if protocol != _LEGACY_PROTOCOL:
            raise CheckpointError(f"{self.path}: unsupported legacy protocol version {_short(protocol)}")
        self._unpickle(stream, None)  # system info: endianness and C type sizes of the writer
        roots: dict[str, _Storage] = {}
        views: list[_Storage] = []

        def resolve(pid: Any) -> _Storage:
            return self._legacy_storage(pid, roots, views)

        obj = self._unpickle(stream, resolve)
        keys = self._unpickle(stream, None)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError(f"{self.path}: corrupt legacy storage key list")
        self._locate_legacy_records(keys, roots, stream.tell())
        for view in views:
            if view.byte_offset + view.nbytes > roots[view.key].nbytes:
                raise CheckpointError(f"{self.path}: storage view of {view.key!r} lies outside its storage")
        return obj

    def _legacy_storage(self, pid: Any, roots: dict[str, _Storage], views: list[_Storage]) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {_short(pid)} (modules cannot be loaded)")
        _, storage_type, key, _location, numel, view_metadata = pid
        dtype = _storage_dtype(storage_type)
        if not isinstance(key, str) or not _is_index(numel):
            raise ValueError(f"malformed storage id {_short(pid)}")
        root = _Storage(key, dtype, numel * dtype.itemsize)
        if roots.setdefault(key, root) != root:
            raise ValueError(f"storage {key!r} is referenced with two different types or sizes")
        if view_metadata is None:
            return root
        if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3):
            raise ValueError(f"malformed storage view {_short(view_metadata)}")
        _view_key, view_offset, view_size = view_metadata
        if not (_is_index(view_offset) and _is_index(view_size)):
            raise ValueError(f"malformed storage view {_short(view_metadata)}")
        view = _Storage(key, dtype, view_size * dtype.itemsize, view_offset * dtype.itemsize)
        views.append(view)
        return view

    def _locate_legacy_records(self, keys: list[str], roots: dict[str, _Storage], offset: int) -> None:
        """After the pickles: per storage key, an int64 element count and the raw little-endian bytes."""
        for key in keys:
            root = roots.get(key)
            if root is None:
                raise CheckpointError(f"{self.path}: storage {key!r} is listed but never used")
            self._file.seek(offset)
            count = self._file.read(8)
            if len(count) != 8:
                raise CheckpointError(f"{self.path}: file truncated before storage {key!r}")
            numel = int.from_bytes(count, "little", signed=True)
            if numel * root.dtype.itemsize != root.nbytes:
                raise CheckpointError(
                    f"{self.path}: storage {key!r} holds {numel} elements, the pickle expects "
                    f"{root.nbytes // root.dtype.itemsize}"
                )
            offset += 8
            if offset + root.nbytes > self._size:
                raise CheckpointError(f"{self.path}: file truncated inside storage {key!r}")
            self._records[key] = _Record(root.nbytes, offset=offset)
            offset += root.nbytes
        missing = set(roots) - set(self._records)
        if missing:
            raise CheckpointError(f"{self.path}: storages {sorted(missing)[:5]} have no data in the file")

    # -- TensorReader ----------------------------------------------------------------------------

    def keys(self) -> list[str]:
        return list(self._tensors)

    def __contains__(self, key: str) -> bool:
        return key in self._tensors

    def info(self, key: str) -> TensorInfo:
        ref = self._ref(key)
        return TensorInfo(ref.shape, ref.dtype)

    def read(self, key: str) -> np.ndarray:
        ref = self._ref(key)
        try:
            array = _strided_view(self._storage_bytes(ref.storage), ref)
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"{self.path}: tensor {key!r}: cannot read ({_describe(e)})") from e
        if self._big_endian and ref.dtype.itemsize > 1:
            array = _byteswapped(array)
        if ref.conj:
            array = np.conj(array)
        if ref.neg:
            array = np.negative(array)
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
        """The storage's bytes as a uint8 array (a view of the file map for uncompressed records)."""
        record = self._records[storage.key]
        if storage.nbytes == 0:
            return np.zeros(0, dtype=np.uint8)
        if record.offset is None:
            data = np.frombuffer(self._zip.read(self._checked_member(self._zip.getinfo(record.member))), np.uint8)
            return data[storage.byte_offset : storage.byte_offset + storage.nbytes]
        if self._map is None:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        if record.offset + record.nbytes > len(self._map):
            raise CheckpointError(f"{self.path}: storage {storage.key!r} lies past the end of the file")
        return np.frombuffer(
            self._map, dtype=np.uint8, count=storage.nbytes, offset=record.offset + storage.byte_offset
        )


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
    """The tensor as a read-only view of its storage bytes (validated to lie inside them)."""
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


def _byteswapped(array: np.ndarray) -> np.ndarray:
    """A native-order copy of an array whose bytes are big-endian (complex parts swapped separately)."""
    component = array.dtype.itemsize // 2 if array.dtype.kind == "c" else array.dtype.itemsize
    words = np.ascontiguousarray(array).view(np.dtype(f"u{component}"))
    return words.byteswap().view(array.dtype)
