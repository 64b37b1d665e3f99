"""Registers the output records of `rembert_spec.outputs` with Keras' tree utilities.

optree sees an unregistered dict subclass as a single leaf; registered, `predict` and compiled metrics reach the
tensors inside. (tf.function rebuilds a returned record from its (field, value) pairs, which records accept.)
"""

from __future__ import annotations

from rembert_spec.outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

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

    def flatten(record: ModelOutput) -> tuple[tuple, tuple]:
        return tuple(record.values()), tuple(record.keys())

    for record_class in RECORDS:
        optree.register_pytree_node(
            record_class,
            flatten,
            lambda keys, values, cls=record_class: cls(**dict(zip(keys, values, strict=True))),
            namespace="keras",
        )


_register_with_keras_tree()

__all__ = [record.__name__ for record in RECORDS]
