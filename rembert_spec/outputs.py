"""Output records shared by both backends: which fields each head returns, and how they read.

An output is an ordered dict of its non-None fields that also answers attribute access (`out.logits`, None for
an absent field) and integer indexing in field order (`out[0]`), as Hugging Face users expect. Being a dict, it
passes through Keras and tf.nest unchanged.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, ClassVar


class ModelOutput(dict):
    """Base record; subclasses name their `fields` in order."""

    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any):
        pairs = self._as_pairs(args[0]) if len(args) == 1 and not kwargs else None
        if pairs is not None:  # built like a dict, as tf.function and tree utilities rebuild a dict subclass
            args, kwargs = (), pairs
        if len(args) > len(self.fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.fields)} positional fields")
        values = dict(zip(self.fields, args, strict=False))
        for key, value in kwargs.items():
            if key not in self.fields:
                raise TypeError(f"{type(self).__name__} has no field {key!r}; fields: {', '.join(self.fields)}")
            if key in values:
                raise TypeError(f"{type(self).__name__}: field {key!r} given twice")
            values[key] = value
        super().__init__((key, values[key]) for key in self.fields if values.get(key) is not None)

    @classmethod
    def _as_pairs(cls, value: Any) -> dict | None:
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, (list, types.GeneratorType)):
            items = list(value)
            if all(isinstance(i, tuple) and len(i) == 2 and i[0] in cls.fields for i in items):
                return dict(items)
        return None

    def __getattr__(self, name: str) -> Any:
        if name in type(self).fields:
            return self.get(name)
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.fields:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        self[name] = value

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.fields:
            raise KeyError(f"{type(self).__name__} has no field {key!r}")
        if value is None:
            self.pop(key, None)
            return
        # Keep field order whatever order fields are set in.
        items = {**self, key: value}
        super().clear()
        super().update((k, items[k]) for k in self.fields if k in items)

    def to_tuple(self) -> tuple:
        """The non-None fields in order: what `return_dict=False` returns."""
        return tuple(self[k] for k in self.fields if k in self)

    def __reduce__(self):
        return (_rebuild, (type(self), dict(self)))


def _rebuild(cls: type[ModelOutput], values: dict) -> ModelOutput:
    return cls(**values)


class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    fields = (
        "last_hidden_state",
        "pooler_output",
        "past_key_values",
        "hidden_states",
        "attentions",
        "cross_attentions",
    )


class MaskedLMOutput(ModelOutput):
    fields = ("loss", "logits", "hidden_states", "attentions")


class CausalLMOutputWithCrossAttentions(ModelOutput):
    fields = ("loss", "logits", "past_key_values", "hidden_states", "attentions", "cross_attentions")


class SequenceClassifierOutput(ModelOutput):
    fields = ("loss", "logits", "hidden_states", "attentions")


class MultipleChoiceModelOutput(ModelOutput):
    fields = ("loss", "logits", "hidden_states", "attentions")


class TokenClassifierOutput(ModelOutput):
    fields = ("loss", "logits", "hidden_states", "attentions")


class QuestionAnsweringModelOutput(ModelOutput):
    fields = ("loss", "start_logits", "end_logits", "hidden_states", "attentions")


OUTPUT_FOR_HEAD: dict[str, type[ModelOutput]] = {
    "base": BaseModelOutputWithPoolingAndCrossAttentions,
    "masked_lm": MaskedLMOutput,
    "causal_lm": CausalLMOutputWithCrossAttentions,
    "sequence_classification": SequenceClassifierOutput,
    "multiple_choice": MultipleChoiceModelOutput,
    "token_classification": TokenClassifierOutput,
    "question_answering": QuestionAnsweringModelOutput,
}

# The fields of each head's output that are its predictions, in order: what Keras' `predict` returns and what a
# loss or metrics given to Keras' `compile` are computed on.
PREDICTIONS: dict[str, tuple[str, ...]] = {
    "base": ("last_hidden_state", "pooler_output"),
    "masked_lm": ("logits",),
    "causal_lm": ("logits",),
    "sequence_classification": ("logits",),
    "multiple_choice": ("logits",),
    "token_classification": ("logits",),
    "question_answering": ("start_logits", "end_logits"),
}


def returned(outputs: ModelOutput, return_dict: bool | None, return_dict_default: bool) -> ModelOutput | tuple:
    """What forward / call returns: the record, or with `return_dict=False` (default: the config's) its tuple."""
    return outputs if (return_dict_default if return_dict is None else return_dict) else outputs.to_tuple()


class EncoderRecord:
    """What an encoder collects layer by layer for its output, as asked: hidden states (starting with the layers'
    input), self- and cross-attention probabilities, each layer's new key/value cache.

    With `packing` (the backend's `Packing`: `pack` [batch, length, ...] -> [n_real, ...], `pad` back with zeros),
    hidden states travel packed and come out padded. A recorded hidden state is then padded once and the next
    layer reads its real rows back from that padded tensor, so that every tensor in `hidden_states` lies on the
    path to the outputs, as in a model without packing: autograd (`retain_grad`) and `GradientTape` see its
    gradient.
    """

    def __init__(
        self,
        output_hidden_states: bool,
        output_attentions: bool,
        cross_attention: bool,
        use_cache: bool,
        packing: Any = None,
    ):
        self.hidden_states: list | None = [] if output_hidden_states else None
        self.attentions = [] if output_attentions else None
        self.cross_attentions = [] if output_attentions and cross_attention else None
        self.presents = [] if use_cache else None
        self.packing = packing

    def _follow(self, hidden_states: Any) -> Any:
        """Record a hidden state (if asked); return what the next layer reads."""
        if self.hidden_states is None:
            return hidden_states
        if self.packing is None:
            self.hidden_states.append(hidden_states)
            return hidden_states
        padded = self.packing.pad(hidden_states)
        self.hidden_states.append(padded)
        return self.packing.pack(padded)

    def start(self, first_hidden_states: Any) -> Any:
        """The layers' input; returns what the first layer reads."""
        return self._follow(first_hidden_states)

    def add(self, hidden_states: Any, probs: Any, cross_probs: Any, present: Any) -> Any:
        """One layer's outputs; returns what the next layer reads."""
        for collected, value in (
            (self.attentions, probs),
            (self.cross_attentions, cross_probs),
            (self.presents, present),
        ):
            if collected is not None:
                collected.append(value)
        return self._follow(hidden_states)

    def output(self, last_hidden_state: Any) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """The encoder's record, every hidden state [batch, length, hidden]; `last_hidden_state` is the last
        layer's output (as returned by `add`), which is also the last of `hidden_states`."""
        if self.hidden_states:
            last_hidden_state = self.hidden_states[-1]
        elif self.packing is not None:
            last_hidden_state = self.packing.pad(last_hidden_state)

        def as_tuple(collected: list | None) -> tuple | None:
            return tuple(collected) if collected is not None else None

        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=last_hidden_state,
            past_key_values=as_tuple(self.presents),
            hidden_states=as_tuple(self.hidden_states),
            attentions=as_tuple(self.attentions),
            cross_attentions=as_tuple(self.cross_attentions),
        )
