"""Writing tensors a block of rows at a time, without keeping memory-mapped pages resident.

The readers hand out zero-copy views of a file's memory map. Every page of a map that has been touched counts in
the process's resident set until it is unmapped, so copying a 1.7 GB tensor out of a map would leave 1.7 GB
resident although the data lives in the page cache. `row_blocks` walks a tensor a few megabytes at a time, and
after each block tells the kernel (`madvise(MADV_DONTNEED)`) that the block's pages of the map are no longer
needed: they leave the resident set, stay in the page cache, and are read again from it if touched again.
This is safe only for file-backed read-only maps, so `release` acts only on arrays found to view an `mmap.mmap`
opened for reading (never on copy-on-write maps, whose changed pages would be lost).

>>> import numpy as np
>>> [block.shape for block in row_blocks(np.zeros((5, 4), np.float32), np.float32, block_bytes=32)]
[(2, 4), (2, 4), (1, 4)]
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np

BLOCK_BYTES = 32 * 2**20
# Side of the square tiles a transposed view is copied in: small enough for both tiles to stay in cache.
TILE = 64


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    """The memory map an array views, found through its chain of bases; None for ordinary memory."""
    obj: object = array
    for _ in range(64):
        if isinstance(obj, mmap.mmap):
            return obj
        if isinstance(obj, memoryview):
            obj = obj.obj
        elif isinstance(obj, np.ndarray):
            obj = obj.base
        else:
            return None
        if obj is None:
            return None
    return None


def _byte_span(array: np.ndarray) -> tuple[int, int]:
    """The address range [low, high) an array's elements occupy."""
    low = high = array.__array_interface__["data"][0]
    for size, stride in zip(array.shape, array.strides, strict=True):
        if size == 0:
            return low, low
        if stride < 0:
            low += (size - 1) * stride
        else:
            high += (size - 1) * stride
    return low, high + array.itemsize


def release(array: np.ndarray) -> bool:
    """Drop the mapped pages under `array` from the resident set. False when there was nothing to do."""
    mapped = _mapping(array)
    if mapped is None or array.size == 0:
        return False
    try:
        first = np.frombuffer(mapped, dtype=np.uint8, count=1)
        if first.flags.writeable:
            return False  # a writable (copy-on-write) map: dropping its pages would drop changes made to them
        base = first.__array_interface__["data"][0]
        low, high = _byte_span(array)
        start = max(0, low - base)
        end = min(len(mapped), high - base)
        start -= start % mmap.PAGESIZE
        if end <= start:
            return False
        mapped.madvise(mmap.MADV_DONTNEED, start, end - start)
    except (ValueError, OSError, BufferError):  # a closed map, or a system without madvise: only memory is at stake
        return False
    return True


def copy_tiled(view: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy a 2-D strided view (typically a transposed one) into C-contiguous `out`, casting, tile by tile.

    numpy copies a transposed array element by element across the whole source, missing the cache on nearly
    every read; square tiles keep source and destination in cache, which is several times faster.
    """
    view = view.view(np.ndarray)  # slicing an np.memmap subclass costs more than copying a tile
    rows, cols = view.shape
    for j in range(0, cols, TILE):
        for i in range(0, rows, TILE):
            out[i : i + TILE, j : j + TILE] = view[i : i + TILE, j : j + TILE]
    return out


def row_blocks(array: np.ndarray, dtype: np.dtype, block_bytes: int = BLOCK_BYTES) -> Iterator[np.ndarray]:
    """C-contiguous blocks of `array` along its first axis, cast to `dtype`, each about `block_bytes` large.

    A block the caller has finished with (when the next one is requested) is released from the resident set;
    so is the whole tensor at the end, which covers transposed views whose rows span the whole tensor. Blocks of
    a strided 2-D view are copied tile by tile into one reused buffer: a block is valid until the next one.
    """
    dtype = np.dtype(dtype)
    if array.ndim == 0:
        yield np.ascontiguousarray(array, dtype=dtype)
        release(array)
        return
    row_bytes = max(1, (array.size // max(1, array.shape[0])) * max(array.itemsize, dtype.itemsize))
    rows = max(1, block_bytes // row_bytes)
    tiled = array.ndim == 2 and not array.flags.c_contiguous and array.size > TILE * TILE
    buffer = np.empty((min(rows, array.shape[0]), array.shape[1]), dtype) if tiled else None
    for start in range(0, array.shape[0], rows):
        block = array[start : start + rows]
        if buffer is not None:
            yield copy_tiled(block, buffer[: block.shape[0]])
        else:
            yield np.ascontiguousarray(block, dtype=dtype)
        if block.flags.c_contiguous:
            release(block)
    release(array)
