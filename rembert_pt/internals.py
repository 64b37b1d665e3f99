"""Every place rembert_pt reaches past PyTorch's public API, and its low-level speed code.

Each hook has a name, a test that pins what it relies on (tests/pt/test_internals.py: a torch or libc change that
moves it fails there, loudly) and an off switch: `REMBERT_DISABLE_INTERNALS=1` (all) or a list of names (see
rembert_spec.switches), read at import; at run time, add names to `DISABLED`. With any hook off, the model
computes the same numbers.

- `malloc` (glibc's `mallopt(M_MMAP_THRESHOLD)`): a training step keeps about 1.5 GB less of freed activations
  resident. Off: the allocator is left alone.
- `adopt_pages` (`param.data = tensor` keeps the tensor's memory): from_pretrained adopts the checkpoint's
  copy-on-write pages as parameters, no copy. Off: each tensor is copied into its parameter.
- `tensor_version` (`Tensor._version`, bumped by every in-place write): greedy decoding scores the vocabulary
  with a bfloat16 copy of the decoder, rebuilt when the weights change. Off: greedy decoding scores in float32.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

from rembert_spec import switches

SWITCHES = switches.Switchboard("torch")
HOOKS = SWITCHES.hooks
DISABLED: set[str] = SWITCHES.disabled  # add a hook's name to switch it off from now on
active = SWITCHES.active


# -- malloc ----------------------------------------------------------------------------------------------
# glibc serves large allocations with mmap and returns them on free, but after the first such free it raises its
# threshold (up to 32 MB), so later activations come from the heap, which does not shrink: a training step then
# keeps about 1.5 GB of freed activations resident at full size while the gradients are being allocated. Pinning
# the threshold at 4 MB keeps every large activation on mmap. This is process-wide, so it happens once, when a
# model is first put in training mode. REMBERT_TUNE_MALLOC=0 switches it off too (its older name).

_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 4 * 2**20
_malloc_tuned = False


def return_large_frees_to_the_os() -> bool:
    """Pin glibc's mmap threshold (once per process). False where it does not apply or is switched off."""
    global _malloc_tuned
    if _malloc_tuned:
        return True
    switched_off = not active("malloc") or os.environ.get("REMBERT_TUNE_MALLOC", "1") == "0"
    if switched_off or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        return False
    _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
    return _malloc_tuned


# -- adopt_pages -----------------------------------------------------------------------------------------


def fill(param: torch.nn.Parameter, tensor: torch.Tensor, adoptable: bool) -> bool:
    """Give `param` the values of `tensor`; True when it took `tensor`'s memory. An `adoptable` tensor (its memory
    is ours to keep: a private copy-on-write map of the checkpoint, or memory read for us alone; contiguous, of the
    parameter's dtype) becomes the parameter's storage without a copy; pages of a map are then copied by the
    kernel only when training writes them."""
    if adoptable and active("adopt_pages"):
        param.data = tensor
        return True
    param.data.copy_(tensor)
    return False


# -- tensor_version --------------------------------------------------------------------------------------


def weights_key(*tensors: torch.Tensor) -> tuple | None:
    """Identifies the current values of `tensors`: it changes when any is replaced or written in place. None when
    switched off (then nothing may be cached against the values)."""
    if not active("tensor_version"):
        return None
    return tuple(key for t in tensors for key in (t.data_ptr(), t._version))
