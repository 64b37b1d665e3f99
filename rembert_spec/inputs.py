"""Rules for model inputs, written once for both backends: what is legal, and the words used when it is not.

The checks take plain Python facts (shapes, dtype kinds, value ranges), so they read the same in PyTorch and
TensorFlow. `check_forward_inputs` walks the arguments of a backbone's `forward` / `call` once for both
frameworks; what only a framework knows (a tensor's sizes and dtype, the range of its values, and, in a
TensorFlow graph, checks that can only run with the graph) comes from a small per-backend `TensorFacts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import RemBertConfig

IGNORE_INDEX = -100

# The arguments of each head's forward / call that hold its labels, in order (what a Keras `y` and Hugging Face's
# Trainer `label_names` are). The backbone has none.
LABEL_NAMES: dict[str, tuple[str, ...]] = {
    "base": (),
    "masked_lm": ("labels",),
    "causal_lm": ("labels",),
    "sequence_classification": ("labels",),
    "multiple_choice": ("labels",),
    "token_classification": ("labels",),
    "question_answering": ("start_positions", "end_positions"),
}

Dim = Any  # a size: an int where it is known when the check runs, else the framework's scalar tensor


class InputError(ValueError):
    """An argument of forward / call is not legal for this model. The message names the argument."""


def check_main_input(has_input_ids: bool, has_inputs_embeds: bool) -> None:
    if has_input_ids and has_inputs_embeds:
        raise InputError("pass either input_ids or inputs_embeds, not both")
    if not has_input_ids and not has_inputs_embeds:
        raise InputError("pass input_ids or inputs_embeds")


def check_rank(name: str, shape: Sequence[int], ranks: Sequence[int], meaning: str) -> None:
    if len(shape) not in ranks:
        raise InputError(f"{name} must be {meaning}, got shape {tuple(shape)}")


# Ids that index an embedding table: 8- and 16-bit integers cannot hold RemBERT's 250,300 ids, so a narrower dtype
# means ids were truncated on the way (and neither framework's lookup takes them).
INDEX_DTYPES = ("int32", "int64")


def check_index_dtype(name: str, dtype_name: str) -> None:
    if dtype_name not in INDEX_DTYPES:
        raise InputError(
            f"{name} must be int32 or int64, got {dtype_name}: narrower integers cannot hold every token id"
        )


def check_dtype_kind(name: str, kind: str, allowed: str, meaning: str) -> None:
    """`kind` is a numpy-style dtype kind: b (bool), i/u (integer), f (float)."""
    if kind not in allowed:
        raise InputError(f"{name} must hold {meaning}, got a tensor of kind {kind!r}")


def check_not_empty(name: str, shape: Sequence[int]) -> None:
    if any(d == 0 for d in shape):
        raise InputError(f"{name} is empty (shape {tuple(shape)}): a batch needs at least one token")


def check_shape(name: str, shape: Sequence[int], expected: Sequence[int], against: str) -> None:
    if tuple(shape) != tuple(expected):
        raise InputError(f"{name} has shape {tuple(shape)} but {against} needs {tuple(expected)}")


def check_range(name: str, low: int, high: int, limit: int, limit_name: str, allow_ignore: bool = False) -> None:
    """Values of `name` span [low, high]; they must lie in [0, limit) (or be -100 where allowed)."""
    if low < 0 or high >= limit:
        ignore = f" or {IGNORE_INDEX}" if allow_ignore else ""
        bad = low if low < 0 else high
        raise InputError(f"{name} must be in [0, {limit}){ignore} ({limit_name}={limit}), got {bad}")


def check_sequence_length(length: int, past_length: int, config: RemBertConfig) -> None:
    if past_length + length > config.max_position_embeddings:
        cached = f" after {past_length} cached positions" if past_length else ""
        raise InputError(
            f"sequence of {length} tokens{cached} is longer than max_position_embeddings="
            f"{config.max_position_embeddings}"
        )


def check_cross_attention(config: RemBertConfig, has_encoder_hidden_states: bool) -> None:
    if has_encoder_hidden_states and not config.add_cross_attention:
        raise InputError(
            "encoder_hidden_states were passed but the model has no cross-attention layers; build it with "
            "is_decoder=True and add_cross_attention=True"
        )


def check_cache(num_layers: int, config: RemBertConfig) -> None:
    if num_layers != config.num_hidden_layers:
        raise InputError(f"past_key_values holds {num_layers} layers, the model has {config.num_hidden_layers}")
    if not config.is_decoder:
        raise InputError("past_key_values only apply to a decoder (is_decoder=True)")


def sequence_classification_problem(config: RemBertConfig, labels_are_integers: bool) -> str:
    """The loss a sequence classifier uses, as Hugging Face decides it when config.problem_type is unset."""
    if config.problem_type is not None:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    return "single_label_classification" if labels_are_integers else "multi_label_classification"


def mask_value(dtype_name: str) -> float:
    """What masked attention scores are pushed to. float16 gets half its range so that score + mask stays
    finite (an all-masked row then still softmaxes to finite numbers)."""
    return {
        "float16": -32752.0,
        "bfloat16": -3.3895313892515355e38,
        "float32": -3.4028234663852886e38,
        "float64": -1.7976931348623157e308,
    }[dtype_name]


# -- the same words for checks that run where values are unknown ----------------------------------------
# Inside a compiled graph (tf.function) a shape or a value is only known when the graph runs, so the check is
# an assertion op: it carries these words, and the runtime appends the offending values after them.


def range_message(name: str, limit: int, limit_name: str, allow_ignore: bool = False) -> str:
    """check_range's message up to the offending value: `input_ids must be in [0, 99) (vocab_size=99), got`."""
    ignore = f" or {IGNORE_INDEX}" if allow_ignore else ""
    return f"{name} must be in [0, {limit}){ignore} ({limit_name}={limit}), got"


def unread_range_message(name: str, limit: int, limit_name: str, allow_ignore: bool = False) -> str:
    """check_range's message where the values cannot be read (a device-side or in-graph assertion): `input_ids must
    be in [0, 99) (vocab_size=99), got a value outside that range`."""
    return f"{range_message(name, limit, limit_name, allow_ignore)} a value outside that range"


def shape_message(name: str, against: str) -> tuple[str, str]:
    """check_shape's message in two parts, each followed by a shape: `x has shape` [..] `but y needs` [..]."""
    return f"{name} has shape", f"but {against} needs"


def empty_message(name: str) -> str:
    """check_not_empty's message, followed by the shape."""
    return f"{name} is empty: a batch needs at least one token; shape"


def sequence_length_message(config: RemBertConfig) -> str:
    """check_sequence_length's message, followed by the number of positions (cached + new)."""
    return f"sequence is longer than max_position_embeddings={config.max_position_embeddings}; positions"


def check_regression_labels(shape: Sequence[int], batch: int, num_labels: int) -> None:
    """Regression labels hold batch * num_labels values: (batch, num_labels), or (batch,) for a single value."""
    size = 1
    for d in shape:
        size *= d
    if size != batch * num_labels:
        raise InputError(
            f"labels has shape {tuple(shape)} but regression over {num_labels} value(s) needs "
            f"({batch}, {num_labels})" + (f" or ({batch},)" if num_labels == 1 else "")
        )


# -- the walk over a backbone's arguments, once for both frameworks -----------------------------------------


def known(size: Dim) -> bool:
    """Whether a size is known now (an int) rather than only when a graph runs."""
    return isinstance(size, int)


def shown(shape: Sequence[Dim]) -> tuple[int | None, ...]:
    """A shape as messages show it: unknown sizes as None."""
    return tuple(d if known(d) else None for d in shape)


class TensorFacts:
    """What the input walk needs from a framework: sizes, dtype kinds, value ranges, and how a check is made.

    A backend subclasses it once (`rembert_pt.validation.TorchFacts`, `rembert_tf.validation.GraphFacts`). The
    defaults suit sizes that are always known: they raise `InputError` at once. TensorFlow overrides them to turn
    what is only known in a running graph into assertion ops with the same words.
    """

    def dims(self, x: Any) -> tuple[Dim, ...]:
        """The sizes of `x`: ints where known."""
        raise NotImplementedError

    def kind(self, x: Any) -> str:
        """`x`'s dtype as a numpy-style kind: b (bool), i (integer), f (float), c (complex), O (other)."""
        raise NotImplementedError

    def dtype_name(self, x: Any) -> str:
        """`x`'s dtype as numpy names it: "int32", "float32"..."""
        raise NotImplementedError

    def check_tensor(self, name: str, x: Any) -> None:
        """`x` is a tensor of this framework (TensorFlow converts arrays and lists before the checks run)."""

    def check_id_range(self, name: str, ids: Any, limit: int, limit_name: str, allow_ignore: bool) -> None:
        """Integer `ids` lie in [0, limit) (or are -100 where `allow_ignore`); see `check_range`."""
        raise NotImplementedError

    def check_shape(self, name: str, shape: Sequence[Dim], expected: Sequence[Dim], against: str) -> None:
        check_shape(name, shape, expected, against)

    def check_not_empty(self, name: str, x: Any) -> None:
        check_not_empty(name, self.dims(x))

    def check_sequence_length(self, length: Dim, past_length: Dim, config: RemBertConfig) -> None:
        check_sequence_length(length, past_length, config)


@dataclass(frozen=True)
class InputShape:
    """The geometry of a checked batch: sizes as `TensorFacts.dims` gives them."""

    batch: Dim
    length: Dim
    past_length: Dim


def check_ids(facts: TensorFacts, name: str, ids: Any, limit: int, limit_name: str, allow_ignore: bool = False) -> None:
    """`ids` hold integers in [0, limit) (or -100 where `allow_ignore`)."""
    check_dtype_kind(name, facts.kind(ids), "i", "integer ids")
    facts.check_id_range(name, ids, limit, limit_name, allow_ignore)


def check_lookup_ids(facts: TensorFacts, name: str, ids: Any, limit: int, limit_name: str) -> None:
    """Ids that index an embedding table: int32 or int64, in [0, limit)."""
    check_dtype_kind(name, facts.kind(ids), "i", "integer ids")
    check_index_dtype(name, facts.dtype_name(ids))
    facts.check_id_range(name, ids, limit, limit_name, False)


def check_labels(
    facts: TensorFacts, name: str, labels: Any, expected: Sequence[Dim], limit: int, limit_name: str
) -> None:
    """Class labels: the `expected` shape (a trailing axis of 1 is accepted too), integers in [0, limit) or -100."""
    facts.check_tensor(name, labels)
    shape = facts.dims(labels)
    if len(shape) == len(expected) + 1 and _is(shape[-1], 1):
        shape = shape[:-1]
    facts.check_shape(name, shape, tuple(expected), "the logits")
    check_ids(facts, name, labels, limit, limit_name, allow_ignore=True)


def check_multiple_choice_inputs(facts: TensorFacts, input_ids: Any, inputs_embeds: Any) -> tuple[Dim, Dim]:
    """A multiple-choice head's main input is [batch, num_choices, length(, width)]; returns (batch, num_choices)."""
    check_main_input(input_ids is not None, inputs_embeds is not None)
    if input_ids is not None:
        facts.check_tensor("input_ids", input_ids)
        shape = facts.dims(input_ids)
        check_rank("input_ids", shown(shape), (3,), "[batch, num_choices, length]")
    else:
        facts.check_tensor("inputs_embeds", inputs_embeds)
        shape = facts.dims(inputs_embeds)
        check_rank("inputs_embeds", shown(shape), (4,), "[batch, num_choices, length, input_embedding_size]")
    return shape[0], shape[1]


def check_forward_inputs(
    config: RemBertConfig,
    facts: TensorFacts,
    input_ids: Any,
    attention_mask: Any,
    token_type_ids: Any,
    position_ids: Any,
    inputs_embeds: Any,
    encoder_hidden_states: Any,
    encoder_attention_mask: Any,
    past_key_values: Sequence[Sequence[Any]] | None,
) -> InputShape:
    """Raise an InputError naming the argument for anything the backbone cannot run; return the batch geometry.

    The arguments are those of `RemBertModel.forward` / `TFRemBertModel.call`, in their framework's tensors;
    `facts` answers for that framework.
    """
    check_main_input(input_ids is not None, inputs_embeds is not None)
    for name, value in (
        ("input_ids", input_ids),
        ("attention_mask", attention_mask),
        ("token_type_ids", token_type_ids),
        ("position_ids", position_ids),
        ("inputs_embeds", inputs_embeds),
        ("encoder_hidden_states", encoder_hidden_states),
        ("encoder_attention_mask", encoder_attention_mask),
    ):
        if value is not None:
            facts.check_tensor(name, value)
    if input_ids is not None:
        shape = facts.dims(input_ids)
        check_rank("input_ids", shown(shape), (2,), "[batch, length]")
        facts.check_not_empty("input_ids", input_ids)
        check_lookup_ids(facts, "input_ids", input_ids, config.vocab_size, "vocab_size")
        batch, length = shape
    else:
        shape = facts.dims(inputs_embeds)
        check_rank("inputs_embeds", shown(shape), (3,), "[batch, length, input_embedding_size]")
        facts.check_not_empty("inputs_embeds", inputs_embeds)
        check_dtype_kind("inputs_embeds", facts.kind(inputs_embeds), "f", "floating-point embeddings")
        batch, length, _ = shape
        facts.check_shape("inputs_embeds", shape, (batch, length, config.input_embedding_size), "input_embedding_size")
    past_length: Dim = 0
    if past_key_values is not None:
        check_cache(len(past_key_values), config)
        past_length = facts.dims(past_key_values[0][0])[2]
    facts.check_sequence_length(length, past_length, config)

    if token_type_ids is not None:
        facts.check_shape("token_type_ids", facts.dims(token_type_ids), (batch, length), "input_ids")
        check_lookup_ids(facts, "token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    if position_ids is not None:
        shape = facts.dims(position_ids)
        # One row of positions may serve the whole batch: [1, length].
        one_row = len(shape) == 2 and _is(shape[0], 1) and not _differ(shape[1], length)
        facts.check_shape("position_ids", shape, (1, length) if one_row else (batch, length), "input_ids")
        check_lookup_ids(facts, "position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")
    if attention_mask is not None:
        check_dtype_kind("attention_mask", facts.kind(attention_mask), "bif", "0/1 values")
        shape = facts.dims(attention_mask)
        full = past_length + length
        expected = (batch, length, full) if len(shape) == 3 else (batch, full)
        facts.check_shape("attention_mask", shape, expected, "input_ids")
    check_cross_attention(config, encoder_hidden_states is not None)
    if encoder_hidden_states is not None:
        shape = facts.dims(encoder_hidden_states)
        check_rank("encoder_hidden_states", shown(shape), (3,), "[batch, length, hidden_size]")
        facts.check_shape(
            "encoder_hidden_states", shape, (batch, shape[1], config.hidden_size), "the batch and hidden_size"
        )
        if encoder_attention_mask is not None:
            facts.check_shape(
                "encoder_attention_mask", facts.dims(encoder_attention_mask), shape[:2], "encoder_hidden_states"
            )
    return InputShape(batch, length, past_length)


def _is(size: Dim, value: int) -> bool:
    return known(size) and size == value


def _differ(a: Dim, b: Dim) -> bool:
    return known(a) and known(b) and a != b


def forward_flags(
    config: RemBertConfig,
    unpad: bool | None,
    output_attentions: bool | None,
    output_hidden_states: bool | None,
    use_cache: bool | None,
) -> tuple[bool, bool, bool, bool]:
    """The backbone's flags, each defaulting to its config field: (unpad, output_attentions, output_hidden_states,
    use_cache); a cache is only kept by a decoder."""
    return (
        config.unpad if unpad is None else unpad,
        config.output_attentions if output_attentions is None else output_attentions,
        config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        (config.use_cache if use_cache is None else use_cache) and config.is_decoder,
    )
