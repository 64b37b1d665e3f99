"""Read TensorFlow checkpoints (the TensorBundle format) without TensorFlow.

A checkpoint written by `tf.compat.v1.train.Saver` or `tf.train.Checkpoint` is a prefix plus files:

* ``prefix.index`` — an SSTable (LevelDB table format): data blocks of prefix-compressed sorted keys with
  restart points, an index block pointing at the data blocks, and a 48-byte footer holding the metaindex
  and index block handles and the magic number ``0xdb4775248b80fb57``. Every block is followed by a
  5-byte trailer: the compression type (0 = none) and the masked crc32c of block and type byte.
  The entry with the empty key is a ``BundleHeaderProto`` (num_shards, endianness, version); every other
  key is a variable name whose value is a ``BundleEntryProto`` (dtype, shape, shard_id, offset, size,
  masked crc32c of the tensor bytes, and — for a variable saved in slices — the slice extents).
* ``prefix.data-NNNNN-of-MMMMM`` — the raw tensor bytes of each shard, read here through a memory map.

Only the standard library, numpy (with ml_dtypes for bfloat16 / float8) and google-crc32c are used: the protobuf
messages are decoded with a small wire-format reader. That is what lets a PyTorch user convert Google's original
RemBERT checkpoint without installing TensorFlow.

Variable names are BERT's (`bert/encoder/layer_0/attention/self/query/kernel`); Dense kernels are stored [in, out].
"""

from __future__ import annotations

import math
import mmap
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import ml_dtypes
import numpy as np

from ..tensor_reader import CheckpointError, TensorInfo, TensorReader
from ..weights import WeightEntry
from .checkpoint_format import CheckpointFormat
from .hf_h5 import variable_leaf

__all__ = ["FORMAT", "TFCheckpointReader", "crc32c", "mask_crc32c", "resolve_prefix", "unmask_crc32c", "variable_name"]

SCOPE = "bert"  # the original BERT code's variable scope, which RemBERT's checkpoints kept
STATE_FILE = "checkpoint"  # the text file in a checkpoint directory that names the latest prefix

# --------------------------------------------------------------------------------------------------
# crc32c (Castagnoli), from the google-crc32c package
# --------------------------------------------------------------------------------------------------

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_CRC_CHUNK_BYTES = 16 * 2**20  # google_crc32c takes bytes only: tensors are checksummed through copies this large


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of `data`, continuing from `crc` (so crc32c(b, crc32c(a)) == crc32c(a + b))."""
    if isinstance(data, bytes):
        return google_crc32c.extend(crc, data)
    flat = np.ascontiguousarray(np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data)
    flat = flat.reshape(-1).view(np.uint8)
    for start in range(0, len(flat), _CRC_CHUNK_BYTES):
        crc = google_crc32c.extend(crc, flat[start : start + _CRC_CHUNK_BYTES].tobytes())
    return crc


def mask_crc32c(crc: int) -> int:
    """The masked form LevelDB/TensorFlow store (so a crc of data that itself holds crcs stays strong)."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def unmask_crc32c(masked: int) -> int:
    """Inverse of `mask_crc32c`."""
    rotated = (masked - _MASK_DELTA) & _U32
    return ((rotated >> 17) | (rotated << 15)) & _U32


# --------------------------------------------------------------------------------------------------
# protobuf wire format and the bundle messages
# --------------------------------------------------------------------------------------------------


class _Corrupt(Exception):
    """Internal: malformed bytes; the reader turns it into a CheckpointError naming file and variable."""


_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _read_varint(buffer: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    end = len(buffer) if end is None else end
    result = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise _Corrupt("truncated varint")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >> 64:
                raise _Corrupt("varint longer than 64 bits")
            return result, pos
    raise _Corrupt("varint longer than 10 bytes")


def _parse_fields(buffer: bytes) -> dict[int, list[tuple[int, int | bytes]]]:
    """Decode one protobuf message into {field number: [(wire type, value), ...]}."""
    fields: dict[int, list[tuple[int, int | bytes]]] = {}
    pos, end = 0, len(buffer)
    while pos < end:
        tag, pos = _read_varint(buffer, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Corrupt("protobuf field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _read_varint(buffer, pos)
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            if pos + width > end:
                raise _Corrupt("truncated fixed-width protobuf field")
            value = int.from_bytes(buffer[pos : pos + width], "little")
            pos += width
        elif wire == _LENGTH_DELIMITED:
            length, pos = _read_varint(buffer, pos)
            if pos + length > end:
                raise _Corrupt("truncated length-delimited protobuf field")
            value = bytes(buffer[pos : pos + length])
            pos += length
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append((wire, value))
    return fields


def _last(fields: dict, number: int, wire: int, default: int | bytes) -> int | bytes:
    values = fields.get(number)
    if not values:
        return default
    got_wire, value = values[-1]
    if got_wire != wire:
        raise _Corrupt(f"protobuf field {number} has wire type {got_wire}, expected {wire}")
    return value


def _repeated_messages(fields: dict, number: int) -> list[dict]:
    messages = []
    for wire, value in fields.get(number, []):
        if wire != _LENGTH_DELIMITED:
            raise _Corrupt(f"protobuf field {number} is not a message")
        messages.append(_parse_fields(value))
    return messages


def _as_int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _int_field(fields: dict, number: int, default: int = 0) -> int:
    return _as_int64(_last(fields, number, _VARINT, default))


def _message_field(fields: dict, number: int) -> dict:
    return _parse_fields(_last(fields, number, _LENGTH_DELIMITED, b""))


@dataclass(frozen=True)
class _Header:
    num_shards: int
    big_endian: bool
    producer: int
    min_consumer: int


@dataclass(frozen=True)
class _Entry:
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    slices: tuple[tuple[tuple[int, int], ...], ...]  # per slice, per dim (start, length or -1 = all)


_BUNDLE_VERSION = 1  # the TensorBundle format version this reader understands


def _parse_header(value: bytes) -> _Header:
    fields = _parse_fields(value)
    version = _message_field(fields, 3)
    return _Header(
        num_shards=_int_field(fields, 1),
        big_endian=bool(_int_field(fields, 2)),
        producer=_int_field(version, 1),
        min_consumer=_int_field(version, 2),
    )


def _parse_shape(fields: dict) -> tuple[int, ...]:
    if _int_field(fields, 3):
        raise _Corrupt("shape has unknown rank")
    dims = tuple(_int_field(dim, 1) for dim in _repeated_messages(fields, 2))
    if any(d < 0 for d in dims):
        raise _Corrupt(f"shape {dims} has a negative dimension")
    return dims


def _parse_slice(fields: dict) -> tuple[tuple[int, int], ...]:
    extents = []
    for extent in _repeated_messages(fields, 1):
        start = _int_field(extent, 1)
        length = _int_field(extent, 2) if 2 in extent else -1
        extents.append((start, length))
    return tuple(extents)


def _parse_entry(value: bytes) -> _Entry:
    fields = _parse_fields(value)
    return _Entry(
        dtype=_int_field(fields, 1),
        shape=_parse_shape(_message_field(fields, 2)),
        shard_id=_int_field(fields, 3),
        offset=_int_field(fields, 4),
        size=_int_field(fields, 5),
        crc32c=_last(fields, 6, _FIXED32, 0),
        slices=tuple(_parse_slice(s) for s in _repeated_messages(fields, 7)),
    )


# --------------------------------------------------------------------------------------------------
# the SSTable (.index file)
# --------------------------------------------------------------------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_BLOCK_TRAILER_BYTES = 5
_COMPRESSION_NAMES = {1: "snappy", 2: "zlib"}


def _block_handle(buffer: bytes, pos: int, end: int) -> tuple[tuple[int, int], int]:
    offset, pos = _read_varint(buffer, pos, end)
    size, pos = _read_varint(buffer, pos, end)
    return (offset, size), pos


def _footer_handles(data: bytes) -> tuple[int, int]:
    """The index block handle from the footer (the metaindex is unused by TensorBundle)."""
    if len(data) < _FOOTER_BYTES:
        raise _Corrupt(f"file is {len(data)} bytes, shorter than the {_FOOTER_BYTES}-byte table footer")
    footer_start = len(data) - _FOOTER_BYTES
    magic = int.from_bytes(data[-8:], "little")
    if magic != _TABLE_MAGIC:
        raise _Corrupt(f"bad table magic number {magic:#018x} (not a TensorFlow checkpoint index)")
    _, pos = _block_handle(data, footer_start, len(data) - 8)
    index_handle, _ = _block_handle(data, pos, len(data) - 8)
    return index_handle


def _read_block(data: bytes, handle: tuple[int, int], verify: bool) -> bytes:
    offset, size = handle
    limit = len(data) - _FOOTER_BYTES
    if offset + size + _BLOCK_TRAILER_BYTES > limit:
        raise _Corrupt(f"block at offset {offset} with size {size} runs past the end of the table")
    contents = data[offset : offset + size]
    compression = data[offset + size]
    if verify:
        stored = int.from_bytes(data[offset + size + 1 : offset + size + 5], "little")
        actual = crc32c(data[offset : offset + size + 1])
        if unmask_crc32c(stored) != actual:
            raise _Corrupt(f"checksum mismatch in table block at offset {offset}")
    if compression != 0:
        name = _COMPRESSION_NAMES.get(compression, f"unknown type {compression}")
        raise _Corrupt(f"table block at offset {offset} is {name}-compressed, which is not supported")
    return contents


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a block's prefix-compressed (key, value) entries; the restart array is only bounds-checked."""
    if len(block) < 4:
        raise _Corrupt("table block shorter than its restart count")
    n_restarts = int.from_bytes(block[-4:], "little")
    entries_end = len(block) - 4 - 4 * n_restarts
    if entries_end < 0:
        raise _Corrupt(f"table block claims {n_restarts} restart points, more than fit")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < entries_end:
        shared, pos = _read_varint(block, pos, entries_end)
        unshared, pos = _read_varint(block, pos, entries_end)
        value_length, pos = _read_varint(block, pos, entries_end)
        if shared > len(key) or pos + unshared + value_length > entries_end:
            raise _Corrupt("table block entry runs past the end of its block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_length]))
        pos += value_length
    return entries


def _table_entries(data: bytes, verify: bool) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an SSTable in order, checking that keys strictly increase."""
    index_block = _read_block(data, _footer_handles(data), verify)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle_bytes in _block_entries(index_block):
        handle, _ = _block_handle(handle_bytes, 0, len(handle_bytes))
        for key, value in _block_entries(_read_block(data, handle, verify)):
            if entries and key <= entries[-1][0]:
                raise _Corrupt("table keys are not in increasing order")
            entries.append((key, value))
    return entries


# --------------------------------------------------------------------------------------------------
# tensor slices (partitioned variables and variables split across shards)
# --------------------------------------------------------------------------------------------------


def _ordered_code_signed(value: int) -> bytes:
    """OrderedCode's order-preserving signed integer encoding (as used in tensor slice keys)."""
    magnitude = ~value if value < 0 else value
    length = 1
    while magnitude >= 1 << (7 * length - 1):
        length += 1
    header = ((1 << length) - 1) << (7 * length)
    return ((value & ((1 << (8 * length)) - 1)) ^ header).to_bytes(length, "big")


def _ordered_code_unsigned(value: int) -> bytes:
    payload = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(payload)]) + payload


_SPECIAL_BYTE_RE = re.compile(rb"[\x00\xff]")
_STRING_ESCAPES = {b"\x00": b"\x00\xff", b"\xff": b"\xff\x00"}


def _slice_key(name: bytes, extents: tuple[tuple[int, int], ...]) -> bytes:
    """The index key under which one slice of variable `name` is stored."""
    escaped = _SPECIAL_BYTE_RE.sub(lambda m: _STRING_ESCAPES[m.group()], name)
    parts = [b"\x00", escaped, b"\x00\x01", _ordered_code_unsigned(len(extents))]
    for start, length in extents:
        parts.append(_ordered_code_signed(start))
        parts.append(_ordered_code_signed(length))
    return b"".join(parts)


def _slice_region(extents: tuple[tuple[int, int], ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    if len(extents) != len(shape):
        raise _Corrupt(f"slice of rank {len(extents)} for a tensor of rank {len(shape)}")
    region = []
    for (start, length), dim in zip(extents, shape, strict=True):
        if length == -1:
            start, length = 0, dim
        if start < 0 or length < 0 or start + length > dim:
            raise _Corrupt(f"slice extent ({start}, {length}) outside dimension {dim}")
        region.append(slice(start, start + length))
    return tuple(region)


# --------------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------------

_DT_STRING = 7
_NUMPY_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.float64),
    3: np.dtype(np.int32),
    4: np.dtype(np.uint8),
    5: np.dtype(np.int16),
    6: np.dtype(np.int8),
    8: np.dtype(np.complex64),
    9: np.dtype(np.int64),
    10: np.dtype(np.bool_),
    14: np.dtype(ml_dtypes.bfloat16),
    17: np.dtype(np.uint16),
    18: np.dtype(np.complex128),
    19: np.dtype(np.float16),
    22: np.dtype(np.uint32),
    23: np.dtype(np.uint64),
    24: np.dtype(ml_dtypes.float8_e5m2),
    25: np.dtype(ml_dtypes.float8_e4m3fn),
    26: np.dtype(ml_dtypes.float8_e4m3fnuz),
    27: np.dtype(ml_dtypes.float8_e4m3b11fnuz),
    28: np.dtype(ml_dtypes.float8_e5m2fnuz),
}
_DTYPE_NAMES = {
    0: "DT_INVALID", 7: "DT_STRING", 11: "DT_QINT8", 12: "DT_QUINT8", 13: "DT_QINT32", 15: "DT_QINT16",
    16: "DT_QUINT16", 20: "DT_RESOURCE", 21: "DT_VARIANT", 29: "DT_INT4", 30: "DT_UINT4",
}  # fmt: skip

_STATE_PATH_RE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)
_DATA_FILE_RE = re.compile(r"(.*)\.data-\d{5}-of-\d{5}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def _unescape_text_proto(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


def _prefix_from_state_file(directory: str) -> str:
    state = os.path.join(directory, STATE_FILE)
    try:
        with open(state, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state}: cannot read the checkpoint state file of directory ({e})") from e
    match = _STATE_PATH_RE.search(text)
    if match is None:
        raise CheckpointError(f"{state}: no model_checkpoint_path in checkpoint state file")
    return os.path.join(directory, _unescape_text_proto(match.group(1)))


def resolve_prefix(location: str | os.PathLike) -> str:
    """The checkpoint prefix for a prefix, a `.index` / `.data-*` file path, a directory or its `checkpoint` file.

    A directory must hold a `checkpoint` state file; its `model_checkpoint_path` (relative paths are taken
    relative to the directory) names the prefix.
    """
    text = os.fspath(location)
    if os.path.basename(text) == STATE_FILE and os.path.isfile(text) and not os.path.isfile(f"{text}.index"):
        text = os.path.dirname(text)  # the state file names the prefix, like its directory does
    if os.path.isdir(text):
        text = _prefix_from_state_file(text)
    if text.endswith(".index"):
        return text[: -len(".index")]
    match = _DATA_FILE_RE.fullmatch(text)
    return match.group(1) if match else text


def _shard_path(prefix: str, shard: int, num_shards: int) -> Path:
    return Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")


def _read_index_file(index_path: Path, prefix: str) -> bytes:
    try:
        return index_path.read_bytes()
    except FileNotFoundError:
        if os.path.isfile(prefix):
            raise CheckpointError(
                f"{prefix}: a TensorFlow V1 (single-file) checkpoint, not supported; re-save it with "
                "tf.train.Saver(write_version=tf.train.SaverDef.V2) or tf.train.Checkpoint"
            ) from None
        raise CheckpointError(f"{index_path}: no such TensorFlow checkpoint index") from None
    except OSError as e:
        raise CheckpointError(f"{index_path}: cannot read checkpoint index ({e})") from e


class TFCheckpointReader(TensorReader):
    """The variables of a TensorFlow checkpoint (`prefix.index` + `prefix.data-*`), read without TensorFlow.

    `prefix` may be the checkpoint prefix, the path of its `.index` file, or a directory holding a
    `checkpoint` state file. The index is parsed when the reader is created; tensor bytes are memory-mapped
    and read when `read` is called. With `verify_checksums` (the default) the crc32c of every table block
    and of every tensor read is checked.

    Supported: all numeric dtypes (float16/32/64, bfloat16, float8, (u)int8..64, bool, complex), any shard
    count, big-endian bundles, variables saved as slices (partitioned or split across shards — these are
    assembled into a new array). String tensors such as `_CHECKPOINTABLE_OBJECT_GRAPH` are listed but
    cannot be read. Compressed table blocks and the V1 single-file format are refused.
    """

    def __init__(self, prefix: str | os.PathLike, *, verify_checksums: bool = True) -> None:
        self.prefix = resolve_prefix(prefix)
        self.path = Path(self.prefix + ".index")
        self.verify_checksums = verify_checksums
        self._maps: dict[int, mmap.mmap | None] = {}
        self._files: list = []
        self._closed = False
        data = _read_index_file(self.path, self.prefix)
        try:
            raw_entries = _table_entries(data, verify_checksums)
        except _Corrupt as e:
            raise CheckpointError(f"{self.path}: corrupt checkpoint index: {e}") from None
        self._header = self._header_of(raw_entries)
        self._raw_entries = dict(raw_entries)
        self._entries: dict[str, _Entry] = {}
        for key, value in raw_entries:
            if key and not key.startswith(b"\x00"):
                name = self._decode_name(key)
                self._entries[name] = self._checked_entry(name, self._parse(name, value))
        self._shard_paths = [
            _shard_path(self.prefix, i, self._header.num_shards) for i in range(self._header.num_shards)
        ]
        self._check_shards_exist()

    # -- opening ---------------------------------------------------------------------------------

    def _header_of(self, raw_entries: list[tuple[bytes, bytes]]) -> _Header:
        if not raw_entries or raw_entries[0][0] != b"":
            raise CheckpointError(f"{self.path}: corrupt checkpoint index: no bundle header entry")
        try:
            header = _parse_header(raw_entries[0][1])
        except _Corrupt as e:
            raise CheckpointError(f"{self.path}: corrupt bundle header: {e}") from None
        if not 1 <= header.num_shards <= 1_000_000:
            raise CheckpointError(f"{self.path}: corrupt bundle header: {header.num_shards} shards")
        if header.min_consumer > _BUNDLE_VERSION:
            raise CheckpointError(
                f"{self.path}: written by a newer TensorFlow (bundle format needs reader version "
                f"{header.min_consumer}, this reader is version {_BUNDLE_VERSION})"
            )
        return header

    def _decode_name(self, key: bytes) -> str:
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.path}: corrupt checkpoint index: variable name {key!r}") from None

    def _parse(self, name: str, value: bytes) -> _Entry:
        try:
            return _parse_entry(value)
        except _Corrupt as e:
            raise CheckpointError(f"{self.path}: variable {name!r}: corrupt index entry: {e}") from None

    def _checked_entry(self, name: str, entry: _Entry) -> _Entry:
        problem = None
        dtype = _NUMPY_DTYPES.get(entry.dtype)
        if not 0 <= entry.shard_id < self._header.num_shards:
            problem = f"shard {entry.shard_id} of {self._header.num_shards}"
        elif entry.offset < 0 or entry.size < 0:
            problem = f"negative offset {entry.offset} or size {entry.size}"
        elif dtype is not None and not entry.slices and entry.size != math.prod(entry.shape) * dtype.itemsize:
            problem = f"{entry.size} bytes for shape {entry.shape} of {dtype}"
        if problem:
            raise CheckpointError(f"{self.path}: variable {name!r}: corrupt index entry: {problem}")
        return entry

    def _check_shards_exist(self) -> None:
        used = {e.shard_id for e in self._entries.values() if not e.slices}
        for key, value in self._raw_entries.items():
            if key.startswith(b"\x00"):
                try:
                    used.add(_parse_entry(value).shard_id)
                except _Corrupt:
                    continue  # reported when the sliced variable is read
        for shard in sorted(used):
            if 0 <= shard < len(self._shard_paths) and not self._shard_paths[shard].is_file():
                raise CheckpointError(f"{self._shard_paths[shard]}: missing data file of checkpoint {self.path}")

    # -- TensorReader ----------------------------------------------------------------------------

    def keys(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def info(self, key: str) -> TensorInfo:
        entry = self._entry(key)
        if entry.dtype == _DT_STRING:
            return TensorInfo(entry.shape, np.dtype(object))
        return TensorInfo(entry.shape, self._numeric_dtype(key, entry))

    def read(self, key: str, transient: bool = False) -> np.ndarray:
        """The variable as an array: a read-only memory map where possible, a new array for slices."""
        entry = self._entry(key)
        dtype = self._numeric_dtype(key, entry)
        if entry.slices:
            return self._read_sliced(key, entry, dtype)
        return self._read_entry(key, entry, dtype)

    def close(self) -> None:
        self._closed = True
        for mapped in self._maps.values():
            if mapped is not None:
                try:
                    mapped.close()
                except BufferError:
                    pass  # arrays handed out still view it; it is unmapped when they are freed
        for f in self._files:
            f.close()
        self._maps.clear()
        self._files.clear()

    # -- reading ---------------------------------------------------------------------------------

    def _entry(self, key: str) -> _Entry:
        if self._closed:
            raise CheckpointError(f"{self.path}: reader is closed")
        try:
            return self._entries[key]
        except KeyError:
            raise self._missing(key) from None

    def _numeric_dtype(self, key: str, entry: _Entry) -> np.dtype:
        dtype = _NUMPY_DTYPES.get(entry.dtype)
        if dtype is not None:
            return dtype
        name = _DTYPE_NAMES.get(entry.dtype, f"dtype enum {entry.dtype}")
        if entry.dtype == _DT_STRING:
            raise CheckpointError(f"{self.path}: variable {key!r} is a string tensor ({name}), not numeric")
        raise CheckpointError(f"{self.path}: variable {key!r} has unsupported dtype {name}")

    def _shard_map(self, shard: int) -> mmap.mmap | None:
        if shard not in self._maps:
            path = self._shard_paths[shard]
            try:
                f = open(path, "rb")
            except OSError as e:
                raise CheckpointError(f"{path}: cannot open checkpoint data file ({e})") from e
            self._files.append(f)
            size = os.fstat(f.fileno()).st_size
            self._maps[shard] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        return self._maps[shard]

    def _entry_bytes(self, key: str, entry: _Entry) -> np.ndarray:
        if entry.size == 0:
            return np.zeros(0, dtype=np.uint8)
        mapped = self._shard_map(entry.shard_id)
        available = len(mapped) if mapped is not None else 0
        if entry.offset + entry.size > available:
            raise CheckpointError(
                f"{self._shard_paths[entry.shard_id]}: variable {key!r}: bytes {entry.offset}.."
                f"{entry.offset + entry.size} lie past the end of the data file ({available} bytes); "
                "the file is truncated"
            )
        return np.frombuffer(mapped, dtype=np.uint8, count=entry.size, offset=entry.offset)

    def _read_entry(self, key: str, entry: _Entry, dtype: np.dtype) -> np.ndarray:
        raw = self._entry_bytes(key, entry)
        if self.verify_checksums and unmask_crc32c(entry.crc32c) != crc32c(raw):
            raise CheckpointError(
                f"{self._shard_paths[entry.shard_id]}: variable {key!r}: crc32c checksum mismatch "
                "(the data file is corrupt)"
            )
        array = raw.view(dtype).reshape(entry.shape)
        if self._header.big_endian and dtype.itemsize > 1:
            return _from_big_endian(array)
        if not array.flags.aligned:
            array = array.copy()
        return array

    def _slice_entry(self, key: str, extents: tuple[tuple[int, int], ...]) -> _Entry:
        value = self._raw_entries.get(_slice_key(key.encode("utf-8"), extents))
        if value is None:
            raise CheckpointError(f"{self.path}: variable {key!r}: slice {extents} is missing from the index")
        return self._checked_entry(key, self._parse(key, value))

    def _read_sliced(self, key: str, entry: _Entry, dtype: np.dtype) -> np.ndarray:
        out = np.zeros(entry.shape, dtype=dtype)
        covered = 0
        for extents in entry.slices:
            try:
                region = _slice_region(extents, entry.shape)
            except _Corrupt as e:
                raise CheckpointError(f"{self.path}: variable {key!r}: corrupt slice: {e}") from None
            part_shape = tuple(s.stop - s.start for s in region)
            part = self._slice_entry(key, extents)
            if part.dtype != entry.dtype or part.shape != part_shape:
                raise CheckpointError(
                    f"{self.path}: variable {key!r}: slice {extents} has dtype enum {part.dtype} and shape "
                    f"{part.shape}, expected {entry.dtype} and {part_shape}"
                )
            out[region] = self._read_entry(key, part, dtype)
            covered += math.prod(part_shape)
        if covered != out.size:
            raise CheckpointError(f"{self.path}: variable {key!r}: its slices cover {covered} of {out.size} elements")
        return out


def _from_big_endian(array: np.ndarray) -> np.ndarray:
    """A native-order copy of an array whose bytes are big-endian (complex parts swapped separately)."""
    component = array.dtype.itemsize // 2 if array.dtype.kind == "c" else array.dtype.itemsize
    words = np.ascontiguousarray(array).view(np.dtype(f"u{component}"))
    return words.byteswap().view(array.dtype)


# --------------------------------------------------------------------------------------------------
# the format
# --------------------------------------------------------------------------------------------------


def variable_name(entry: WeightEntry) -> str | None:
    """The variable's name in Google's original checkpoint: `bert/encoder/layer_0/attention/self/query/kernel`.

    Those checkpoints hold the backbone of an encoder: heads and cross-attention have no name there. Embedding
    tables are named by their scope alone; other parameters end in their Keras leaf (kernel, bias, gamma, beta).
    """
    if not entry.in_backbone or ".crossattention." in entry.name:
        return None
    path = re.sub(r"\blayer/(\d+)", r"layer_\1", entry.name.rsplit(".", 1)[0].replace(".", "/"))
    if path.endswith("_embeddings"):
        return f"{SCOPE}/{path}"
    return f"{SCOPE}/{path}/{variable_leaf(entry)}"


def _canonical_names(known: Mapping[str, WeightEntry]) -> Callable[[str], str | None]:
    by_variable = {variable_name(entry): name for name, entry in known.items()}
    by_variable.pop(None, None)
    return by_variable.get


def _recognises(path: Path) -> bool:
    """A prefix (`model.ckpt`, whose `model.ckpt.index` exists), its `.index` file, or the `checkpoint` state file
    of its directory."""
    return path.name == STATE_FILE or path.name.endswith(".index") or Path(f"{path}.index").is_file()


FORMAT = CheckpointFormat(
    name="google_tf",
    file_names=(STATE_FILE,),
    transposed=True,
    dtypes=(),
    key=variable_name,
    canonical_names=_canonical_names,
    recognises=_recognises,
    open=lambda path, access: TFCheckpointReader(path),  # read-only maps whatever the access: a model copies
    write=None,
)
