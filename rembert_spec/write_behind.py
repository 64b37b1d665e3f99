"""Write-behind for large files: the page cache is told to write and forget a file as it grows (Linux)."""

from __future__ import annotations

import ctypes
import os
import sys


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
