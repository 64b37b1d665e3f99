"""Text generation for TFRemBertForCausalLM: greedy decoding and sampling with a key/value cache.

`generate`, its checks and the loop's bookkeeping are `rembert_spec.generation`'s, shared with
`rembert_pt.generation`; this module is the TensorFlow half: one model step with the cache (eagerly, through the
model's public `call` API), and the choice of tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from rembert_spec import generation as decoding
from rembert_spec.generation import GenerationSettings

from .validation import tensor_kind


def filter_logits(
    logits: tf.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> tf.Tensor:
    """logits / temperature, then everything outside the top_k and outside the top_p nucleus set to -inf.

    >>> filter_logits(tf.constant([[1.0, 3.0, 2.0, 0.0]]), top_k=2).numpy().tolist()
    [[-inf, 3.0, 2.0, -inf]]
    >>> filter_logits(tf.constant([[0.0, 9.0, 1.0, 0.0]]), top_p=0.5).numpy().tolist()
    [[-inf, 9.0, -inf, -inf]]
    """
    logits = logits / temperature
    minus_inf = tf.fill(tf.shape(logits), tf.constant(-np.inf, logits.dtype))
    if top_k is not None:
        kth = tf.math.top_k(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = tf.where(logits < kth, minus_inf, logits)
    if top_p is not None and top_p < 1.0:
        order = tf.argsort(logits, axis=-1, direction="DESCENDING", stable=True)
        probs = tf.nn.softmax(tf.gather(logits, order, batch_dims=1), axis=-1)
        mass_before = tf.cumsum(probs, axis=-1) - probs  # the most likely token always stays (mass_before = 0)
        drop = tf.gather(mass_before >= top_p, tf.argsort(order, axis=-1), batch_dims=1)
        logits = tf.where(drop, minus_inf, logits)
    return logits


class _TFDecoding:
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
        self.prompt_ids = prompt.numpy()
        self.past = None

    def step(
        self, input_ids: np.ndarray, position_ids: np.ndarray, attention_mask: np.ndarray, banned: tuple[int, ...]
    ) -> np.ndarray:
        outputs = self.model(
            input_ids=tf.constant(input_ids, self.prompt.dtype),
            attention_mask=tf.constant(attention_mask, self.prompt.dtype),
            position_ids=tf.constant(position_ids, self.prompt.dtype),
            past_key_values=self.past,
            encoder_hidden_states=self.encoder_hidden_states,
            encoder_attention_mask=self.encoder_attention_mask,
            use_cache=True,
            logits_to_keep=1,
            return_dict=True,
            training=False,
        )
        self.past = outputs.past_key_values
        return _choose_tokens(outputs.logits[:, -1, :], self.settings, banned, self.generator).numpy()

    def join(self, new_tokens: np.ndarray) -> tf.Tensor:
        return tf.concat([self.prompt, tf.constant(new_tokens, self.prompt.dtype)], axis=1)


def _choose_tokens(
    logits: tf.Tensor, settings: GenerationSettings, banned: tuple[int, ...], generator: tf.random.Generator | None
) -> tf.Tensor:
    """[batch, vocab] logits of the last position -> [batch] next tokens, never `banned`."""
    logits = tf.cast(logits, tf.float32)
    if banned:
        forbidden = np.zeros((logits.shape[-1],), np.float32)
        forbidden[list(banned)] = -np.inf
        logits = logits + forbidden
    if not settings.do_sample:
        return tf.argmax(logits, axis=-1)
    logits = filter_logits(logits, settings.temperature, settings.top_k, settings.top_p)
    # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits); -inf logits are never drawn.
    uniform = generator.uniform(tf.shape(logits), minval=np.finfo(np.float32).tiny, maxval=1.0)
    return tf.argmax(logits - tf.math.log(-tf.math.log(uniform)), axis=-1)


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
        self, input_ids: tf.Tensor | np.ndarray | Sequence[Sequence[int]], attention_mask: tf.Tensor | np.ndarray | None
    ) -> tuple[tf.Tensor, str, np.ndarray | None]:
        prompt = tf.convert_to_tensor(input_ids)
        if attention_mask is None:
            return prompt, tensor_kind(prompt), None
        mask = tf.convert_to_tensor(attention_mask)
        return prompt, tensor_kind(prompt), tf.not_equal(mask, tf.zeros_like(mask)).numpy()

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
