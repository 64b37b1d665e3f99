"""Every place rembert_tf reaches past Keras' and TensorFlow's public API, and its low-level speed code.

Each hook has a name, a test that pins what it relies on (tests/tf/test_internals.py: a Keras or TensorFlow
upgrade that moves it fails there, loudly) and an off switch: `REMBERT_DISABLE_INTERNALS=1` (all) or a list of
names (see rembert_spec.switches), read at import; at run time, add names to `DISABLED` (models built and calls
made afterwards follow it; `error_context`, `keras_tree` and `import_gc` act at import only). With any hook off, the
model computes the same numbers.

- `input_conversion` (`Layer._convert_input_args`, `_allow_non_tensor_positional_args`): no input walk on every
  layer call; float labels keep their dtype under mixed precision. Off: Keras converts the inputs (float labels
  are cast to the compute dtype).
- `deferred_variables` (`keras.StatelessScope` deferring creation, `Variable._initializer` / `_value`):
  from_pretrained creates each variable once, from the checkpoint. Off: variables start as zeros, then are assigned.
- `dlpack` (`tf.experimental.dlpack` over numpy memory): a variable starts on the checkpoint's copy-on-write
  pages, or on memory the reader filled for it in one pass (data not 64-byte aligned in the file, `mmap=False`).
  Off: one copy per tensor.
- `xla_context` (TensorFlow's private control-flow utilities): tells XLA graphs (static shapes) from others (skip
  padding, assertion ops). Off: every graph is treated as XLA (no graph-time assertions; labelled LM logits are
  all logits in graphs).
- `save_signature` (`_default_save_signature`): `tf.saved_model.save(model, path)` exports `serving_function()`.
  Off: no default signature (pass `signatures=model.serving_function()`).
- `error_context` (`_keras_call_info_injected` on `InputError`): errors read as in PyTorch. Off: Keras appends
  every argument's value to the message.
- `keras_tree` (optree's "keras" namespace): output records reach Keras as their tensors, so a functional model
  reads the backbone's outputs by name. Off: records are single leaves to Keras (a functional model then calls
  the backbone with `return_dict=False`).
- `import_gc` (`gc.freeze`, in rembert_tf/__init__.py, before TensorFlow is imported; see rembert_spec.import_gc):
  TensorFlow's and Keras' half a million objects are imported with the cyclic collector paused, then frozen out of
  its sweeps: import about 0.5 s faster, interpreter exit about 0.75 s faster, every full collection cheaper.
  Off: the collector is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rembert_spec import outputs, switches
from rembert_spec.formats.hf_h5 import ALIGNMENT
from rembert_spec.inputs import InputError

SWITCHES = switches.Switchboard("tf")
HOOKS = SWITCHES.hooks
DISABLED: set[str] = SWITCHES.disabled  # add a hook's name to switch it off from now on
active = SWITCHES.active


# -- input_conversion ------------------------------------------------------------------------------------


def skip_input_conversion(layer: keras.layers.Layer) -> None:
    """Let `layer.call` take its arguments as given. Keras would otherwise walk them on every call, cast float
    ones (labels included) to the compute dtype and refuse non-tensors passed by position."""
    if active("input_conversion"):
        layer._convert_input_args = False
        layer._allow_non_tensor_positional_args = True


# -- deferred_variables ----------------------------------------------------------------------------------


def deferred_variables() -> contextlib.AbstractContextManager:
    """A block in which variables are declared without memory and created when it ends (see `create_from`)."""
    return keras.StatelessScope() if active("deferred_variables") else contextlib.nullcontext()


def create_from(variable: keras.Variable, value: np.ndarray) -> bool:
    """Make a variable declared in `deferred_variables()` get created from `value` when the block ends, instead of
    from zeros that would then be overwritten. False where that is not possible (switched off, the variable
    exists already, or Keras' private attributes moved): the caller then assigns once the block has ended."""
    if not active("deferred_variables"):
        return False
    if getattr(variable, "_value", True) is not None or not hasattr(variable, "_initializer"):
        return False
    variable._initializer = lambda shape, dtype=None: as_tensor(value)
    return True


# -- dlpack ----------------------------------------------------------------------------------------------

_DLPACK_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64))  # bfloat16 has no DLPack code


def adoptable_alignment() -> int:
    """The alignment (bytes) memory needs for `as_tensor` to use it in place; 1 when nothing is used in place."""
    return ALIGNMENT if active("dlpack") else 1


def adopts(value: np.ndarray) -> bool:
    """`as_tensor(value)` will use `value`'s own memory: a writable array (a copy-on-write map of the checkpoint, or
    memory read for the model alone), C-contiguous, 64-byte aligned, of a dtype DLPack knows."""
    aligned = value.ctypes.data % ALIGNMENT == 0 and value.flags.c_contiguous and value.flags.writeable
    return active("dlpack") and aligned and bool(value.size) and value.dtype in _DLPACK_DTYPES


def as_tensor(value: np.ndarray) -> tf.Tensor:
    """A tensor over `value`'s own memory when TensorFlow can use it in place (`adopts`: tf_model.h5 files written
    here align every dataset; others' are read into aligned memory of their own): the variable then starts on it
    and copies only what training changes. Anything else is copied (TensorFlow aborts the process on a misaligned
    buffer, so alignment is checked, never assumed)."""
    if adopts(value):
        return tf.experimental.dlpack.from_dlpack(np.asarray(value).__dlpack__())
    return tf.convert_to_tensor(value)


# -- xla_context -----------------------------------------------------------------------------------------


def in_xla() -> bool:
    """True while tracing a function that XLA compiles (tf.function(jit_compile=True), Keras' jit_compile).
    Switched off, or where TensorFlow's private modules moved, every graph counts (static shapes are safe
    everywhere; what is lost is skipping padding and the graph assertions outside XLA)."""
    if tf.executing_eagerly():
        return False
    if not active("xla_context"):
        return True
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return True
    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


# -- save_signature --------------------------------------------------------------------------------------


def default_save_signature(serving_function: Callable[[], Any], keras_default: Callable[[], Any]) -> Any:
    """What a model's `_default_save_signature` (read by tf.saved_model.save without `signatures=`) returns."""
    return serving_function() if active("save_signature") else keras_default()


# -- error_context and keras_tree (at import) ------------------------------------------------------------


def _register_output_records() -> None:
    """optree sees an unregistered dict subclass as a single leaf; registered in the namespace Keras' tree
    utilities use, Keras reaches the tensors inside (the backbone called on `keras.Input`s in a functional
    model). (tf.function rebuilds a returned record from its (field, value) pairs, which records accept.)"""
    try:
        import optree
    except ImportError:  # Keras then uses dm-tree, which walks dict subclasses as dicts already
        return

    def flatten(record: outputs.ModelOutput) -> tuple[tuple, tuple]:
        return tuple(record.values()), tuple(record.keys())

    for record_class in outputs.OUTPUT_FOR_HEAD.values():
        optree.register_pytree_node(
            record_class,
            flatten,
            lambda keys, values, cls=record_class: cls(**dict(zip(keys, values, strict=True))),
            namespace="keras",
        )


if active("error_context"):
    # Keras re-raises an error from `call` with every argument's value folded into the message, unless the error
    # says it carries that context already; ours names the argument and the value, and reads as PyTorch's.
    InputError._keras_call_info_injected = True
if active("keras_tree"):
    _register_output_records()
