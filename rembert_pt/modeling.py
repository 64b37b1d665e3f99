"""RemBERT in PyTorch: the backbone, its heads, read top to bottom.

`rembert_tf/modeling.py` holds the same classes in the same order with the same argument names; what both
need to agree on (weight names, input rules, loss choices, output fields) comes from `rembert_spec`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from rembert_spec import RemBertConfig
from rembert_spec import inputs as rules
from rembert_spec.outputs import (
    OUTPUT_FOR_HEAD,
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    EncoderRecord,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from rembert_spec.outputs import returned as record_or_tuple

from . import internals
from .generation import GenerationMixin
from .layers import Embedding, LayerNorm, Linear
from .pretrained import RemBertPreTrainedModel
from .validation import FACTS, capturing, check_labels, reads_host

LayerCache = tuple[torch.Tensor, ...]  # (self key, self value[, cross key, cross value]), [batch, heads, len, size]

internals.register_output_records(OUTPUT_FOR_HEAD.values())  # torch.export returns them as eager does


def returned(outputs: ModelOutput, return_dict: bool | None, return_dict_default: bool) -> ModelOutput | tuple:
    """The record, or with `return_dict=False` its tuple (rembert_spec.outputs.returned). Under torch.jit.trace the
    tuple unless `return_dict=True` is passed (as Hugging Face's `torchscript=True`): a traced module may only
    return plain containers."""
    if return_dict is None and torch.jit.is_tracing():
        return_dict = False
    return record_or_tuple(outputs, return_dict, return_dict_default)


def activation(hidden_act: str | Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(hidden_act):
        return hidden_act
    return {
        "gelu": F.gelu,
        "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
        "relu": F.relu,
        "selu": F.selu,
    }[hidden_act]


# -- backbone ---------------------------------------------------------------------------------------------


class Packing:
    """Where the real tokens of a padded [batch, length] batch are, to run per-token work on them only.

    Projections and feed-forward take [n_real, hidden]; attention scatters its queries, keys and values back
    to [batch, length, ...] (zeros at padding, which the mask hides) and gathers the result again. Gathering
    reads strided views directly, so no padded intermediate is copied.
    """

    def __init__(self, attention_mask: torch.Tensor):
        self.batch, self.length = attention_mask.shape
        self.real = attention_mask.bool()
        self.rows, self.positions = self.real.nonzero(as_tuple=True)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, length, ...] (any strides) -> [n_real, ...]"""
        return x[self.rows, self.positions]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """[n_real, ...] -> [batch, length, ...] with zeros at padding."""
        full = x.new_zeros(self.batch, self.length, *x.shape[1:])
        return full.index_put_((self.rows, self.positions), x)


class RemBertEmbeddings(nn.Module):
    """Token + position + token-type embeddings of width input_embedding_size, layer-normed."""

    def __init__(self, config: RemBertConfig):
        super().__init__()
        width = config.input_embedding_size
        self.word_embeddings = Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position_embeddings = Embedding(config.max_position_embeddings, width)
        self.token_type_embeddings = Embedding(config.type_vocab_size, width)
        self.LayerNorm = LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class RemBertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention; keys and values come from `key_value_states` for cross-attention."""

    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.query = Linear(config.hidden_size, config.hidden_size)
        self.key = Linear(config.hidden_size, config.hidden_size)
        self.value = Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        key_value_states: torch.Tensor | None = None,
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        output_attentions: bool = False,
        packing: Packing | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        def heads(x: torch.Tensor) -> torch.Tensor:
            return self._split_heads(packing.pad(x) if packing is not None else x)

        query = heads(self.query(hidden_states))
        if key_value_states is not None and past_key_value is not None:
            key, value = past_key_value  # cross-attention keys never change while decoding
        elif key_value_states is not None:
            key, value = self._split_heads(self.key(key_value_states)), self._split_heads(self.value(key_value_states))
        else:
            key, value = heads(self.key(hidden_states)), heads(self.value(hidden_states))
            if past_key_value is not None:
                key = torch.cat([past_key_value[0], key], dim=2)
                value = torch.cat([past_key_value[1], value], dim=2)
        dropout = self.dropout_prob if self.training else 0.0
        if output_attentions:
            scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
            if attention_mask is not None:
                scores = scores + attention_mask
            probs = F.softmax(scores, dim=-1)
            if packing is not None:
                probs = probs * packing.real[:, None, :, None]  # padding rows attend nowhere
            context = torch.matmul(F.dropout(probs, dropout, self.training), value)
        else:
            probs = None
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout)
        context = context.transpose(1, 2)  # [batch, length, heads, head_size]
        if packing is not None:
            context = packing.pack(context)
        return context.reshape(*context.shape[:-2], self.num_heads * self.head_size), probs, (key, value)


class RemBertSelfOutput(nn.Module):
    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class RemBertAttention(nn.Module):
    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.self = RemBertSelfAttention(config)
        self.output = RemBertSelfOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        key_value_states: torch.Tensor | None = None,
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        output_attentions: bool = False,
        packing: Packing | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        context, probs, present = self.self(
            hidden_states, attention_mask, key_value_states, past_key_value, output_attentions, packing
        )
        return self.output(context, hidden_states), probs, present


class RemBertIntermediate(nn.Module):
    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation(config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class RemBertOutput(nn.Module):
    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.dense = Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.add_and_norm(self.dense(hidden_states), residual)

    def add_and_norm(self, projected: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(projected) + residual)


class RecomputedFeedForward(torch.autograd.Function):
    """dense_out(activation(dense_in(x))) that keeps only x for backward.

    The two [tokens, intermediate_size] activations are the largest tensors a layer keeps for backward (about half
    of its activation memory); backward recomputes them with one matmul instead. Gradients are those of the
    plain composition.
    """

    @staticmethod
    def forward(ctx, x, w_in, b_in, w_out, b_out, act):
        ctx.act = act
        device = x.device.type
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        ctx.save_for_backward(x, w_in, b_in, w_out)
        return F.linear(act(F.linear(x, w_in, b_in)), w_out, b_out)

    @staticmethod
    def backward(ctx, grad):
        device, dtype, enabled = ctx.autocast
        with torch.autocast(device, dtype, enabled=enabled):  # the precision forward ran in
            return RecomputedFeedForward._backward(ctx, grad)

    @staticmethod
    def _backward(ctx, grad):
        x, w_in, b_in, w_out = ctx.saved_tensors
        with torch.enable_grad():
            before = F.linear(x, w_in, b_in).detach().requires_grad_()
            after = ctx.act(before)
        rows = grad.reshape(-1, grad.shape[-1])
        needs = ctx.needs_input_grad
        grad_w_out = rows.T @ after.detach().reshape(-1, after.shape[-1]) if needs[3] else None
        grad_b_out = rows.sum(0) if needs[4] else None
        (grad_before,) = torch.autograd.grad(after, before, grad @ w_out)
        before_rows = grad_before.reshape(-1, grad_before.shape[-1])
        grad_x = grad_before @ w_in if needs[0] else None
        grad_w_in = before_rows.T @ x.reshape(-1, x.shape[-1]) if needs[1] else None
        grad_b_in = before_rows.sum(0) if needs[2] else None
        return grad_x, grad_w_in, grad_b_in, grad_w_out, grad_b_out, None


class RemBertLayer(nn.Module):
    """Self-attention, cross-attention (decoders built with add_cross_attention), feed-forward; post-LN."""

    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.attention = RemBertAttention(config)
        if config.add_cross_attention:
            self.crossattention = RemBertAttention(config)
        self.intermediate = RemBertIntermediate(config)
        self.output = RemBertOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_value: LayerCache | None = None,
        output_attentions: bool = False,
        packing: Packing | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, LayerCache]:
        self_past = past_key_value[:2] if past_key_value is not None else None
        hidden_states, self_probs, present = self.attention(
            hidden_states, attention_mask, None, self_past, output_attentions, packing
        )
        cross_probs = None
        if encoder_hidden_states is not None:
            cross_past = past_key_value[2:] if past_key_value is not None and len(past_key_value) == 4 else None
            hidden_states, cross_probs, cross_present = self.crossattention(
                hidden_states, encoder_attention_mask, encoder_hidden_states, cross_past, output_attentions, packing
            )
            present = present + cross_present
        layer_output = self.output.add_and_norm(self.feed_forward(hidden_states), hidden_states)
        return layer_output, self_probs, cross_probs, present

    def feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """output.dense(activation(intermediate.dense(x))); when gradients are recorded, without keeping the
        intermediate activations (see RecomputedFeedForward)."""
        dense_in, dense_out = self.intermediate.dense, self.output.dense
        # Not while a graph is captured (torch.jit.trace cannot save a Python autograd function; under
        # torch.compile, AOTAutograd's partitioner chooses what to recompute) nor for quantized layers.
        if torch.is_grad_enabled() and not capturing() and isinstance(dense_in, nn.Linear):
            act = self.intermediate.intermediate_act_fn
            return RecomputedFeedForward.apply(
                hidden_states, dense_in.weight, dense_in.bias, dense_out.weight, dense_out.bias, act
            )
        return dense_out(self.intermediate(hidden_states))


class RemBertEncoder(nn.Module):
    """Projects the embeddings up to hidden_size, then runs the layers."""

    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.embedding_hidden_mapping_in = Linear(config.input_embedding_size, config.hidden_size)
        self.layer = nn.ModuleList(RemBertLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False
        self.checkpoint_kwargs: dict = {"use_reentrant": False}  # for torch.utils.checkpoint.checkpoint

    def forward(
        self,
        embeddings: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: tuple[LayerCache, ...] | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        packing: Packing | None = None,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """With `packing`, hidden states travel as [n_real, hidden] and come back padded with zeros."""
        if packing is not None:
            embeddings = packing.pack(embeddings)
        record = EncoderRecord(
            output_hidden_states, output_attentions, encoder_hidden_states is not None, use_cache, packing
        )
        hidden_states = record.start(self.embedding_hidden_mapping_in(embeddings))
        for i, layer in enumerate(self.layer):
            past = past_key_values[i] if past_key_values is not None else None
            args = (
                hidden_states,
                attention_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                past,
                output_attentions,
                packing,
            )
            if self.gradient_checkpointing and self.training:
                hidden_states, probs, cross_probs, present = checkpoint(layer, *args, **self.checkpoint_kwargs)
            else:
                hidden_states, probs, cross_probs, present = layer(*args)
            hidden_states = record.add(hidden_states, probs, cross_probs, present)
        return record.output(hidden_states)


class RemBertPooler(nn.Module):
    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """1 = attend, 0 = masked  ->  0 / a large negative number added to attention scores."""
    return (1.0 - mask.to(dtype)) * rules.mask_value(str(dtype).removeprefix("torch."))


def self_attention_mask(
    attention_mask: torch.Tensor, length: int, past_length: int, causal: bool, dtype: torch.dtype
) -> torch.Tensor:
    """[batch, 1, length or 1, past_length + length] additive mask; decoders also hide later positions."""
    if attention_mask.dim() == 3:
        return _additive_mask(attention_mask[:, None, :, :], dtype)
    mask = attention_mask[:, None, None, :]
    if causal:
        positions = torch.arange(past_length + length, device=attention_mask.device)
        visible = positions[None, :] <= positions[past_length:, None]
        mask = mask * visible[None, None].to(mask.dtype)
    return _additive_mask(mask, dtype)


class RemBertModel(RemBertPreTrainedModel):
    """The RemBERT backbone: embeddings, projection to hidden_size, post-LN transformer layers, optional pooler.

    >>> import torch
    >>> from rembert_spec import RemBertConfig
    >>> config = RemBertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=32)
    >>> RemBertModel(config)(torch.tensor([[5, 6, 7]])).last_hidden_state.shape
    torch.Size([1, 3, 16])
    """

    head = "base"

    def __init__(self, config: RemBertConfig, add_pooling_layer: bool = True, *, _backbone_of_head: bool = False):
        super().__init__(config, _backbone_of_head=_backbone_of_head)
        self.embeddings = RemBertEmbeddings(config)
        self.encoder = RemBertEncoder(config)
        self.pooler = RemBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: tuple[LayerCache, ...] | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        unpad: bool | None = None,
        *,
        _read_positions: torch.Tensor | None = None,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions | tuple:
        """`unpad` (default config.unpad) skips the work of padding positions; their hidden states are zeros.
        Padding positions whose outputs are read are computed as Hugging Face computes them: the pooled first
        position, and `_read_positions` (a head's labelled positions, [batch, length] bool)."""
        config = self.config
        unpad, output_attentions, output_hidden_states, use_cache = rules.forward_flags(
            config, unpad, output_attentions, output_hidden_states, use_cache
        )
        shape = rules.check_forward_inputs(
            config,
            FACTS,
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            past_key_values,
        )
        batch, length = shape.batch, shape.length
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        dtype = self.embeddings.word_embeddings.weight.dtype
        past_length = shape.past_length

        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + length, device=device)[None, :]
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, length), dtype=torch.long, device=device)
        mask = None
        if attention_mask is not None or config.is_decoder:
            if attention_mask is None:
                attention_mask = torch.ones((batch, past_length + length), device=device)
            mask = self_attention_mask(attention_mask, length, past_length, config.is_decoder, dtype)
        encoder_mask = None
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            encoder_mask = _additive_mask(encoder_attention_mask[:, None, None, :], dtype)

        packing = None
        if unpad and attention_mask is not None and attention_mask.dim() == 2:
            # The positions computed now: all of them, or those after the cache. Their padding is skipped (zeros
            # out, as in the full forward; the cache then holds zeros there, which the mask hides later), except
            # where an output is read.
            computed = (attention_mask[:, past_length:] if past_length else attention_mask).bool()
            if _read_positions is not None:
                computed = computed | _read_positions
            if self.pooler is not None and past_length == 0:
                # (A comparison rather than slicing and concatenating: a captured graph takes any length.)
                computed = computed | (torch.arange(length, device=device) == 0)
            # Asking whether anything is skipped at all reads the mask on the host: only on CPU, eagerly. A captured
            # graph (compile, export, ONNX) or an accelerator always packs (the same numbers without padding).
            if not reads_host(computed) or not bool(computed.all()):
                packing = Packing(computed)

        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        outputs = self.encoder(
            embeddings,
            mask,
            encoder_hidden_states,
            encoder_mask,
            past_key_values,
            use_cache,
            output_attentions,
            output_hidden_states,
            packing,
        )
        if self.pooler is not None:
            outputs.pooler_output = self.pooler(outputs.last_hidden_state)
        return returned(outputs, return_dict, config.return_dict)


# -- heads ------------------------------------------------------------------------------------------------


class RemBertLMPredictionHead(nn.Module):
    """hidden -> output_embedding_size (activation, LayerNorm) -> vocabulary. Not tied to the input embeddings."""

    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.output_embedding_size)
        self.decoder = Linear(config.output_embedding_size, config.vocab_size)
        self.activation = activation(config.hidden_act)
        self.LayerNorm = LayerNorm(config.output_embedding_size, eps=config.layer_norm_eps)

    def features(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """What the decoder scores: LayerNorm(activation(dense(hidden))), [..., output_embedding_size]."""
        return self.LayerNorm(self.activation(self.dense(hidden_states)))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(hidden_states))


class RemBertOnlyMLMHead(nn.Module):
    def __init__(self, config: RemBertConfig):
        super().__init__()
        self.predictions = RemBertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


def _labelled(labels: torch.Tensor | None, attention_mask: torch.Tensor | None, shift: bool) -> torch.Tensor | None:
    """The positions whose outputs a token-level loss reads ([batch, length] bool; with `shift`, position t is read
    for label t+1), for the backbone to compute even where attention_mask marks padding, as Hugging Face does.
    None when there is nothing to add (labels of another shape are refused later, by the label check)."""
    if labels is None or attention_mask is None or not isinstance(labels, torch.Tensor):
        return None
    if labels.shape != attention_mask.shape[-labels.dim() :] or labels.dim() != 2:
        return None
    counted = labels != rules.IGNORE_INDEX
    if shift:
        counted = torch.cat([counted[:, 1:], torch.zeros_like(counted[:, :1])], dim=1)
    return counted


def _lm_loss_and_logits(
    head: RemBertOnlyMLMHead,
    hidden_states: torch.Tensor,
    labels: torch.Tensor,
    shift: bool,
    sparse_prediction: bool,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over the positions whose label is not -100, and the logits.

    With `shift` (causal LM), position t predicts label t+1. The logits are [batch, length, vocab], as Hugging
    Face returns them; with `sparse_prediction` (config.sparse_prediction) the vocabulary-wide head runs only at
    the counted positions and the logits are theirs, [n_counted, vocab]: the same loss for a fraction of the
    memory. With `num_items_in_batch` the loss is the sum divided by it instead of the mean.
    """
    labels = labels.long()
    if shift:
        labels = labels[:, 1:]
    reduction = "mean" if num_items_in_batch is None else "sum"
    if not sparse_prediction:
        logits = head(hidden_states)
        predicting = (logits[:, :-1] if shift else logits).flatten(0, -2).float()
        loss = F.cross_entropy(predicting, labels.flatten(), ignore_index=rules.IGNORE_INDEX, reduction=reduction)
    else:
        counted = labels != rules.IGNORE_INDEX
        logits = head((hidden_states[:, :-1] if shift else hidden_states)[counted])
        loss = F.cross_entropy(logits.float(), labels[counted], reduction=reduction)
    return (loss, logits) if num_items_in_batch is None else (loss / num_items_in_batch, logits)


class RemBertForMaskedLM(RemBertPreTrainedModel):
    """RemBERT with its pretraining head: masked-token prediction over the vocabulary.

    With `labels`, the loss is cross-entropy over positions whose label is not -100; `logits` is
    [batch, length, vocab_size] as in Hugging Face. With `config.sparse_prediction` (an opt-in for training), the
    vocabulary head runs only at labelled positions and `logits` is [n_labelled, vocab_size] (the rows of the full
    logits where labels != -100): the same loss, without a [batch, length, 250300] tensor.
    """

    head = "masked_lm"

    def __init__(self, config: RemBertConfig):
        super().__init__(config)
        self.rembert = RemBertModel(config, add_pooling_layer=False, _backbone_of_head=True)
        self.cls = RemBertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        outputs = self.rembert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            use_cache=False,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            _read_positions=_labelled(labels, attention_mask, shift=False),
        )
        sequence_output = outputs.last_hidden_state
        loss = None
        if labels is None:
            logits = self.cls(sequence_output)
        else:
            check_labels("labels", labels, sequence_output.shape[:2], self.config.vocab_size, "vocab_size")
            loss, logits = _lm_loss_and_logits(self.cls, sequence_output, labels, False, self.config.sparse_prediction)
        out = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


class RemBertForCausalLM(GenerationMixin, RemBertPreTrainedModel):
    """RemBERT as a left-to-right language model (build the config with is_decoder=True).

    The loss predicts token t+1 from positions <= t (labels are shifted inside), ignoring -100; `logits` is
    [batch, length, vocab_size], or with `config.sparse_prediction` (as in RemBertForMaskedLM) only the counted
    positions' rows, [n_counted, vocab_size]. Given `num_items_in_batch` (Hugging Face's Trainer passes it), the
    loss is the sum over counted positions divided by it, as in Hugging Face. Without labels, `logits_to_keep=k`
    keeps only the last k positions' logits (0 keeps all), which is what decoding needs.
    """

    head = "causal_lm"
    # Hugging Face's Trainer passes num_items_in_batch (the labels counted over all accumulated micro-batches).
    accepts_loss_kwargs = True

    def __init__(self, config: RemBertConfig):
        super().__init__(config)
        self.rembert = RemBertModel(config, add_pooling_layer=False, _backbone_of_head=True)
        self.cls = RemBertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: tuple[LayerCache, ...] | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> CausalLMOutputWithCrossAttentions | tuple:
        outputs = self.rembert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            _read_positions=_labelled(labels, attention_mask, shift=True),
        )
        sequence_output = outputs.last_hidden_state
        loss = None
        if labels is None:
            logits = self.cls(sequence_output[:, -logits_to_keep:] if logits_to_keep else sequence_output)
        else:
            check_labels("labels", labels, sequence_output.shape[:2], self.config.vocab_size, "vocab_size")
            loss, logits = _lm_loss_and_logits(
                self.cls, sequence_output, labels, True, self.config.sparse_prediction, num_items_in_batch
            )
        out = CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )
        return returned(out, return_dict, self.config.return_dict)


class RemBertForSequenceClassification(RemBertPreTrainedModel):
    """A linear classifier on the pooled [CLS] output. The loss follows config.problem_type: regression (MSE),
    single-label (cross-entropy) or multi-label (binary cross-entropy with logits); when unset it is inferred
    from num_labels and the labels' dtype."""

    head = "sequence_classification"

    def __init__(self, config: RemBertConfig):
        super().__init__(config)
        self.rembert = RemBertModel(config, _backbone_of_head=True)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        outputs = self.rembert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels)
        out = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


def sequence_classification_loss(config: RemBertConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    FACTS.check_tensor("labels", labels)
    integer_labels = not labels.is_floating_point()
    problem = rules.sequence_classification_problem(config, integer_labels)
    batch = logits.shape[0]
    if problem == "regression":
        rules.check_regression_labels(tuple(labels.shape), batch, config.num_labels)
        return F.mse_loss(
            logits.float().reshape(labels.shape) if config.num_labels == 1 else logits.float(), labels.float()
        )
    if problem == "single_label_classification":
        check_labels("labels", labels, (batch,), config.num_labels, "num_labels")
        return F.cross_entropy(logits.float(), labels.reshape(-1).long())
    rules.check_shape("labels", tuple(labels.shape), (batch, config.num_labels), "multi-label classification")
    return F.binary_cross_entropy_with_logits(logits.float(), labels.to(torch.float32))


class RemBertForMultipleChoice(RemBertPreTrainedModel):
    """Scores each of num_choices candidates ([batch, num_choices, length] inputs) with one logit each."""

    head = "multiple_choice"

    def __init__(self, config: RemBertConfig):
        super().__init__(config)
        self.rembert = RemBertModel(config, _backbone_of_head=True)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MultipleChoiceModelOutput | tuple:
        batch, choices = rules.check_multiple_choice_inputs(FACTS, input_ids, inputs_embeds)

        def flat(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.reshape(-1, *x.shape[2:])

        outputs = self.rembert(
            flat(input_ids),
            flat(attention_mask),
            flat(token_type_ids),
            flat(position_ids),
            flat(inputs_embeds),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(batch, choices)
        loss = None
        if labels is not None:
            check_labels("labels", labels, (batch,), choices, "num_choices")
            loss = F.cross_entropy(logits.float(), labels.reshape(-1).long())
        out = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


class RemBertForTokenClassification(RemBertPreTrainedModel):
    """A linear classifier on every token; labels of -100 are ignored by the loss."""

    head = "token_classification"

    def __init__(self, config: RemBertConfig):
        super().__init__(config)
        self.rembert = RemBertModel(config, add_pooling_layer=False, _backbone_of_head=True)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput | tuple:
        outputs = self.rembert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            _read_positions=_labelled(labels, attention_mask, shift=False),
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            check_labels("labels", labels, logits.shape[:2], self.config.num_labels, "num_labels")
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten().long(), ignore_index=rules.IGNORE_INDEX
            )
        out = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


class RemBertForQuestionAnswering(RemBertPreTrainedModel):
    """Start and end logits for extractive QA. The loss averages start and end cross-entropy; positions
    outside the sequence are clamped to its length and ignored. As in Hugging Face, the loss softmaxes over every
    position, padding included, so a forward with start/end positions computes the padding positions too."""

    head = "question_answering"

    def __init__(self, config: RemBertConfig):
        if config.num_labels != 2:
            raise ValueError(f"RemBertForQuestionAnswering needs num_labels=2 (start, end), got {config.num_labels}")
        super().__init__(config)
        self.rembert = RemBertModel(config, add_pooling_layer=False, _backbone_of_head=True)
        self.qa_outputs = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        with_loss = start_positions is not None and end_positions is not None
        outputs = self.rembert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            # The loss softmaxes over every position, padding included, so padding must be computed.
            unpad=False if with_loss else None,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = logits[..., 0].contiguous(), logits[..., 1].contiguous()
        loss = None
        if with_loss:
            batch, length = start_logits.shape
            positions = []
            for name, value in (("start_positions", start_positions), ("end_positions", end_positions)):
                FACTS.check_tensor(name, value)
                value = value.reshape(-1)
                rules.check_shape(name, tuple(value.shape), (batch,), "the batch")
                positions.append(value.clamp(0, length).long())
            loss = (
                F.cross_entropy(start_logits.float(), positions[0], ignore_index=length)
                + F.cross_entropy(end_logits.float(), positions[1], ignore_index=length)
            ) / 2
        out = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return returned(out, return_dict, self.config.return_dict)
