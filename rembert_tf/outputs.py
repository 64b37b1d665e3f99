"""The output records of `rembert_spec.outputs`, as TensorFlow and Keras need them.

Each class here subclasses the spec's record of the same name (same fields, `isinstance` holds) and adds two
things: it can be built from one iterable of (field, value) pairs, which is how tf.function rebuilds a dict
subclass it returns, and it is registered with Keras' tree utilities (optree sees an unregistered dict subclass
as a single leaf), so `predict` and compiled metrics reach the tensors inside.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from rembert_spec import outputs as spec


def _pairs(value: Any) -> dict | None:
    """`value` as {field: value} when it is a mapping or an iterable of (str, value) pairs, else None."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, types.GeneratorType)):
        items = list(value)
        if all(isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) for item in items):
            return dict(items)
    return None


def _graph_friendly(record: type[spec.ModelOutput]) -> type[spec.ModelOutput]:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pairs = _pairs(args[0]) if len(args) == 1 and not kwargs else None
        if pairs is not None:
            args, kwargs = (), pairs
        record.__init__(self, *args, **kwargs)

    return type(record.__name__, (record,), {"__init__": __init__, "__module__": __name__, "__doc__": record.__doc__})


BaseModelOutputWithPoolingAndCrossAttentions = _graph_friendly(spec.BaseModelOutputWithPoolingAndCrossAttentions)
MaskedLMOutput = _graph_friendly(spec.MaskedLMOutput)
CausalLMOutputWithCrossAttentions = _graph_friendly(spec.CausalLMOutputWithCrossAttentions)
SequenceClassifierOutput = _graph_friendly(spec.SequenceClassifierOutput)
MultipleChoiceModelOutput = _graph_friendly(spec.MultipleChoiceModelOutput)
TokenClassifierOutput = _graph_friendly(spec.TokenClassifierOutput)
QuestionAnsweringModelOutput = _graph_friendly(spec.QuestionAnsweringModelOutput)

RECORDS = (
    BaseModelOutputWithPoolingAndCrossAttentions,
    MaskedLMOutput,
    CausalLMOutputWithCrossAttentions,
    SequenceClassifierOutput,
    MultipleChoiceModelOutput,
    TokenClassifierOutput,
    QuestionAnsweringModelOutput,
)


def _register_with_keras_tree() -> None:
    try:
        import optree
    except ImportError:  # Keras then uses dm-tree, which walks dict subclasses as dicts already
        return

    def flatten(record: spec.ModelOutput) -> tuple[tuple, tuple]:
        return tuple(record.values()), tuple(record.keys())

    for record_class in RECORDS:
        optree.register_pytree_node(
            record_class,
            flatten,
            lambda keys, values, cls=record_class: cls(**dict(zip(keys, values, strict=True))),
            namespace="keras",
        )


_register_with_keras_tree()
