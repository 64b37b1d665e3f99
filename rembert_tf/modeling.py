"""RemBERT in TensorFlow / Keras 3: the backbone, its heads, read top to bottom.

`rembert_pt/modeling.py` holds the same classes in the same order with the same argument names; what both
need to agree on (weight names, input rules, loss choices, output fields) comes from `rembert_spec`. Each
layer keeps its variables under PyTorch's attribute names, so a variable's dotted path is its state-dict key.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

from rembert_spec import RemBertConfig
from rembert_spec import inputs as rules
from rembert_spec.outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    EncoderRecord,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
    returned,
)

from .call_inputs import unpack_inputs
from .generation import TFGenerationMixin
from .internals import in_xla
from .keras_model import serializable
from .layers import Dense, Dropout, Embedding, Layer, LayerNorm
from .pretrained import TFRemBertPreTrainedModel, sublayer
from .validation import GraphFacts, check_labels, check_regression_labels, check_shape, dims

LayerCache = tuple[tf.Tensor, ...]  # (self key, self value[, cross key, cross value]), [batch, heads, len, size]


def activation(hidden_act: str | Callable) -> Callable[[tf.Tensor], tf.Tensor]:
    if callable(hidden_act):
        return hidden_act
    return {
        "gelu": lambda x: tf.nn.gelu(x, approximate=False),
        "gelu_new": lambda x: tf.nn.gelu(x, approximate=True),
        "relu": tf.nn.relu,
        "selu": tf.nn.selu,
    }[hidden_act]


# -- backbone ---------------------------------------------------------------------------------------------


class Packing:
    """Where the real tokens of a padded [batch, length] batch are, to run per-token work on them only.

    Projections and feed-forward take [n_real, hidden]; attention scatters its queries, keys and values back
    to [batch, length, ...] (zeros at padding, which the mask hides) and gathers the result again.
    """

    def __init__(self, attention_mask: tf.Tensor, dtype: tf.DType):
        self.real = tf.cast(tf.not_equal(attention_mask, tf.zeros_like(attention_mask)), dtype)
        self.indices = tf.where(tf.not_equal(attention_mask, tf.zeros_like(attention_mask)))
        self.batch_shape = tf.shape(attention_mask, out_type=tf.int64)

    def pack(self, x: tf.Tensor) -> tf.Tensor:
        """[batch, length, ...] -> [n_real, ...]"""
        return tf.gather_nd(x, self.indices)

    def pad(self, x: tf.Tensor) -> tf.Tensor:
        """[n_real, ...] -> [batch, length, ...] with zeros at padding."""
        shape = tf.concat([self.batch_shape, tf.shape(x, out_type=tf.int64)[1:]], axis=0)
        return tf.scatter_nd(self.indices, x, shape)


class StaticPacking(Packing):
    """The same numbers with static shapes, for XLA: every position is computed and padding is zeroed where
    `Packing` has zeros. Real tokens never see padding (the attention mask hides it), so they are unchanged."""

    def __init__(self, attention_mask: tf.Tensor, dtype: tf.DType):
        self.real = tf.cast(tf.not_equal(attention_mask, tf.zeros_like(attention_mask)), dtype)

    def pack(self, x: tf.Tensor) -> tf.Tensor:
        return x

    def pad(self, x: tf.Tensor) -> tf.Tensor:
        return x * tf.reshape(self.real, tf.concat([tf.shape(self.real), tf.ones([x.shape.rank - 2], tf.int32)], 0))


class TFRemBertEmbeddings(Layer):
    """Token + position + token-type embeddings of width input_embedding_size, layer-normed."""

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        width = config.input_embedding_size
        self.word_embeddings = Embedding(config.vocab_size, width, **sublayer(self, "word_embeddings"))
        self.position_embeddings = Embedding(
            config.max_position_embeddings, width, **sublayer(self, "position_embeddings")
        )
        self.token_type_embeddings = Embedding(config.type_vocab_size, width, **sublayer(self, "token_type_embeddings"))
        self.LayerNorm = LayerNorm(width, config.layer_norm_eps, **sublayer(self, "LayerNorm"))
        self.dropout = Dropout(config.hidden_dropout_prob, **sublayer(self, "dropout"))

    def call(
        self,
        input_ids: tf.Tensor | None,
        token_type_ids: tf.Tensor,
        position_ids: tf.Tensor,
        inputs_embeds: tf.Tensor | None,
        training: bool = False,
    ) -> tf.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = tf.cast(inputs_embeds, self.compute_dtype) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings), training=training)


class TFRemBertSelfAttention(Layer):
    """Multi-head scaled dot-product attention; keys and values come from `key_value_states` for cross-attention."""

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.query = Dense(config.hidden_size, config.hidden_size, **sublayer(self, "query"))
        self.key = Dense(config.hidden_size, config.hidden_size, **sublayer(self, "key"))
        self.value = Dense(config.hidden_size, config.hidden_size, **sublayer(self, "value"))
        self.dropout = Dropout(config.attention_probs_dropout_prob, **sublayer(self, "dropout"))

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        batch, length, _ = dims(x)
        return tf.transpose(tf.reshape(x, [batch, length, self.num_heads, self.head_size]), [0, 2, 1, 3])

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor | None,
        key_value_states: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, tf.Tensor] | None = None,
        output_attentions: bool = False,
        packing: Packing | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor | None, tuple[tf.Tensor, tf.Tensor]]:
        def heads(x: tf.Tensor) -> tf.Tensor:
            return self._split_heads(packing.pad(x) if packing is not None else x)

        query = heads(self.query(hidden_states))
        if key_value_states is not None and past_key_value is not None:
            key, value = past_key_value  # cross-attention keys never change while decoding
        elif key_value_states is not None:
            key, value = self._split_heads(self.key(key_value_states)), self._split_heads(self.value(key_value_states))
        else:
            key, value = heads(self.key(hidden_states)), heads(self.value(hidden_states))
            if past_key_value is not None:
                key = tf.concat([tf.cast(past_key_value[0], key.dtype), key], axis=2)
                value = tf.concat([tf.cast(past_key_value[1], value.dtype), value], axis=2)
        scores = tf.matmul(query, key, transpose_b=True) / tf.cast(math.sqrt(self.head_size), query.dtype)
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = tf.nn.softmax(scores, axis=-1)
        if packing is not None:
            probs = probs * tf.expand_dims(tf.expand_dims(packing.real, 1), 3)  # padding rows attend nowhere
        context = tf.matmul(self.dropout(probs, training=training), value)
        context = tf.transpose(context, [0, 2, 1, 3])  # [batch, length, heads, head_size]
        if packing is not None:
            context = packing.pack(context)
        context = tf.reshape(context, tf.concat([tf.shape(context)[:-2], [self.num_heads * self.head_size]], 0))
        return context, probs if output_attentions else None, (key, value)


class TFRemBertSelfOutput(Layer):
    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.dense = Dense(config.hidden_size, config.hidden_size, **sublayer(self, "dense"))
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps, **sublayer(self, "LayerNorm"))
        self.dropout = Dropout(config.hidden_dropout_prob, **sublayer(self, "dropout"))

    def call(self, hidden_states: tf.Tensor, residual: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states), training=training) + residual)


class TFRemBertAttention(Layer):
    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.self = TFRemBertSelfAttention(config, **sublayer(self, "self"))
        # `output_`: keras.Layer.output is taken (the variables are still named `output.`, see layers.named_variables)
        self.output_ = TFRemBertSelfOutput(config, **sublayer(self, "output"))

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor | None,
        key_value_states: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, tf.Tensor] | None = None,
        output_attentions: bool = False,
        packing: Packing | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor | None, tuple[tf.Tensor, tf.Tensor]]:
        context, probs, present = self.self(
            hidden_states,
            attention_mask,
            key_value_states,
            past_key_value,
            output_attentions=output_attentions,
            packing=packing,
            training=training,
        )
        return self.output_(context, hidden_states, training=training), probs, present


class TFRemBertIntermediate(Layer):
    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.dense = Dense(config.hidden_size, config.intermediate_size, **sublayer(self, "dense"))
        self.intermediate_act_fn = activation(config.hidden_act)

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class TFRemBertOutput(Layer):
    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.dense = Dense(config.intermediate_size, config.hidden_size, **sublayer(self, "dense"))
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps, **sublayer(self, "LayerNorm"))
        self.dropout = Dropout(config.hidden_dropout_prob, **sublayer(self, "dropout"))

    def call(self, hidden_states: tf.Tensor, residual: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states), training=training) + residual)


class TFRemBertLayer(Layer):
    """Self-attention, cross-attention (decoders built with add_cross_attention), feed-forward; post-LN."""

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.attention = TFRemBertAttention(config, **sublayer(self, "attention"))
        if config.add_cross_attention:
            self.crossattention = TFRemBertAttention(config, **sublayer(self, "crossattention"))
        self.intermediate = TFRemBertIntermediate(config, **sublayer(self, "intermediate"))
        self.output_ = TFRemBertOutput(config, **sublayer(self, "output"))

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor | None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_mask: tf.Tensor | None = None,
        past_key_value: LayerCache | None = None,
        output_attentions: bool = False,
        packing: Packing | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor | None, tf.Tensor | None, LayerCache]:
        self_past = past_key_value[:2] if past_key_value is not None else None
        flags = dict(output_attentions=output_attentions, packing=packing, training=training)
        hidden_states, self_probs, present = self.attention(hidden_states, attention_mask, None, self_past, **flags)
        cross_probs = None
        if encoder_hidden_states is not None:
            cross_past = past_key_value[2:] if past_key_value is not None and len(past_key_value) == 4 else None
            hidden_states, cross_probs, cross_present = self.crossattention(
                hidden_states, encoder_attention_mask, encoder_hidden_states, cross_past, **flags
            )
            present = present + cross_present
        layer_output = self.output_(self.intermediate(hidden_states), hidden_states, training=training)
        return layer_output, self_probs, cross_probs, present


class TFRemBertEncoder(Layer):
    """Projects the embeddings up to hidden_size, then runs the layers."""

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.embedding_hidden_mapping_in = Dense(
            config.input_embedding_size, config.hidden_size, **sublayer(self, "embedding_hidden_mapping_in")
        )
        self.layer = [TFRemBertLayer(config, **sublayer(self, f"layer_{i}")) for i in range(config.num_hidden_layers)]
        self.gradient_checkpointing = False

    def call(
        self,
        embeddings: tf.Tensor,
        attention_mask: tf.Tensor | None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_mask: tf.Tensor | None = None,
        past_key_values: tuple[LayerCache, ...] | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        packing: Packing | None = None,
        training: bool = False,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """With `packing`, hidden states travel as [n_real, hidden] and come back padded with zeros."""
        if packing is not None:
            embeddings = packing.pack(embeddings)
        record = EncoderRecord(
            output_hidden_states, output_attentions, encoder_hidden_states is not None, use_cache, packing
        )
        hidden_states = record.start(self.embedding_hidden_mapping_in(embeddings))
        recompute = self.gradient_checkpointing and training and not output_attentions and not use_cache
        for i, layer in enumerate(self.layer):
            past = past_key_values[i] if past_key_values is not None else None
            args = (attention_mask, encoder_hidden_states, encoder_attention_mask, past)
            flags = dict(output_attentions=output_attentions, packing=packing)
            if recompute:
                hidden_states, probs, cross_probs, present = (
                    _recomputed(layer, hidden_states, args, flags),
                    None,
                    None,
                    None,
                )
            else:
                hidden_states, probs, cross_probs, present = layer(hidden_states, *args, **flags, training=training)
            hidden_states = record.add(hidden_states, probs, cross_probs, present)
        return record.output(hidden_states)


def _recomputed(layer: TFRemBertLayer, hidden_states: tf.Tensor, args: tuple, flags: dict) -> tf.Tensor:
    """The layer's output, with its activations recomputed in backward instead of kept (tf.recompute_grad)."""

    @tf.recompute_grad
    def run(hidden: tf.Tensor) -> tf.Tensor:
        return layer(hidden, *args, **flags, training=True)[0]

    return run(hidden_states)


class TFRemBertPooler(Layer):
    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.dense = Dense(config.hidden_size, config.hidden_size, **sublayer(self, "dense"))

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return tf.tanh(self.dense(hidden_states[:, 0]))


def _heads_and_queries_axes(mask: tf.Tensor) -> tf.Tensor:
    """[batch, keys] -> [batch, 1, 1, keys]. (expand_dims rather than `mask[:, None, None, :]`: TFLite's builtin
    strided slice cannot insert axes, so the indexing form would block conversion with builtin ops only.)"""
    return tf.expand_dims(tf.expand_dims(mask, 1), 1)


def _additive_mask(mask: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """1 = attend, 0 = masked  ->  0 / a large negative number added to attention scores."""
    return (1.0 - tf.cast(mask, dtype)) * tf.constant(rules.mask_value(dtype.name), dtype)


def self_attention_mask(
    attention_mask: tf.Tensor, length: int | tf.Tensor, past_length: int | tf.Tensor, causal: bool, dtype: tf.DType
) -> tf.Tensor:
    """[batch, 1, length or 1, past_length + length] additive mask; decoders also hide later positions."""
    if attention_mask.shape.rank == 3:
        return _additive_mask(tf.expand_dims(attention_mask, 1), dtype)
    mask = tf.cast(_heads_and_queries_axes(attention_mask), dtype)
    if causal:
        positions = tf.range(past_length + length)
        visible = positions[None, :] <= positions[past_length:, None]
        mask = mask * tf.expand_dims(tf.expand_dims(tf.cast(visible, dtype), 0), 0)
    return _additive_mask(mask, dtype)


@serializable
class TFRemBertModel(TFRemBertPreTrainedModel):
    """The RemBERT backbone: embeddings, projection to hidden_size, post-LN transformer layers, optional pooler.

    >>> from rembert_spec import RemBertConfig
    >>> config = RemBertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=32)
    >>> TFRemBertModel(config)(tf.constant([[5, 6, 7]])).last_hidden_state.shape
    TensorShape([1, 3, 16])
    """

    head = "base"

    def __init__(self, config: RemBertConfig, add_pooling_layer: bool = True, **kwargs):
        super().__init__(config, **kwargs)
        self.embeddings = TFRemBertEmbeddings(config, **sublayer(self, "embeddings"))
        self.encoder = TFRemBertEncoder(config, **sublayer(self, "encoder"))
        self.pooler = TFRemBertPooler(config, **sublayer(self, "pooler")) if add_pooling_layer else None
        self.post_init()

    def get_config(self) -> dict:
        return {**super().get_config(), "add_pooling_layer": self.pooler is not None}

    @unpack_inputs
    def call(
        self,
        input_ids: tf.Tensor | None = None,
        attention_mask: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_mask: tf.Tensor | None = None,
        past_key_values: tuple[LayerCache, ...] | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        unpad: bool | None = None,
        training: bool = False,
        *,
        _read_positions: tf.Tensor | None = None,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions | tuple:
        """`unpad` (default config.unpad) gives padding positions zero hidden states, as PyTorch does when it
        skips their work (under XLA they are computed, then zeroed: XLA needs static shapes). Padding positions
        whose outputs are read are computed as Hugging Face computes them: the pooled first position, and
        `_read_positions` (a head's labelled positions, [batch, length] bool)."""
        config = self.config
        unpad, output_attentions, output_hidden_states, use_cache = rules.forward_flags(
            config, unpad, output_attentions, output_hidden_states, use_cache
        )
        facts = GraphFacts()
        shape = rules.check_forward_inputs(
            config,
            facts,
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
        dtype = tf.as_dtype(self.compute_dtype)
        past_length = shape.past_length

        if position_ids is None:
            position_ids = tf.range(past_length, past_length + length)[None, :]
        if token_type_ids is None:
            token_type_ids = tf.zeros((batch, length), dtype=tf.int32)
        mask = None
        if attention_mask is not None or config.is_decoder:
            if attention_mask is None:
                attention_mask = tf.ones((batch, past_length + length), dtype)
            mask = self_attention_mask(attention_mask, length, past_length, config.is_decoder, dtype)
        encoder_mask = None
        if encoder_hidden_states is not None:
            encoder_hidden_states = tf.cast(encoder_hidden_states, dtype)
            if encoder_attention_mask is not None:
                encoder_mask = _additive_mask(_heads_and_queries_axes(encoder_attention_mask), dtype)

        packing = None
        if unpad and attention_mask is not None and attention_mask.shape.rank == 2:
            # The positions computed now: all of them, or those after the cache. Their padding gets zeros, as in
            # the full forward (the cache then holds zeros there, which the mask hides later), except where an
            # output is read.
            current = attention_mask[:, past_length:] if past_key_values is not None else attention_mask
            computed = tf.not_equal(current, tf.zeros_like(current))
            if _read_positions is not None:
                computed = tf.logical_or(computed, _read_positions)
            if self.pooler is not None and past_key_values is None:
                computed = tf.concat([tf.ones_like(computed[:, :1]), computed[:, 1:]], axis=1)
            packing = (StaticPacking if in_xla() else Packing)(computed, dtype)

        with tf.control_dependencies(facts.checks):  # in a graph, refuse bad ids before looking them up
            embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, training=training)
        outputs = self.encoder(
            embeddings,
            mask,
            encoder_hidden_states,
            encoder_mask,
            past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            packing=packing,
            training=training,
        )
        if self.pooler is not None:
            outputs.pooler_output = self.pooler(outputs.last_hidden_state)
        return returned(outputs, return_dict, config.return_dict)


def _cross_entropy(logits: tf.Tensor, labels: tf.Tensor, ignore_index: int | tf.Tensor = rules.IGNORE_INDEX):
    """Mean cross-entropy over the labels that are not `ignore_index`, in float32 (NaN when none counts, as in
    PyTorch)."""
    labels = tf.cast(labels, tf.int64)
    counted = labels != tf.cast(ignore_index, tf.int64)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.where(counted, labels, tf.zeros_like(labels)), logits=tf.cast(logits, tf.float32)
    )
    weights = tf.cast(counted, tf.float32)
    return tf.reduce_sum(losses * weights) / tf.reduce_sum(weights)


# -- heads ------------------------------------------------------------------------------------------------


class TFRemBertLMPredictionHead(Layer):
    """hidden -> output_embedding_size (activation, LayerNorm) -> vocabulary. Not tied to the input embeddings;
    the decoder weight is [vocab, output_embedding_size] in both frameworks."""

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.dense = Dense(config.hidden_size, config.output_embedding_size, **sublayer(self, "dense"))
        self.decoder = Dense(
            config.output_embedding_size, config.vocab_size, transposed=True, **sublayer(self, "decoder")
        )
        self.activation = activation(config.hidden_act)
        self.LayerNorm = LayerNorm(config.output_embedding_size, config.layer_norm_eps, **sublayer(self, "LayerNorm"))

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden_states))))


class TFRemBertOnlyMLMHead(Layer):
    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(**kwargs)
        self.predictions = TFRemBertLMPredictionHead(config, **sublayer(self, "predictions"))

    def call(self, sequence_output: tf.Tensor) -> tf.Tensor:
        return self.predictions(sequence_output)


def _labelled(labels: tf.Tensor | None, attention_mask: tf.Tensor | None, shift: bool) -> tf.Tensor | None:
    """The positions whose outputs a token-level loss reads ([batch, length] bool; with `shift`, position t is read
    for label t+1), for the backbone to compute even where attention_mask marks padding, as Hugging Face does.
    None when there is nothing to add (labels of another shape are refused later, by the label check)."""
    if labels is None or attention_mask is None or labels.shape.rank != 2 or attention_mask.shape.rank != 2:
        return None
    if not labels.shape.is_compatible_with(attention_mask.shape):
        return None
    counted = tf.not_equal(labels, tf.constant(rules.IGNORE_INDEX, labels.dtype))
    if shift:
        counted = tf.concat([counted[:, 1:], tf.zeros_like(counted[:, :1])], axis=1)
    return counted


def _lm_loss_and_logits(
    head: TFRemBertOnlyMLMHead,
    hidden_states: tf.Tensor,
    labels: tf.Tensor,
    shift: bool,
    sparse_prediction: bool,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cross-entropy over the positions whose label is not -100, and the logits.

    With `shift` (causal LM), position t predicts label t+1. The logits are [batch, length, vocab], as Hugging
    Face returns them; with `sparse_prediction` (config.sparse_prediction) the vocabulary-wide head runs only at
    the counted positions and the logits are theirs, [n_counted, vocab]. XLA cannot compile a data-dependent
    shape, so there the head always runs everywhere (same loss, all logits).
    """
    if shift:
        labels = labels[:, 1:]
    if not sparse_prediction or in_xla():
        logits = head(hidden_states)
        predicting = logits[:, :-1] if shift else logits
        return _cross_entropy(predicting, labels), logits
    counted = labels != rules.IGNORE_INDEX
    logits = head(tf.boolean_mask(hidden_states[:, :-1] if shift else hidden_states, counted))
    return _cross_entropy(logits, tf.boolean_mask(labels, counted)), logits


@serializable
class TFRemBertForMaskedLM(TFRemBertPreTrainedModel):
    """RemBERT with its pretraining head: masked-token prediction over the vocabulary.

    With `labels`, the loss is cross-entropy over positions whose label is not -100; `logits` is
    [batch, length, vocab_size] as in Hugging Face, eager or compiled. With `config.sparse_prediction` (an opt-in
    for training), the vocabulary head runs only at labelled positions and `logits` is [n_labelled, vocab_size]
    (the rows of the full logits where labels != -100), except under XLA, which cannot compile a data-dependent
    shape and returns the full logits.

    >>> model = TFRemBertForMaskedLM.from_pretrained("path/to/model")  # doctest: +SKIP
    >>> model({"input_ids": ids, "labels": labels}).loss  # doctest: +SKIP
    """

    head = "masked_lm"

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertModel(
            config, add_pooling_layer=False, _backbone_of_head=True, **sublayer(self, "rembert")
        )
        self.cls = TFRemBertOnlyMLMHead(config, **sublayer(self, "cls"))
        self.post_init()

    @unpack_inputs
    def call(
        self,
        input_ids: tf.Tensor | None = None,
        attention_mask: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_mask: tf.Tensor | None = None,
        labels: tf.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
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
            training=training,
            _read_positions=_labelled(labels, attention_mask, shift=False),
        )
        sequence_output = outputs.last_hidden_state
        loss = None
        if labels is None:
            logits = self.cls(sequence_output)
        else:
            checks = check_labels("labels", labels, dims(sequence_output)[:2], self.config.vocab_size, "vocab_size")
            with tf.control_dependencies(checks):
                loss, logits = _lm_loss_and_logits(
                    self.cls, sequence_output, labels, False, self.config.sparse_prediction
                )
        out = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


@serializable
class TFRemBertForCausalLM(TFGenerationMixin, TFRemBertPreTrainedModel):
    """RemBERT as a left-to-right language model (build the config with is_decoder=True).

    The loss predicts token t+1 from positions <= t (labels are shifted inside), ignoring -100; `logits` is
    [batch, length, vocab_size], or with `config.sparse_prediction` (as in TFRemBertForMaskedLM) only the counted
    positions' rows. Without labels, `logits_to_keep=k` keeps only the last k positions' logits (0 keeps all),
    which is what decoding needs.

    >>> out = model(input_ids=prompt, use_cache=True)  # doctest: +SKIP
    >>> out = model(input_ids=next_ids, past_key_values=out.past_key_values, logits_to_keep=1)  # doctest: +SKIP
    """

    head = "causal_lm"

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertModel(
            config, add_pooling_layer=False, _backbone_of_head=True, **sublayer(self, "rembert")
        )
        self.cls = TFRemBertOnlyMLMHead(config, **sublayer(self, "cls"))
        self.post_init()

    @unpack_inputs
    def call(
        self,
        input_ids: tf.Tensor | None = None,
        attention_mask: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_mask: tf.Tensor | None = None,
        past_key_values: tuple[LayerCache, ...] | None = None,
        labels: tf.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        training: bool = False,
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
            training=training,
            _read_positions=_labelled(labels, attention_mask, shift=True),
        )
        sequence_output = outputs.last_hidden_state
        loss = None
        if labels is None:
            logits = self.cls(sequence_output[:, -logits_to_keep:] if logits_to_keep else sequence_output)
        else:
            checks = check_labels("labels", labels, dims(sequence_output)[:2], self.config.vocab_size, "vocab_size")
            with tf.control_dependencies(checks):
                loss, logits = _lm_loss_and_logits(
                    self.cls, sequence_output, labels, True, self.config.sparse_prediction
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


@serializable
class TFRemBertForSequenceClassification(TFRemBertPreTrainedModel):
    """A linear classifier on the pooled [CLS] output. The loss follows config.problem_type: regression (MSE),
    single-label (cross-entropy) or multi-label (binary cross-entropy with logits); when unset it is inferred
    from num_labels and the labels' dtype.

    >>> model = TFRemBertForSequenceClassification.from_pretrained("path/to/model", num_labels=3)  # doctest: +SKIP
    """

    head = "sequence_classification"

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertModel(config, _backbone_of_head=True, **sublayer(self, "rembert"))
        self.dropout = Dropout(config.classifier_dropout_prob, **sublayer(self, "dropout"))
        self.classifier = Dense(config.hidden_size, config.num_labels, **sublayer(self, "classifier"))
        self.post_init()

    @unpack_inputs
    def call(
        self,
        input_ids: tf.Tensor | None = None,
        attention_mask: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        labels: tf.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
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
            training=training,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output, training=training))
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels)
        out = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


def sequence_classification_loss(config: RemBertConfig, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    integer_labels = not labels.dtype.is_floating
    problem = rules.sequence_classification_problem(config, integer_labels)
    batch = dims(logits)[0]
    logits = tf.cast(logits, tf.float32)
    if problem == "regression":
        with tf.control_dependencies(check_regression_labels(labels, batch, config.num_labels)):
            labels = tf.cast(labels, tf.float32)
            predicted = tf.reshape(logits, tf.shape(labels)) if config.num_labels == 1 else logits
            return tf.reduce_mean(tf.square(predicted - labels))
    if problem == "single_label_classification":
        with tf.control_dependencies(check_labels("labels", labels, (batch,), config.num_labels, "num_labels")):
            return _cross_entropy(logits, tf.reshape(labels, [-1]))
    with tf.control_dependencies(check_shape("labels", dims(labels), (batch, config.num_labels), "multi-label")):
        labels = tf.cast(labels, tf.float32)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


@serializable
class TFRemBertForMultipleChoice(TFRemBertPreTrainedModel):
    """Scores each of num_choices candidates ([batch, num_choices, length] inputs) with one logit each."""

    head = "multiple_choice"

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertModel(config, _backbone_of_head=True, **sublayer(self, "rembert"))
        self.dropout = Dropout(config.classifier_dropout_prob, **sublayer(self, "dropout"))
        self.classifier = Dense(config.hidden_size, 1, **sublayer(self, "classifier"))
        self.post_init()

    @unpack_inputs
    def call(
        self,
        input_ids: tf.Tensor | None = None,
        attention_mask: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        labels: tf.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> MultipleChoiceModelOutput | tuple:
        batch, choices = rules.check_multiple_choice_inputs(GraphFacts(), input_ids, inputs_embeds)

        def flat(x: tf.Tensor | None) -> tf.Tensor | None:
            return None if x is None else tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))

        outputs = self.rembert(
            flat(input_ids),
            flat(attention_mask),
            flat(token_type_ids),
            flat(position_ids),
            flat(inputs_embeds),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            training=training,
        )
        logits = tf.reshape(self.classifier(self.dropout(outputs.pooler_output, training=training)), [batch, choices])
        loss = None
        if labels is not None:
            with tf.control_dependencies(check_labels("labels", labels, (batch,), choices, "num_choices")):
                loss = _cross_entropy(logits, tf.reshape(labels, [-1]))
        out = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


@serializable
class TFRemBertForTokenClassification(TFRemBertPreTrainedModel):
    """A linear classifier on every token; labels of -100 are ignored by the loss."""

    head = "token_classification"

    def __init__(self, config: RemBertConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertModel(
            config, add_pooling_layer=False, _backbone_of_head=True, **sublayer(self, "rembert")
        )
        self.dropout = Dropout(config.classifier_dropout_prob, **sublayer(self, "dropout"))
        self.classifier = Dense(config.hidden_size, config.num_labels, **sublayer(self, "classifier"))
        self.post_init()

    @unpack_inputs
    def call(
        self,
        input_ids: tf.Tensor | None = None,
        attention_mask: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        labels: tf.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
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
            training=training,
            _read_positions=_labelled(labels, attention_mask, shift=False),
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state, training=training))
        loss = None
        if labels is not None:
            checks = check_labels("labels", labels, dims(logits)[:2], self.config.num_labels, "num_labels")
            with tf.control_dependencies(checks):
                loss = _cross_entropy(tf.reshape(logits, [-1, self.config.num_labels]), tf.reshape(labels, [-1]))
        out = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return returned(out, return_dict, self.config.return_dict)


@serializable
class TFRemBertForQuestionAnswering(TFRemBertPreTrainedModel):
    """Start and end logits for extractive QA. The loss averages start and end cross-entropy; positions
    outside the sequence are clamped to its length and ignored. As in Hugging Face, the loss softmaxes over every
    position, padding included, so a call with start/end positions computes the padding positions too."""

    head = "question_answering"

    def __init__(self, config: RemBertConfig, **kwargs):
        if config.num_labels != 2:
            raise ValueError(f"TFRemBertForQuestionAnswering needs num_labels=2 (start, end), got {config.num_labels}")
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertModel(
            config, add_pooling_layer=False, _backbone_of_head=True, **sublayer(self, "rembert")
        )
        self.qa_outputs = Dense(config.hidden_size, config.num_labels, **sublayer(self, "qa_outputs"))
        self.post_init()

    @unpack_inputs
    def call(
        self,
        input_ids: tf.Tensor | None = None,
        attention_mask: tf.Tensor | None = None,
        token_type_ids: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
        inputs_embeds: tf.Tensor | None = None,
        start_positions: tf.Tensor | None = None,
        end_positions: tf.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
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
            training=training,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if with_loss:
            batch, length = dims(start_logits)
            positions = []
            for name, value in (("start_positions", start_positions), ("end_positions", end_positions)):
                value = tf.reshape(value, [-1])
                with tf.control_dependencies(check_shape(name, dims(value), (batch,), "the batch")):
                    positions.append(tf.clip_by_value(tf.cast(value, tf.int64), 0, tf.cast(length, tf.int64)))
            loss = (
                _cross_entropy(start_logits, positions[0], ignore_index=length)
                + _cross_entropy(end_logits, positions[1], ignore_index=length)
            ) / 2
        out = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return returned(out, return_dict, self.config.return_dict)


__all__ = [
    "TFRemBertEmbeddings",
    "TFRemBertSelfAttention",
    "TFRemBertSelfOutput",
    "TFRemBertAttention",
    "TFRemBertIntermediate",
    "TFRemBertOutput",
    "TFRemBertLayer",
    "TFRemBertEncoder",
    "TFRemBertPooler",
    "TFRemBertModel",
    "TFRemBertLMPredictionHead",
    "TFRemBertOnlyMLMHead",
    "TFRemBertForMaskedLM",
    "TFRemBertForCausalLM",
    "TFRemBertForSequenceClassification",
    "TFRemBertForMultipleChoice",
    "TFRemBertForTokenClassification",
    "TFRemBertForQuestionAnswering",
]
