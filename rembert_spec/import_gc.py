"""Importing a framework with Python's cyclic garbage collector kept off its objects (the backends' `import_gc`).

Importing TensorFlow and Keras creates over half a million Python objects (modules, classes, functions, their
dicts), nearly all alive until the process ends, and nearly none garbage (under 2,000 found unreachable right
after the import). The cyclic collector still walks every one of them: during the import (about 0.5 s of a
2.3 s import on a 2-core machine), at every later full collection, and three times more when the interpreter
exits (about 0.75 s). PyTorch's import is smaller, and so is the cost (about 0.4 s, exit included).
`paused_then_frozen()` pauses the collector for the import and then moves everything alive into its permanent
generation (`gc.freeze()`), which it never walks again: objects created afterwards (models, tensors, the user's
own) are collected as usual. The cost: the few cycles of garbage the import left stay in memory, and so do cycles
among objects the program made before the import that become garbage later (import the backend first, as usual,
or switch the hook off).

It is process-wide, like the allocator tuning of `rembert_pt.internals`; switched off (`REMBERT_DISABLE_INTERNALS`
naming `import_gc`, or all hooks), the collector is left alone.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_then_frozen(active: bool) -> Iterator[None]:
    """Run the block (a heavy import) with the collector paused, then freeze what is alive. A collector the caller
    had disabled stays disabled; with `active` False, nothing changes."""
    if not active:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


__all__ = ["paused_then_frozen"]
