"""The small interface every checkpoint format's reader implements: named tensors read one at a time; and the
reader of shards listed by an index file, which any format's reader plugs into.

Readers hand out numpy arrays (memory-mapped where the format allows) so that a consumer — a backend
placing weights in its variables, or the converter writing another format — holds at most one tensor
at a time. Every error raised while reading names the file, and the tensor where there is one.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe, or does not fit the model. The message names the file."""


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class Access:
    """How a reader hands out tensors.

    - `writable`: arrays the caller may keep and change (private pages: copy-on-write maps, or memory of their
      own); otherwise read-only views of the file's map.
    - `mapped`: views of a memory map of the file, read when first touched (no copy); otherwise each tensor is
      read once into fresh memory of its own, and nothing stays mapped: whatever later happens to the file, the
      arrays keep their values (`from_pretrained(..., mmap=False)`).
    - `alignment`: a mapped tensor whose data does not start at a multiple of this many bytes is read into fresh
      memory instead (page-aligned), in the same one pass: TensorFlow uses only 64-byte aligned memory in place.
    """

    writable: bool = False
    mapped: bool = True
    alignment: int = 1

    def wants_private_copy(self, address: int) -> bool:
        """A tensor whose mapped data would start at `address` (bytes) is to be read into memory of its own."""
        return not self.mapped or address % self.alignment != 0


READ_ONLY = Access()  # the converter's and the tests' way: read-only views of a map
COPY_ON_WRITE = Access(writable=True)  # what a model adopts without copying
PRIVATE = Access(writable=True, mapped=False)  # `mmap=False`: a private copy, read once


@dataclass(frozen=True)
class FileStamp:
    """A file as it was when a reader mapped it: which file (device, inode), its size and modification time.

    Arrays a model adopted from a copy-on-write map keep reading the file's pages until they are written, so a
    later `change()` tells whether the model's weights may have changed under it."""

    path: Path
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path, fd: int | None = None) -> FileStamp:
        stat = os.fstat(fd) if fd is not None else os.stat(path)
        return cls(Path(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def change(self) -> str | None:
        """What happened to the file since: "truncated ..." or "overwritten in place"; None when it is as it was,
        gone, or replaced by another file (a rename or a delete leaves the mapped file itself intact)."""
        try:
            now = os.stat(self.path)
        except OSError:
            return None
        if (now.st_dev, now.st_ino) != (self.device, self.inode):
            return None
        if now.st_size < self.size:
            return f"truncated from {self.size} to {now.st_size} bytes"
        if now.st_size != self.size or now.st_mtime_ns != self.mtime_ns:
            return "overwritten in place"
        return None


def read_private(
    file: BinaryIO, offset: int, dtype: np.dtype, shape: tuple[int, ...], path: Path, key: str
) -> np.ndarray:
    """One tensor read from `file` at byte `offset` into fresh, page-aligned memory of its own, in one pass.

    The memory is an anonymous map faulted in whole before the read (far cheaper than a fault per page while
    copying); the kernel then copies the bytes from the page cache straight into it. Any framework can adopt the
    array without another copy (TensorFlow through DLPack; it needs 64-byte alignment), and it lives and dies
    with the array."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype)
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0) | getattr(mmap, "MAP_POPULATE", 0)
    memory = mmap.mmap(-1, nbytes, flags=flags) if flags else mmap.mmap(-1, nbytes)
    view = memoryview(memory)
    done = 0
    try:
        file.seek(offset)
        while done < nbytes:
            read = file.readinto(view[done:])
            if not read:
                raise CheckpointError(
                    f"{path}: tensor {key!r} is cut short: {done} of its {nbytes} bytes (from byte {offset}) are "
                    "in the file (truncated?)"
                )
            done += read
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read tensor {key!r} ({e.strerror or e})") from None
    finally:
        view.release()
    return np.frombuffer(memory, dtype=dtype, count=count).reshape(shape)


class TensorReader:
    """Named tensors in one checkpoint (a file, or a set of shards read as one).

    Subclasses implement `keys`, `info` and `read`. `read` returns an array that may be a read-only
    memory map: copy it if you need to write into it. `mapped_files` lists the files whose pages arrays handed
    out with writable (copy-on-write) access may keep using.
    """

    path: Path
    mapped_files: Sequence[FileStamp] = ()

    def keys(self) -> list[str]:
        raise NotImplementedError

    def info(self, key: str) -> TensorInfo:
        raise NotImplementedError

    def read(self, key: str, transient: bool = False) -> np.ndarray:
        """The tensor named `key`. `transient`: the caller copies it at once (say, transposing it), so a view of
        the file's map is best, even where the reader's access would otherwise read it into memory of its own."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __contains__(self, key: str) -> bool:
        return key in set(self.keys())

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _missing(self, key: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: no tensor named {key!r}")


class ShardedReader(TensorReader):
    """Shards listed by an index file (model.safetensors.index.json, pytorch_model.bin.index.json) read as one.

    `open_shard(path)` opens one shard with the format's own reader.
    """

    def __init__(self, index_path: str | os.PathLike, open_shard: Callable[[Path], TensorReader]):
        self.path = Path(index_path)
        directory = self.path.parent
        weight_map = _read_index(self.path)
        self._readers: dict[str, TensorReader] = {}
        self._where: dict[str, TensorReader] = {}
        try:
            for filename in dict.fromkeys(weight_map.values()):
                self._readers[filename] = open_shard(_shard_path(self.path, directory, filename))
            for key, filename in weight_map.items():
                reader = self._readers[filename]
                if key not in reader:
                    raise CheckpointError(f"{self.path}: index puts tensor {key!r} in {filename}, which lacks it")
                self._where[key] = reader
        except BaseException:
            self.close()
            raise

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def info(self, key: str) -> TensorInfo:
        if key not in self._where:
            raise self._missing(key)
        return self._where[key].info(key)

    def read(self, key: str, transient: bool = False) -> np.ndarray:
        if key not in self._where:
            raise self._missing(key)
        return self._where[key].read(key, transient)

    @property
    def mapped_files(self) -> list[FileStamp]:
        return [stamp for reader in self._readers.values() for stamp in reader.mapped_files]

    def close(self) -> None:
        for reader in getattr(self, "_readers", {}).values():
            reader.close()


def _read_index(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: shard index is not valid JSON ({e})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CheckpointError(f"{path}: shard index lacks a weight_map of tensor name -> file name")
    return weight_map


def _shard_path(index_path: Path, directory: Path, filename: str) -> Path:
    """A shard must be a file directly inside the model directory: no paths, no links out of it. The one link
    allowed leads where the index's own link leads: a Hugging Face Hub cache snapshot links every file of a repo
    to the repo's blobs."""
    if not filename or filename != Path(filename).name or filename in (".", "..") or "\\" in filename:
        raise CheckpointError(f"{index_path}: refused shard file name {filename!r}: it leaves the model directory")
    path = directory / filename
    if path.is_symlink() or path.exists():
        allowed = {directory.resolve()}
        if index_path.is_symlink():
            allowed.add(index_path.resolve().parent)
        if path.resolve().parent not in allowed or (path.is_symlink() and not index_path.is_symlink()):
            raise CheckpointError(f"{index_path}: refused shard {filename!r}: it is a link")
    return path
