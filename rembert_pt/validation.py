"""The entry checks of `forward`: PyTorch facts handed to the framework-neutral rules in rembert_spec.inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rembert_spec import RemBertConfig
from rembert_spec import inputs as rules


@dataclass(frozen=True)
class InputShape:
    batch: int
    length: int
    past_length: int


def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "b"
    return "f" if t.is_floating_point() else ("c" if t.is_complex() else "i")


def _check_ids(name: str, ids: torch.Tensor, limit: int, limit_name: str, allow_ignore: bool = False) -> None:
    rules.check_dtype_kind(name, _kind(ids), "i", "integer ids")
    values = ids[ids != rules.IGNORE_INDEX] if allow_ignore else ids
    if values.numel():
        low, high = torch.aminmax(values)
        rules.check_range(name, int(low), int(high), limit, limit_name, allow_ignore)


def check_labels(
    name: str, labels: torch.Tensor, shape: tuple[int, ...] | torch.Size, limit: int, limit_name: str
) -> None:
    """Class labels: the expected shape, integers in [0, limit) or -100."""
    expected = tuple(shape)
    if labels.dim() == len(expected) + 1 and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    rules.check_shape(name, tuple(labels.shape), expected, "the logits")
    _check_ids(name, labels, limit, limit_name, allow_ignore=True)


def check_forward_inputs(
    config: RemBertConfig,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    encoder_hidden_states: torch.Tensor | None,
    encoder_attention_mask: torch.Tensor | None,
    past_key_values: tuple | None,
) -> InputShape:
    """Raise an InputError naming the argument for anything the model cannot run; return the batch geometry."""
    rules.check_main_input(input_ids is not None, inputs_embeds is not None)
    if input_ids is not None:
        rules.check_rank("input_ids", tuple(input_ids.shape), (2,), "[batch, length]")
        rules.check_not_empty("input_ids", tuple(input_ids.shape))
        _check_ids("input_ids", input_ids, config.vocab_size, "vocab_size")
        batch, length = input_ids.shape
    else:
        rules.check_rank("inputs_embeds", tuple(inputs_embeds.shape), (3,), "[batch, length, input_embedding_size]")
        rules.check_not_empty("inputs_embeds", tuple(inputs_embeds.shape))
        rules.check_dtype_kind("inputs_embeds", _kind(inputs_embeds), "f", "floating-point embeddings")
        batch, length, width = inputs_embeds.shape
        if width != config.input_embedding_size:
            rules.check_shape(
                "inputs_embeds",
                tuple(inputs_embeds.shape),
                (batch, length, config.input_embedding_size),
                "input_embedding_size",
            )
    past_length = 0
    if past_key_values is not None:
        rules.check_cache([layer[0].shape[2] for layer in past_key_values], config)
        past_length = past_key_values[0][0].shape[2]
    rules.check_sequence_length(length, past_length, config)

    if token_type_ids is not None:
        rules.check_shape("token_type_ids", tuple(token_type_ids.shape), (batch, length), "input_ids")
        _check_ids("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    if position_ids is not None:
        if tuple(position_ids.shape) not in ((batch, length), (1, length)):
            rules.check_shape("position_ids", tuple(position_ids.shape), (batch, length), "input_ids")
        _check_ids("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")
    if attention_mask is not None:
        rules.check_dtype_kind("attention_mask", _kind(attention_mask), "bif", "0/1 values")
        full = past_length + length
        if attention_mask.dim() == 3:
            rules.check_shape("attention_mask", tuple(attention_mask.shape), (batch, length, full), "input_ids")
        else:
            rules.check_shape("attention_mask", tuple(attention_mask.shape), (batch, full), "input_ids")
    rules.check_cross_attention(config, encoder_hidden_states is not None)
    if encoder_hidden_states is not None:
        rules.check_rank(
            "encoder_hidden_states", tuple(encoder_hidden_states.shape), (3,), "[batch, length, hidden_size]"
        )
        if encoder_hidden_states.shape[0] != batch or encoder_hidden_states.shape[2] != config.hidden_size:
            rules.check_shape(
                "encoder_hidden_states",
                tuple(encoder_hidden_states.shape),
                (batch, encoder_hidden_states.shape[1], config.hidden_size),
                "the batch and hidden_size",
            )
        if encoder_attention_mask is not None:
            rules.check_shape(
                "encoder_attention_mask",
                tuple(encoder_attention_mask.shape),
                tuple(encoder_hidden_states.shape[:2]),
                "encoder_hidden_states",
            )
    return InputShape(int(batch), int(length), int(past_length))
