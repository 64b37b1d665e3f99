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
- `assert_async` (`torch._assert_async`): where ids may not be read back to the host (torch.compile,
  torch.export, torch.jit.trace, accelerators), their range is checked by an assertion op in the graph or on the
  device. Off: there, ids are not checked (CPU eager still checks them on the host, with the offending value).
- `pytree` (`torch.utils._pytree.register_pytree_node`): output records are containers to torch.export and
  torch.compile, so an exported model returns them as eager does. Off: export a model with `return_dict=False`.
- `int_mm` (`torch._int_mm`, int8 x int8 -> int32 on CPU): the matrix product of `quantize="int8"` layers, where
  it is exact (VNNI / AVX-512; a CPU with AVX2 only saturates, checked once per process). Off, or not exact: the
  same product in float32 (exact below 2**24, else within float rounding), no faster than float32.
- `import_gc` (`gc.freeze`, in rembert_pt/__init__.py, before PyTorch is imported; see rembert_spec.import_gc):
  PyTorch's objects are imported with the cyclic collector paused, then frozen out of its sweeps: import about
  0.1 s and interpreter exit about 0.25 s faster, every full collection cheaper. Off: the collector is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterable

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


# -- assert_async ----------------------------------------------------------------------------------------
# `torch._assert_async(condition, message)` is an op: the condition stays a tensor, so nothing is read back to the
# host. In a graph (torch.compile, torch.export) it is recorded like any op and raises when the graph runs; on an
# accelerator it is a device-side assertion. The ONNX exporter drops it (ONNX has no assertion op).


def assert_on_device(condition: torch.Tensor, message: str) -> bool:
    """Assert that the boolean scalar `condition` holds, without waiting for its value. False when switched off
    (nothing is checked)."""
    if not active("assert_async"):
        return False
    torch._assert_async(condition, message)
    return True


# -- pytree ----------------------------------------------------------------------------------------------
# torch.export and torch.compile flatten a model's outputs with torch's pytree registry, which only knows exact
# types: an output record (a dict subclass) must be registered to come out of an exported program as itself.


def register_output_records(records: Iterable[type]) -> bool:
    """Register each output record class (rembert_spec.outputs) as a pytree container of its present fields.
    False when switched off."""
    if not active("pytree"):
        return False
    import torch.utils._pytree as pytree

    for record in records:
        if record in pytree.SUPPORTED_NODES:
            continue
        pytree.register_pytree_node(
            record,
            _record_fields,
            _record_rebuilder(record),
            serialized_type_name=f"{record.__module__}.{record.__qualname__}",
            flatten_with_keys_fn=lambda out: _record_fields_with_keys(out, pytree.MappingKey),
        )
    return True


def _record_fields(out: dict) -> tuple[list, list[str]]:
    keys = [key for key in type(out).fields if key in out]
    return [out[key] for key in keys], keys


def _record_fields_with_keys(out: dict, key_type: type) -> tuple[list, list[str]]:
    values, keys = _record_fields(out)
    return [(key_type(key), value) for key, value in zip(keys, values, strict=True)], keys


def _record_rebuilder(record: type):
    def rebuild(values: Iterable, keys: list[str]):
        return record(**dict(zip(keys, values, strict=True)))

    return rebuild


# -- int_mm ----------------------------------------------------------------------------------------------


# On a CPU without VNNI instructions (AVX2 only, or oneDNN held to AVX2), oneDNN adds pairs of int8 products in
# saturating 16-bit sums. Int8Linear keeps its weights within [-64, 64], where such sums cannot saturate; whether this
# process's kernel is exact on those operands is asked once, on the extreme values, and where it is not (a kernel
# that saturates even there), the float32 product is used.
_int_mm_exact: bool | None = None


def int_mm_is_exact() -> bool:
    """Whether `torch._int_mm` computes exact int32 products here for int8 inputs times weights within [-64, 64]
    (every x86 kernel does: VNNI, AVX-512 and AVX2)."""
    global _int_mm_exact
    if _int_mm_exact is None:
        # Rows and columns of one extreme value each: every pair of products at its largest.
        a = torch.tensor([127, -128, -127, 1] * 8, dtype=torch.int8)[:, None].expand(32, 64).contiguous()
        b = torch.tensor([64, -64, -63, 1] * 8, dtype=torch.int8)[None, :].expand(64, 32).contiguous()
        expected = a.long() @ b.long()
        try:
            _int_mm_exact = bool((torch._int_mm(a, b).long() == expected).all())
        except RuntimeError:  # no int8 kernel for this device or build
            _int_mm_exact = False
    return _int_mm_exact


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for int8 matrices [m, k] @ [k, n], accumulated in int32; exact where every |b| <= 64 (Int8Linear's
    weights), whatever the CPU."""
    if active("int_mm") and (a.device.type != "cpu" or int_mm_is_exact()):
        return torch._int_mm(a, b)
    return torch.matmul(a.float(), b.float()).round_().to(torch.int32)
