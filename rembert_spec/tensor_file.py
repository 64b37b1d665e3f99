"""The small interface every checkpoint format implements: named tensors read one at a time.

Readers hand out numpy arrays (memory-mapped where the format allows) so that a consumer — a backend
placing weights in its variables, or the converter writing another format — holds at most one tensor
at a time. Every error raised while reading names the file, and the tensor where there is one.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe, or does not fit the model. The message names the file."""


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: np.dtype


class TensorReader:
    """Named tensors in one checkpoint (a file, or a set of shards read as one).

    Subclasses implement `keys`, `info` and `read`. `read` returns an array that may be a read-only
    memory map: copy it if you need to write into it.
    """

    path: Path

    def keys(self) -> list[str]:
        raise NotImplementedError

    def info(self, key: str) -> TensorInfo:
        raise NotImplementedError

    def read(self, key: str) -> np.ndarray:
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

    def read(self, key: str) -> np.ndarray:
        if key not in self._where:
            raise self._missing(key)
        return self._where[key].read(key)

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
    """A shard must be a plain file directly inside the model directory: no paths, no links out of it."""
    if not filename or filename != Path(filename).name or filename in (".", "..") or "\\" in filename:
        raise CheckpointError(f"{index_path}: refused shard file name {filename!r}: it leaves the model directory")
    path = directory / filename
    if path.is_symlink() or (path.exists() and path.resolve().parent != directory.resolve()):
        raise CheckpointError(f"{index_path}: refused shard {filename!r}: it is a link")
    return path


class WriteBehind:
    """Keeps a large file's writing from filling the page cache (Linux): every 64 MB, the kernel is told to start
    writing the new range to disk, and the range before it, written by then, is dropped from the cache. A
    multi-gigabyte checkpoint then neither piles up as dirty pages for the final fsync nor pushes the machine into
    reclaiming memory while it is written. Elsewhere this does nothing."""

    _WINDOW = 64 * 2**20
    _WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4

    def __init__(self, file):
        self._file, self._started, self._dropped = file, 0, 0
        self._sync_file_range = _libc_function(
            "sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        )

    def written(self) -> None:
        """Call after writes that move the file position forward."""
        if self._sync_file_range is None:
            return
        position = self._file.tell()
        if position - self._started < self._WINDOW:
            return
        self._file.flush()
        fd = self._file.fileno()
        self._sync_file_range(fd, self._started, position - self._started, self._WRITE)
        if self._started > self._dropped:  # the previous window: wait for it, then let the cache forget it
            length = self._started - self._dropped
            self._sync_file_range(fd, self._dropped, length, self._WAIT_BEFORE | self._WRITE | self._WAIT_AFTER)
            os.posix_fadvise(fd, self._dropped, length, os.POSIX_FADV_DONTNEED)
            self._dropped = self._started
        self._started = position


def _libc_function(name: str, argtypes: list):
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    return function


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it over `path` only if the block completes.

    A failure or a kill mid-write leaves the previous file (or no file) at `path`, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a saved model should read like any file
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
