"""The entry checks of `call`: TensorFlow facts handed to the framework-neutral rules in rembert_spec.inputs.

What is known when the model is called (in eager mode, everything; while tracing a tf.function, the static
shapes) is checked in Python and raises `InputError`. What is only known when a graph runs (dynamic sizes,
the values of ids) becomes an assertion op carrying the same words, which raises `InvalidArgumentError`; the
checks return these ops so that the model can run its lookups after them (a CPU gather would otherwise fail
first with its own words, and a GPU gather would not fail at all). Under XLA assertions compile to nothing,
so they are left out there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

from rembert_spec import RemBertConfig
from rembert_spec import inputs as rules

Dim = int | tf.Tensor  # a size: a Python int where the static shape knows it, else a scalar tensor
Checks = list  # assertion ops to run before the values they check are used (empty in eager mode)


@dataclass(frozen=True)
class InputShape:
    batch: Dim
    length: Dim
    past_length: Dim
    checks: tuple = ()


def in_xla() -> bool:
    """True while tracing a function that XLA compiles (tf.function(jit_compile=True), Keras' jit_compile)."""
    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # private modules: if they move, assume no XLA (the checks then merely stay in)
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


def dims(x: tf.Tensor) -> tuple[Dim, ...]:
    """The shape of `x`: static sizes as ints, unknown ones as scalar tensors."""
    static = x.shape.as_list()
    if all(d is not None for d in static):
        return tuple(static)
    dynamic = tf.shape(x)
    return tuple(d if d is not None else dynamic[i] for i, d in enumerate(static))


def _known(values: Sequence[Dim]) -> bool:
    return all(isinstance(v, int) for v in values)


def _shown(values: Sequence[Dim]) -> tuple[int | None, ...]:
    return tuple(v if isinstance(v, int) else None for v in values)


def _assert(condition: tf.Tensor, data: list) -> Checks:
    if in_xla():
        return []
    return [tf.debugging.Assert(condition, data, summarize=8)]


def _kind(t: tf.Tensor) -> str:
    if t.dtype == tf.bool:
        return "b"
    if t.dtype.is_floating:
        return "f"
    if t.dtype.is_complex:
        return "c"
    return "i" if t.dtype.is_integer else "O"


def check_shape(name: str, shape: Sequence[Dim], expected: Sequence[Dim], against: str) -> Checks:
    shape, expected = tuple(shape), tuple(expected)
    if len(shape) != len(expected) or any(
        isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, expected, strict=True)
    ):
        rules.check_shape(name, _shown(shape), _shown(expected), against)
    if not (_known(shape) and _known(expected)) and shape:
        actual, needed = tf.stack(shape), tf.stack(expected)
        words = rules.shape_message(name, against)
        return _assert(tf.reduce_all(tf.equal(actual, needed)), [words[0], actual, words[1], needed])
    return []


def check_not_empty(name: str, x: tf.Tensor) -> Checks:
    shape = dims(x)
    if _known(shape):
        rules.check_not_empty(name, shape)
        return []
    return _assert(tf.size(x) > 0, [rules.empty_message(name), tf.shape(x)])


def _check_ids(name: str, ids: tf.Tensor, limit: int, limit_name: str, allow_ignore: bool = False) -> Checks:
    rules.check_dtype_kind(name, _kind(ids), "i", "integer ids")
    if tf.executing_eagerly():
        values = tf.boolean_mask(ids, ids != rules.IGNORE_INDEX) if allow_ignore else ids
        if tf.size(values):
            low, high = int(tf.reduce_min(values)), int(tf.reduce_max(values))
            rules.check_range(name, low, high, limit, limit_name, allow_ignore)
        return []
    if in_xla():
        return []
    values = tf.where(ids == rules.IGNORE_INDEX, tf.zeros_like(ids), ids) if allow_ignore else ids
    inside = tf.reduce_all(tf.logical_and(values >= 0, values < limit))
    low = tf.reduce_min(values)
    bad = tf.where(low < 0, low, tf.reduce_max(values))
    return _assert(inside, [rules.range_message(name, limit, limit_name, allow_ignore), bad])


def check_labels(name: str, labels: tf.Tensor, shape: Sequence[Dim], limit: int, limit_name: str) -> Checks:
    """Class labels: the expected shape, integers in [0, limit) or -100."""
    expected = tuple(shape)
    if labels.shape.rank == len(expected) + 1 and labels.shape[-1] == 1:
        labels = tf.squeeze(labels, -1)
    checks = check_shape(name, dims(labels), expected, "the logits")
    return checks + _check_ids(name, labels, limit, limit_name, allow_ignore=True)


def check_regression_labels(labels: tf.Tensor, batch: Dim, num_labels: int) -> Checks:
    size, needed = tf.size(labels), batch * num_labels
    if isinstance(needed, int) and _known(dims(labels)):
        rules.check_regression_labels(tuple(labels.shape), batch, num_labels)
        return []
    words = rules.shape_message("labels", f"regression over {num_labels} value(s)")
    return _assert(
        tf.equal(size, tf.cast(needed, size.dtype)), [words[0], tf.shape(labels), words[1], [batch, num_labels]]
    )


def _check_sequence_length(length: Dim, past_length: Dim, config: RemBertConfig) -> Checks:
    if isinstance(length, int) and isinstance(past_length, int):
        rules.check_sequence_length(length, past_length, config)
        return []
    total = past_length + length
    return _assert(total <= config.max_position_embeddings, [rules.sequence_length_message(config), total])


def check_forward_inputs(
    config: RemBertConfig,
    input_ids: tf.Tensor | None,
    attention_mask: tf.Tensor | None,
    token_type_ids: tf.Tensor | None,
    position_ids: tf.Tensor | None,
    inputs_embeds: tf.Tensor | None,
    encoder_hidden_states: tf.Tensor | None,
    encoder_attention_mask: tf.Tensor | None,
    past_key_values: tuple | None,
) -> InputShape:
    """Raise an InputError naming the argument for anything the model cannot run; return the batch geometry
    (and, in a graph, the assertions to run before the inputs are used)."""
    rules.check_main_input(input_ids is not None, inputs_embeds is not None)
    checks: Checks = []
    if input_ids is not None:
        rules.check_rank("input_ids", tuple(input_ids.shape), (2,), "[batch, length]")
        checks += check_not_empty("input_ids", input_ids)
        checks += _check_ids("input_ids", input_ids, config.vocab_size, "vocab_size")
        batch, length = dims(input_ids)
    else:
        rules.check_rank("inputs_embeds", tuple(inputs_embeds.shape), (3,), "[batch, length, input_embedding_size]")
        checks += check_not_empty("inputs_embeds", inputs_embeds)
        rules.check_dtype_kind("inputs_embeds", _kind(inputs_embeds), "f", "floating-point embeddings")
        batch, length, _ = dims(inputs_embeds)
        checks += check_shape(
            "inputs_embeds", dims(inputs_embeds), (batch, length, config.input_embedding_size), "input_embedding_size"
        )
    past_length: Dim = 0
    if past_key_values is not None:
        rules.check_cache([layer[0].shape[2] for layer in past_key_values], config)
        past_length = dims(past_key_values[0][0])[2]
    checks += _check_sequence_length(length, past_length, config)

    if token_type_ids is not None:
        checks += check_shape("token_type_ids", dims(token_type_ids), (batch, length), "input_ids")
        checks += _check_ids("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    if position_ids is not None:
        shape = dims(position_ids)
        if not (len(shape) == 2 and isinstance(shape[0], int) and shape[0] == 1):
            checks += check_shape("position_ids", shape, (batch, length), "input_ids")
        else:
            checks += check_shape("position_ids", shape, (1, length), "input_ids")
        checks += _check_ids("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")
    if attention_mask is not None:
        rules.check_dtype_kind("attention_mask", _kind(attention_mask), "bif", "0/1 values")
        full = past_length + length
        if attention_mask.shape.rank == 3:
            checks += check_shape("attention_mask", dims(attention_mask), (batch, length, full), "input_ids")
        else:
            checks += check_shape("attention_mask", dims(attention_mask), (batch, full), "input_ids")
    rules.check_cross_attention(config, encoder_hidden_states is not None)
    if encoder_hidden_states is not None:
        rules.check_rank(
            "encoder_hidden_states", tuple(encoder_hidden_states.shape), (3,), "[batch, length, hidden_size]"
        )
        encoder_shape = dims(encoder_hidden_states)
        checks += check_shape(
            "encoder_hidden_states",
            encoder_shape,
            (batch, encoder_shape[1], config.hidden_size),
            "the batch and hidden_size",
        )
        if encoder_attention_mask is not None:
            checks += check_shape(
                "encoder_attention_mask", dims(encoder_attention_mask), encoder_shape[:2], "encoder_hidden_states"
            )
    return InputShape(batch, length, past_length, tuple(checks))
