"""TensorFlow's answers to the framework-neutral input rules of rembert_spec.inputs (`TensorFacts`).

What is known when the model is called (in eager mode, everything; while tracing a tf.function, the static
shapes) is checked in Python and raises `InputError`. What is only known when a graph runs (dynamic sizes,
the values of ids) becomes an assertion op carrying the same words, which raises `InvalidArgumentError`; the
checks collect these ops so that the model can run its lookups after them (a CPU gather would otherwise fail
first with its own words, and a GPU gather would not fail at all). Under XLA assertions compile to nothing,
so they are left out there.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from rembert_spec import RemBertConfig
from rembert_spec import inputs as rules

from .internals import in_xla

Dim = int | tf.Tensor  # a size: a Python int where the static shape knows it, else a scalar tensor
Checks = list  # assertion ops to run before the values they check are used (empty in eager mode)


def dims(x: tf.Tensor) -> tuple[Dim, ...]:
    """The shape of `x`: static sizes as ints, unknown ones as scalar tensors."""
    static = x.shape.as_list()
    if all(d is not None for d in static):
        return tuple(static)
    dynamic = tf.shape(x)
    return tuple(d if d is not None else dynamic[i] for i, d in enumerate(static))


def tensor_kind(t: tf.Tensor) -> str:
    """A tensor's dtype as a numpy-style kind: b, i, f, c or O."""
    if t.dtype == tf.bool:
        return "b"
    if t.dtype.is_floating:
        return "f"
    if t.dtype.is_complex:
        return "c"
    return "i" if t.dtype.is_integer else "O"


def _known(values: Sequence[Dim]) -> bool:
    return all(rules.known(v) for v in values)


class GraphFacts(rules.TensorFacts):
    """Static sizes where known; what only a running graph knows becomes an assertion op, collected in `checks`.
    One object per call: the model runs its lookups under `tf.control_dependencies(facts.checks)`."""

    def __init__(self) -> None:
        self.checks: Checks = []

    def require(self, condition: tf.Tensor, data: list) -> None:
        """An assertion op that `condition` holds when the graph runs; `data` is its message (left out under XLA)."""
        if not in_xla():
            self.checks.append(tf.debugging.Assert(condition, data, summarize=8))

    def dims(self, x: tf.Tensor) -> tuple[Dim, ...]:
        return dims(x)

    def kind(self, x: tf.Tensor) -> str:
        return tensor_kind(x)

    def dtype_name(self, x: tf.Tensor) -> str:
        return x.dtype.name

    def check_shape(self, name: str, shape: Sequence[Dim], expected: Sequence[Dim], against: str) -> None:
        shape, expected = tuple(shape), tuple(expected)
        if len(shape) != len(expected) or any(
            rules.known(a) and rules.known(b) and a != b for a, b in zip(shape, expected, strict=True)
        ):
            rules.check_shape(name, rules.shown(shape), rules.shown(expected), against)
        if not (_known(shape) and _known(expected)) and shape:
            actual, needed = tf.stack(shape), tf.stack(expected)
            words = rules.shape_message(name, against)
            self.require(tf.reduce_all(tf.equal(actual, needed)), [words[0], actual, words[1], needed])

    def check_not_empty(self, name: str, x: tf.Tensor) -> None:
        shape = dims(x)
        if _known(shape):
            rules.check_not_empty(name, shape)
        else:
            self.require(tf.size(x) > 0, [rules.empty_message(name), tf.shape(x)])

    def check_id_range(self, name: str, ids: tf.Tensor, limit: int, limit_name: str, allow_ignore: bool) -> None:
        if tf.executing_eagerly():
            values = tf.boolean_mask(ids, ids != rules.IGNORE_INDEX) if allow_ignore else ids
            if tf.size(values):
                low, high = int(tf.reduce_min(values)), int(tf.reduce_max(values))
                rules.check_range(name, low, high, limit, limit_name, allow_ignore)
            return
        if in_xla():
            return
        values = tf.where(ids == rules.IGNORE_INDEX, tf.zeros_like(ids), ids) if allow_ignore else ids
        inside = tf.reduce_all(tf.logical_and(values >= 0, values < limit))
        low = tf.reduce_min(values)
        bad = tf.where(low < 0, low, tf.reduce_max(values))
        self.require(inside, [rules.range_message(name, limit, limit_name, allow_ignore), bad])

    def check_sequence_length(self, length: Dim, past_length: Dim, config: RemBertConfig) -> None:
        if rules.known(length) and rules.known(past_length):
            rules.check_sequence_length(length, past_length, config)
            return
        total = past_length + length
        self.require(total <= config.max_position_embeddings, [rules.sequence_length_message(config), total])


def check_shape(name: str, shape: Sequence[Dim], expected: Sequence[Dim], against: str) -> Checks:
    facts = GraphFacts()
    facts.check_shape(name, shape, expected, against)
    return facts.checks


def check_labels(name: str, labels: tf.Tensor, shape: Sequence[Dim], limit: int, limit_name: str) -> Checks:
    """Class labels: the expected shape, integers in [0, limit) or -100."""
    facts = GraphFacts()
    rules.check_labels(facts, name, labels, tuple(shape), limit, limit_name)
    return facts.checks


def check_regression_labels(labels: tf.Tensor, batch: Dim, num_labels: int) -> Checks:
    size, needed = tf.size(labels), batch * num_labels
    if isinstance(needed, int) and _known(dims(labels)):
        rules.check_regression_labels(tuple(labels.shape), batch, num_labels)
        return []
    facts = GraphFacts()
    words = rules.shape_message("labels", f"regression over {num_labels} value(s)")
    facts.require(
        tf.equal(size, tf.cast(needed, size.dtype)), [words[0], tf.shape(labels), words[1], [batch, num_labels]]
    )
    return facts.checks
