"""Rules for model inputs, written once for both backends: what is legal, and the words used when it is not.

Backends call these at the entry of `forward` / `call` with plain Python facts (shapes, dtype kinds, value
ranges); the checks never touch a tensor, so they cost nothing and read the same in PyTorch and TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import RemBertConfig

IGNORE_INDEX = -100


class InputError(ValueError):
    """An argument of forward / call is not legal for this model. The message names the argument."""

    # Keras re-raises errors from `call` with every argument's value folded into the message, unless the error
    # says it already carries that context; ours names the argument and the value, and reads the same as PyTorch's.
    _keras_call_info_injected = True


def check_main_input(has_input_ids: bool, has_inputs_embeds: bool) -> None:
    if has_input_ids and has_inputs_embeds:
        raise InputError("pass either input_ids or inputs_embeds, not both")
    if not has_input_ids and not has_inputs_embeds:
        raise InputError("pass input_ids or inputs_embeds")


def check_rank(name: str, shape: Sequence[int], ranks: Sequence[int], meaning: str) -> None:
    if len(shape) not in ranks:
        raise InputError(f"{name} must be {meaning}, got shape {tuple(shape)}")


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


def check_cache(past_length_per_layer: Sequence[int], config: RemBertConfig) -> None:
    if len(past_length_per_layer) != config.num_hidden_layers:
        raise InputError(
            f"past_key_values holds {len(past_length_per_layer)} layers, the model has {config.num_hidden_layers}"
        )
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
