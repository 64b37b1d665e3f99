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
import threading
from collections.abc import Callable, Iterable, Sequence
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


def _fresh_memory(nbytes: int, populate: bool) -> mmap.mmap:
    """`nbytes` of page-aligned anonymous memory, private to this process; faulted in whole at once if `populate`
    (far cheaper than a fault per page while copying, but the call holds the GIL), else as it is first written."""
    private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    if not private:
        return mmap.mmap(-1, nbytes)
    return mmap.mmap(-1, nbytes, flags=private | (getattr(mmap, "MAP_POPULATE", 0) if populate else 0))


def _cut_short(path: Path, key: str, done: int, nbytes: int, offset: int) -> CheckpointError:
    return CheckpointError(
        f"{path}: tensor {key!r} is cut short: {done} of its {nbytes} bytes (from byte {offset}) are in the file "
        "(truncated?)"
    )


def read_private(
    file: BinaryIO, offset: int, dtype: np.dtype, shape: tuple[int, ...], path: Path, key: str
) -> np.ndarray:
    """One tensor read from `file` at byte `offset` into fresh, page-aligned memory of its own, in one pass.

    The memory is an anonymous map faulted in whole before the read; the kernel then copies the bytes from the
    page cache straight into it. Any framework can adopt the array without another copy (TensorFlow through
    DLPack; it needs 64-byte alignment), and it lives and dies with the array."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype)
    memory = _fresh_memory(nbytes, populate=True)
    view = memoryview(memory)
    done = 0
    try:
        file.seek(offset)
        while done < nbytes:
            read = file.readinto(view[done:])
            if not read:
                raise _cut_short(path, key, done, nbytes, offset)
            done += read
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read tensor {key!r} ({e.strerror or e})") from None
    finally:
        view.release()
    return np.frombuffer(memory, dtype=dtype, count=count).reshape(shape)


# -- reading ahead, on a background thread -----------------------------------------------------------------------

READ_AHEAD_SUPPORTED = hasattr(os, "preadv")  # positional reads of several buffers in one call (not on Windows)


@dataclass(frozen=True)
class PlannedRead:
    """A tensor a reader will read into memory of its own: where its bytes are in the file, and what they are."""

    key: str
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


class ReadAhead:
    """Tensors read into memory of their own on background threads, while the caller does other work (builds the
    model), each as `read_private` would read it: once, straight from the file into fresh page-aligned memory.

    Neighbouring tensors are read in file order by one `os.preadv` call per group of about `GROUP_BYTES`, each
    tensor's bytes going straight into its own memory and the bytes between tensors into a scratch buffer. The
    call releases the GIL, and the kernel faults the fresh memory in while copying (most of the cost: the
    copy itself is fast); few calls matter, because each return has to wait for the GIL that a busy main thread
    (building Keras layers) holds for up to the interpreter's switch interval: one wait per tensor costs more than
    the reads themselves. `THREADS` threads take the groups in turn.

    `take(key)` waits for a tensor and hands it over (or raises the error its read met, naming the file and the
    tensor); it returns None for a tensor that was not planned or will not be read (reading stops at the first
    error): the reader then reads it itself. `close()` stops the threads after the groups they are reading, joins
    them and drops what was not taken."""

    THREADS = 2  # at most; the main thread builds the model meanwhile (on a 2-core machine, 2 beat 1 by 0.4 s)
    GROUP_BYTES = 128 * 2**20
    MAX_GAP = 2**20  # bytes between two tensors still read in the same call (into the scratch buffer)
    MAX_BUFFERS = 512  # per call: two iovecs per tensor, below every system's IOV_MAX (1024 on Linux)

    def __init__(self, fd: int, path: Path, reads: Iterable[PlannedRead]):
        self.path = path
        self._fd = fd
        reads = sorted((read for read in reads if read.nbytes), key=lambda read: read.offset)
        self._groups = self._grouped(reads)  # the threads take them in order
        self._pending = {read.key for read in reads}  # planned and not yet taken
        self._results: dict[str, np.ndarray | CheckpointError] = {}
        self._condition = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, name=f"rembert read-ahead {i} of {path.name}", daemon=True)
            for i in range(min(self.THREADS, _usable_cores(), len(self._groups)))
        ]
        self._running = len(self._threads)
        for thread in self._threads:
            thread.start()

    @classmethod
    def _grouped(cls, reads: list[PlannedRead]) -> list[list[PlannedRead]]:
        groups: list[list[PlannedRead]] = []
        end = nbytes = 0
        for read in reads:
            apart = not groups or not 0 <= read.offset - end <= cls.MAX_GAP  # overlapping data starts a group too
            if apart or nbytes >= cls.GROUP_BYTES or len(groups[-1]) >= cls.MAX_BUFFERS:
                groups.append([])
                nbytes = 0
            groups[-1].append(read)
            end, nbytes = read.offset + read.nbytes, nbytes + read.nbytes
        return groups

    def _run(self) -> None:
        try:
            while True:
                with self._condition:
                    if self._stopping or not self._groups:
                        break
                    group = self._groups.pop(0)
                try:
                    results = self._read_group(group)
                except Exception as e:  # no memory for the tensors, say: each of them fails as the caller reads it
                    results = {read.key: self._error(read.key, f"{type(e).__name__}: {e}") for read in group}
                with self._condition:
                    self._results.update(results)
                    self._condition.notify_all()
                    if any(isinstance(result, CheckpointError) for result in results.values()):
                        self._stopping = True  # the caller meets the error when it takes that tensor
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify_all()

    def _read_group(self, group: list[PlannedRead]) -> dict[str, np.ndarray | CheckpointError]:
        memories = [_fresh_memory(read.nbytes, populate=False) for read in group]
        ends = [read.offset + read.nbytes for read in group]
        gaps = [read.offset - end for read, end in zip(group[1:], ends, strict=False)]
        scratch = memoryview(bytearray(max(gaps, default=0)))  # the bytes between tensors land here
        buffers = [memoryview(memories[0])]
        for gap, memory in zip(gaps, memories[1:], strict=True):
            if gap:
                buffers.append(scratch[:gap])
            buffers.append(memoryview(memory))
        try:
            done = _read_into(self._fd, list(buffers), group[0].offset)
        except OSError as e:
            return {read.key: self._error(read.key, e.strerror or str(e)) for read in group}
        finally:
            for buffer in buffers:
                buffer.release()
        results: dict[str, np.ndarray | CheckpointError] = {}
        for read, memory in zip(group, memories, strict=True):
            got = min(read.nbytes, max(0, group[0].offset + done - read.offset))
            if got < read.nbytes:  # the file ended early: it was cut after the reader measured it
                results[read.key] = _cut_short(self.path, read.key, got, read.nbytes, read.offset)
            else:
                count = math.prod(read.shape)
                results[read.key] = np.frombuffer(memory, dtype=read.dtype, count=count).reshape(read.shape)
        return results

    def _error(self, key: str, why: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: cannot read tensor {key!r} ({why})")

    def take(self, key: str) -> np.ndarray | None:
        """The tensor read for `key`, once it is read; None when it was not planned or will not be read."""
        with self._condition:
            if key not in self._pending:
                return None
            self._pending.discard(key)
            self._condition.wait_for(lambda: key in self._results or not self._running)
            result = self._results.pop(key, None)
        if isinstance(result, CheckpointError):
            raise CheckpointError(str(result)) from None
        return result

    def close(self) -> None:
        """Stop reading (after the groups being read), wait for the threads, and drop the tensors not taken."""
        with self._condition:
            self._stopping = True
        for thread in self._threads:
            thread.join()
        self._results.clear()
        self._pending.clear()


def _usable_cores() -> int:
    """The cores this process may run on (its affinity where the system tells it, else the machine's)."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(1, len(cores))


def _read_into(fd: int, buffers: list[memoryview], offset: int) -> int:
    """Fill `buffers` with the file's bytes from `offset` on, in as few `os.preadv` calls as the kernel allows;
    the bytes read (fewer where the file ends first)."""
    done = 0
    while buffers:
        read = os.preadv(fd, buffers, offset + done)
        if not read:
            break
        done += read
        while buffers and read >= len(buffers[0]):
            read -= len(buffers.pop(0))
        if read:
            buffers[0] = buffers[0][read:]
    return done


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

    def read_ahead(self, keys: Sequence[str]) -> None:
        """A hint: `keys` are read next, in this order, without `transient`. A reader may start reading those it
        reads into memory of their own on a background thread now (`ReadAhead`), so that the reads overlap what the
        caller does until it reads them. By default, nothing."""

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
