"""How a model's `call` takes its inputs: in every form Hugging Face's TensorFlow models accept.

- by keyword: `model(input_ids=ids, attention_mask=mask)`, or by position: `model(ids, mask)`;
- a dict in the first argument (Keras' convention, and what `fit` passes), Python flags included:
  `model({"input_ids": ids, "attention_mask": mask, "output_attentions": True})`;
- a list or tuple of tensors in the first argument, in the order of `call`'s parameters:
  `model([ids, mask, token_type_ids])`.

Numpy arrays and Python lists become tensors; flags (`output_attentions`, `return_dict`, ...) stay Python values,
since they shape the graph. A nested Python list of numbers in the first argument is input_ids, not a list of
inputs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rembert_spec.inputs import InputError

# Arguments of `call` that are not tensors: they stay Python values (they shape the graph).
FLAGS = frozenset(
    {
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "training",
        "logits_to_keep",
        "unpad",
    }
)

_TENSORS = (tf.Tensor, tf.Variable, np.ndarray, keras.KerasTensor)


def _to_tensor(value: Any) -> Any:
    if value is None or isinstance(value, (tf.Tensor, tf.Variable, keras.KerasTensor)):
        return value
    return tf.convert_to_tensor(value)


def is_input_list(value: Any) -> bool:
    """A list or tuple of inputs in call order (its first item a tensor or array), as opposed to input_ids
    written as nested Python lists of numbers."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], _TENSORS)


def parameter_names(call: Callable) -> list[str]:
    """The inputs `call` takes, in order (a bound method's `self` left out)."""
    names = list(inspect.signature(call).parameters)
    return names[1:] if names and names[0] == "self" else names


def named_inputs(inputs: Mapping | list | tuple | Any, names: list[str], model_name: str) -> dict[str, Any]:
    """Inputs given as one value (a dict, a list in call order, or the main input alone) as a dict by name."""
    if isinstance(inputs, Mapping):
        for key in inputs:
            if key not in names:
                raise InputError(f"{model_name} takes no input named {key!r}; it takes {', '.join(names)}")
        return dict(inputs)
    if is_input_list(inputs):
        if len(inputs) > len(names):
            raise InputError(
                f"{model_name} takes at most {len(names)} inputs in a list ({', '.join(names)}), got {len(inputs)}"
            )
        return dict(zip(names, inputs, strict=False))
    return {names[0]: inputs}


def flags_out_of_the_dict(args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """(args, kwargs) of a model call with the Python flags of a dict of inputs moved to keyword arguments: Keras'
    `Layer.__call__` refuses a dict that mixes tensors and Python values."""
    if not args or not isinstance(args[0], Mapping) or FLAGS.isdisjoint(args[0]):
        return args, kwargs
    flags = {k: v for k, v in args[0].items() if k in FLAGS}
    for key in flags:
        if key in kwargs:
            raise InputError(f"{key} is given both in the dict of inputs and by name")
    return ({k: v for k, v in args[0].items() if k not in FLAGS}, *args[1:]), {**kwargs, **flags}


def unpack_inputs(call: Callable) -> Callable:
    """Let `call` take its inputs in any of the forms above, and turn numpy arrays and lists into tensors.

    >>> model({"input_ids": ids, "attention_mask": mask, "labels": labels})  # doctest: +SKIP
    >>> model([ids, mask, token_type_ids])  # doctest: +SKIP
    """
    signature = inspect.signature(call)
    names = parameter_names(call)

    @functools.wraps(call)
    def wrapper(self, *args: Any, **kwargs: Any):
        if args and (isinstance(args[0], Mapping) or is_input_list(args[0])):
            if len(args) > 1:
                raise TypeError(f"{type(self).__name__}: with a dict or list of inputs, pass other arguments by name")
            given = named_inputs(args[0], names, type(self).__name__)
            for key in given:
                if key in kwargs:
                    raise InputError(f"{key} is given both in the {type(args[0]).__name__} of inputs and by name")
            args, kwargs = (), {**given, **kwargs}
        bound = signature.bind(self, *args, **kwargs)
        for name, value in list(bound.arguments.items())[1:]:
            if name == "past_key_values" and value is not None:
                bound.arguments[name] = tuple(tuple(_to_tensor(t) for t in layer) for layer in value)
            elif name not in FLAGS:
                bound.arguments[name] = _to_tensor(value)
        return call(*bound.args, **bound.kwargs)

    return wrapper
