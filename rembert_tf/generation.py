"""Text generation for TFRemBertForCausalLM: greedy decoding, sampling and beam search with a key/value cache.

`generate`, its checks, the processing of scores and the loops' bookkeeping are `rembert_spec.generation`'s,
shared with `rembert_pt.generation`; this module is the TensorFlow half: one model step with the cache (eagerly,
through the model's public `call` API), cache rows reordered, and sampling with a tf.random.Generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from rembert_spec import generation as decoding
from rembert_spec.generation import GenerationSettings

from .validation import tensor_kind


class _TFDecoding(decoding.DecodingBackend):
    """The TensorFlow half of one `generate` call (a rembert_spec.generation.DecodingBackend)."""

    def __init__(
        self,
        model: Any,
        prompt: tf.Tensor,
        settings: GenerationSettings,
        generator: tf.random.Generator | None,
        encoder_hidden_states: tf.Tensor | None,
        encoder_attention_mask: tf.Tensor | None,
    ):
        self.model, self.prompt, self.settings, self.generator = model, prompt, settings, generator
        self.encoder_hidden_states, self.encoder_attention_mask = encoder_hidden_states, encoder_attention_mask
        self.past = None

    def _tensor(self, array: np.ndarray | None) -> tf.Tensor | None:
        return None if array is None else tf.constant(array, self.prompt.dtype)

    def logits(
        self,
        input_ids: np.ndarray,
        position_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None,
    ) -> np.ndarray:
        outputs = self.model(
            input_ids=self._tensor(input_ids),
            attention_mask=self._tensor(attention_mask),
            token_type_ids=self._tensor(token_type_ids),
            position_ids=self._tensor(position_ids),
            past_key_values=self.past,
            encoder_hidden_states=self.encoder_hidden_states,
            encoder_attention_mask=self.encoder_attention_mask,
            use_cache=self.settings.use_cache,
            logits_to_keep=1,
            return_dict=True,
            training=False,
        )
        if self.settings.use_cache:
            self.past = outputs.past_key_values
        return tf.cast(outputs.logits[:, -1, :], tf.float32).numpy()

    def sample(self, scores: np.ndarray) -> np.ndarray:
        # Gumbel-max: argmax(scores + Gumbel noise) is a draw from softmax(scores); -inf scores are never drawn.
        uniform = self.generator.uniform(scores.shape, minval=np.finfo(np.float32).tiny, maxval=1.0)
        return tf.argmax(scores - tf.math.log(-tf.math.log(uniform)), axis=-1).numpy()

    def select(self, rows: np.ndarray) -> None:
        if self.past is not None:
            self.past = tuple(tuple(tf.gather(t, rows) for t in layer) for layer in self.past)
        if self.encoder_hidden_states is not None:
            self.encoder_hidden_states = tf.gather(self.encoder_hidden_states, rows)
        if self.encoder_attention_mask is not None:
            self.encoder_attention_mask = tf.gather(self.encoder_attention_mask, rows)

    def to_tensor(self, array: np.ndarray) -> tf.Tensor:
        return tf.constant(array)


class TFGenerationMixin(decoding.GenerationMixin):
    """Adds `generate` (rembert_spec.generation.GenerationMixin) to a Keras causal language model whose config has
    is_decoder=True.

    >>> model = TFRemBertForCausalLM.from_pretrained(path, is_decoder=True)  # doctest: +SKIP
    >>> model.generate(tf.constant([[312, 1047, 7]]), max_new_tokens=5)  # doctest: +SKIP
    <tf.Tensor: shape=(1, 8), dtype=int32, numpy=array([[ 312, 1047,    7, 8812,  903,   11,  204,  313]])>
    """

    _generator_class = tf.random.Generator
    _generator_class_name = "tf.random.Generator"

    def _prompt(
        self,
        input_ids: tf.Tensor | np.ndarray | Sequence[Sequence[int]],
        attention_mask: tf.Tensor | np.ndarray | None,
        token_type_ids: tf.Tensor | np.ndarray | None,
    ) -> decoding.Prompt:
        prompt = tf.convert_to_tensor(input_ids)
        real = None
        if attention_mask is not None:
            mask = tf.convert_to_tensor(attention_mask)
            real = tf.not_equal(mask, tf.zeros_like(mask)).numpy()
        types = None
        if token_type_ids is not None:
            types_tensor = tf.convert_to_tensor(token_type_ids)
            decoding.check_prompt_ids("token_type_ids", tuple(types_tensor.shape), tensor_kind(types_tensor))
            types = types_tensor.numpy()
        return decoding.Prompt(prompt, prompt.numpy(), tensor_kind(prompt), real, types)

    def _decoding_backend(
        self,
        prompt: tf.Tensor,
        settings: GenerationSettings,
        generator: tf.random.Generator | None,
        encoder_hidden_states: tf.Tensor | None,
        encoder_attention_mask: tf.Tensor | None,
    ) -> _TFDecoding:
        if settings.do_sample and generator is None:
            seed = settings.seed
            generator = tf.random.get_global_generator() if seed is None else tf.random.Generator.from_seed(seed)
        return _TFDecoding(self, prompt, settings, generator, encoder_hidden_states, encoder_attention_mask)
