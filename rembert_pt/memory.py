"""Give freed activation memory back to the operating system while training (glibc only).

glibc serves large allocations with mmap and returns them on free, but after the first such free it raises its
threshold (up to 32 MB), so later activations come from the heap, which does not shrink: a training step then
keeps about 1.5 GB of freed activations resident at full size while the gradients are being allocated. Pinning
the threshold at 4 MB keeps every large activation on mmap. This is process-wide, so it happens once, when a
model is first put in training mode; set REMBERT_TUNE_MALLOC=0 to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_MMAP_THRESHOLD = -3
_THRESHOLD = 4 * 2**20
_done = False


def return_large_frees_to_the_os() -> bool:
    """Pin glibc's mmap threshold (once per process). False where it does not apply or is switched off."""
    global _done
    if _done:
        return True
    if os.environ.get("REMBERT_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
    return _done
