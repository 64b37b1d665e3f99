"""Text generation for TFRemBertForCausalLM: greedy decoding and sampling with a key/value cache.

The rules (argument checks, filters, when a row stops) are `rembert_spec.generation`'s, shared with
`rembert_pt.generation`; this module is the TensorFlow loop that applies them. It runs eagerly, one model call
per new token, through the model's public `call` API.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from rembert_spec import generation as rules
from rembert_spec.generation import GenerationError, GenerationSettings


def _kind(t: tf.Tensor) -> str:
    if t.dtype == tf.bool:
        return "b"
    return "f" if t.dtype.is_floating else ("i" if t.dtype.is_integer else "O")


def prompt_positions(attention_mask: tf.Tensor) -> tf.Tensor:
    """Position ids of a left-padded prompt: real tokens count 0, 1, 2, ...; padding gets 0 (it is masked).

    >>> prompt_positions(tf.constant([[0, 0, 1, 1], [1, 1, 1, 1]])).numpy().tolist()
    [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    return tf.maximum(tf.cumsum(attention_mask, axis=-1) - 1, 0)


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


class TFGenerationMixin:
    """Adds `generate` to a Keras causal language model whose config has is_decoder=True.

    >>> model = TFRemBertForCausalLM.from_pretrained(path, is_decoder=True)  # doctest: +SKIP
    >>> model.generate(tf.constant([[312, 1047, 7]]), max_new_tokens=5)  # doctest: +SKIP
    <tf.Tensor: shape=(1, 8), dtype=int32, numpy=array([[ 312, 1047,    7, 8812,  903,   11,  204,  313]])>
    """

    def generate(
        self,
        input_ids: tf.Tensor | np.ndarray | Sequence[Sequence[int]],
        attention_mask: tf.Tensor | np.ndarray | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        seed: int | None = None,
        generator: tf.random.Generator | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_mask: tf.Tensor | None = None,
        min_new_tokens: int = 0,
    ) -> tf.Tensor:
        """Continue each prompt by up to `max_new_tokens` tokens; returns [batch, prompt + new] ids.

        The same arguments and rules as PyTorch's `RemBertForCausalLM.generate` (greedy decoding gives the same
        tokens): LEFT-padded prompts with `attention_mask`, greedy or `do_sample` with temperature / top_k /
        top_p, rows ending at `eos_token_id` and padded with `pad_token_id`, at least `min_new_tokens`.
        Sampling draws from `generator` (a tf.random.Generator), or one made from `seed`, or TensorFlow's global
        generator.

        >>> ids = model.generate(prompt_ids, attention_mask=mask, max_new_tokens=8, eos_token_id=313)  # doctest: +SKIP
        """
        config = self.config
        input_ids = tf.convert_to_tensor(input_ids)
        rules.check_prompt_ids("input_ids", tuple(input_ids.shape), _kind(input_ids))
        if generator is not None and not isinstance(generator, tf.random.Generator):
            raise GenerationError(f"generator must be a tf.random.Generator or None, got {type(generator).__name__}")
        settings = rules.check_generation_args(
            config,
            int(input_ids.shape[1]),
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            seed=seed,
            has_generator=generator is not None,
        )
        if attention_mask is None:
            attention_mask = tf.ones_like(input_ids)
        else:
            attention_mask = tf.convert_to_tensor(attention_mask)
            rules.check_mask_shape(tuple(attention_mask.shape), tuple(input_ids.shape))
            real = tf.not_equal(attention_mask, tf.zeros_like(attention_mask))
            rules.check_prompt_mask(
                tf.where(~tf.reduce_any(real, -1))[:, 0].numpy().tolist(),
                tf.where(~real[:, -1])[:, 0].numpy().tolist(),
            )
            attention_mask = tf.cast(real, input_ids.dtype)
        if settings.do_sample and generator is None:
            generator = (
                tf.random.get_global_generator()
                if settings.seed is None
                else tf.random.Generator.from_seed(settings.seed)
            )

        batch = int(input_ids.shape[0])
        eos = tf.constant(settings.eos_token_ids, dtype=input_ids.dtype, shape=(len(settings.eos_token_ids),))
        finished = tf.zeros((batch,), tf.bool)
        next_position = tf.reduce_sum(attention_mask, axis=-1, keepdims=True)
        step_ids, position_ids, past = input_ids, prompt_positions(attention_mask), None
        new_tokens: list[tf.Tensor] = []
        for step in range(settings.max_new_tokens):
            outputs = self(
                input_ids=step_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                use_cache=True,
                logits_to_keep=1,
                return_dict=True,
                training=False,
            )
            tokens = tf.cast(self._choose_tokens(outputs.logits[:, -1, :], settings, step, generator), input_ids.dtype)
            if settings.eos_token_ids:
                if settings.pad_token_id is not None:
                    tokens = tf.where(finished, tf.constant(settings.pad_token_id, tokens.dtype), tokens)
                finished = finished | tf.reduce_any(tokens[:, None] == eos[None, :], axis=-1)
            new_tokens.append(tokens[:, None])
            if settings.stops(step + 1, bool(tf.reduce_all(finished))):
                break
            past = outputs.past_key_values
            step_ids, position_ids = tokens[:, None], next_position
            next_position = next_position + 1
            attention_mask = tf.concat([attention_mask, tf.ones((batch, 1), attention_mask.dtype)], axis=1)
        return tf.concat([input_ids, *new_tokens], axis=1)

    @staticmethod
    def _choose_tokens(
        logits: tf.Tensor, settings: GenerationSettings, step: int, generator: tf.random.Generator | None
    ) -> tf.Tensor:
        """[batch, vocab] logits of the last position -> [batch] next tokens."""
        logits = tf.cast(logits, tf.float32)
        if settings.suppresses_eos(step):
            vocab = logits.shape[-1]
            forbidden = np.zeros((vocab,), np.float32)
            forbidden[list(settings.eos_token_ids)] = -np.inf
            logits = logits + forbidden
        if not settings.do_sample:
            return tf.argmax(logits, axis=-1)
        logits = filter_logits(logits, settings.temperature, settings.top_k, settings.top_p)
        # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits); -inf logits are never drawn.
        uniform = generator.uniform(tf.shape(logits), minval=np.finfo(np.float32).tiny, maxval=1.0)
        return tf.argmax(logits - tf.math.log(-tf.math.log(uniform)), axis=-1)
