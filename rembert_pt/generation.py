"""Text generation for RemBertForCausalLM: greedy decoding and sampling with a key/value cache.

`generate`, its checks and the loop's bookkeeping are `rembert_spec.generation`'s, shared with
`rembert_tf.generation`; this module is the PyTorch half: one model step with the cache, and the choice of tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rembert_spec import generation as decoding
from rembert_spec.generation import GenerationSettings

from . import internals
from .validation import tensor_kind


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """logits / temperature, then everything outside the top_k and outside the top_p nucleus set to -inf.

    >>> filter_logits(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), top_k=2).tolist()
    [[-inf, 3.0, 2.0, -inf]]
    >>> filter_logits(torch.tensor([[0.0, 9.0, 1.0, 0.0]]), top_p=0.5).tolist()
    [[-inf, 9.0, -inf, -inf]]
    """
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # the most likely token always stays (mass_before = 0)
        drop = torch.zeros_like(mass_before, dtype=torch.bool).scatter_(-1, order, mass_before >= top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


class CertifiedArgmax:
    """The float32 argmax of `decoder(x)` over a large vocabulary, reading about half of the decoder's bytes.

    Decoding one token is bound by memory bandwidth, and the 250,300 x 1664 decoder is 45% of what a step reads.
    A bfloat16 copy of it scores every token at half the cost; each score comes with a proven bound on its
    distance to the float32 score (Cauchy-Schwarz on the rounding of the weights and of x, plus the rounding of
    the bfloat16 result and of its float32 accumulation), so only tokens whose upper bound reaches the best
    lower bound can be the argmax. Those few are scored again in float32 and the best one wins: the same token
    as `decoder(x).argmax(-1)`, up to float32 ties. The copy costs half the decoder's memory and is rebuilt
    when the weights change.
    """

    _CHUNK = 16384  # rows converted at a time when building the copy

    def __init__(self, decoder: torch.nn.Linear):
        weight = decoder.weight.detach()
        self.key = self._key(decoder)
        self.low = torch.empty_like(weight, dtype=torch.bfloat16)
        self.row_error = torch.empty(weight.shape[0], dtype=torch.float32)
        self.row_norm = torch.empty(weight.shape[0], dtype=torch.float32)
        for start in range(0, weight.shape[0], self._CHUNK):
            rows = weight[start : start + self._CHUNK]
            low = rows.to(torch.bfloat16)
            widened = low.float()
            self.low[start : start + self._CHUNK] = low
            self.row_error[start : start + self._CHUNK] = (rows - widened).norm(dim=1)
            self.row_norm[start : start + self._CHUNK] = widened.norm(dim=1)

    @staticmethod
    def _key(decoder: torch.nn.Linear) -> tuple | None:
        return internals.weights_key(decoder.weight, decoder.bias)

    @staticmethod
    def applies(decoder: torch.nn.Linear) -> bool:
        """float32 weights whose changes can be seen (rembert_pt.internals, hook `tensor_version`)."""
        return decoder.weight.dtype == torch.float32 and internals.active("tensor_version")

    def fits(self, decoder: torch.nn.Linear) -> bool:
        return self.key is not None and self.key == self._key(decoder)

    def __call__(self, decoder: torch.nn.Linear, x: torch.Tensor, banned: list[int]) -> torch.Tensor:
        x = x.float()
        x_low = x.to(torch.bfloat16)
        if x.shape[0] == 1:  # one row: matrix-vector is the faster kernel for the same bytes
            approx = torch.mv(self.low, x_low[0]).float()[None, :]
        else:
            approx = torch.nn.functional.linear(x_low, self.low).float()
        x_norm = x.norm(dim=1, keepdim=True)
        x_error = (x - x_low.float()).norm(dim=1, keepdim=True)
        # |x.w - x~.w~| <= |x| |w - w~| + |x - x~| |w~|; the bfloat16 result adds 2^-8 relative, float32
        # accumulation over the row far less than the 2^-10 allowed here.
        bound = x_norm * self.row_error + x_error * self.row_norm + approx.abs() * 2**-8
        bound += (x_norm + x_error) * self.row_norm * 2**-10
        approx += decoder.bias
        if banned:
            approx[:, banned] = float("-inf")
        best_lower = (approx - bound).max(dim=1, keepdim=True).values
        tokens = []
        for row, candidates in enumerate(approx + bound >= best_lower):
            index = candidates.nonzero().squeeze(1)
            exact = torch.nn.functional.linear(x[row], decoder.weight[index], decoder.bias[index])
            tokens.append(index[exact.argmax()])
        return torch.stack(tokens)


class _TorchDecoding:
    """The PyTorch half of one `generate` call (a rembert_spec.generation.DecodingBackend)."""

    def __init__(
        self,
        model: Any,
        prompt: torch.Tensor,
        settings: GenerationSettings,
        generator: torch.Generator | None,
        encoder_hidden_states: torch.Tensor | None,
        encoder_attention_mask: torch.Tensor | None,
    ):
        self.model, self.prompt, self.settings, self.generator = model, prompt, settings, generator
        self.encoder_hidden_states, self.encoder_attention_mask = encoder_hidden_states, encoder_attention_mask
        self.prompt_ids = prompt.cpu().numpy()
        self.past = None

    def _tensor(self, array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype, device=self.prompt.device)

    @torch.no_grad()
    def step(
        self, input_ids: np.ndarray, position_ids: np.ndarray, attention_mask: np.ndarray, banned: tuple[int, ...]
    ) -> np.ndarray:
        outputs = self.model.rembert(
            input_ids=self._tensor(input_ids, self.prompt.dtype),
            attention_mask=self._tensor(attention_mask, self.prompt.dtype),
            position_ids=self._tensor(position_ids, torch.long),
            past_key_values=self.past,
            encoder_hidden_states=self.encoder_hidden_states,
            encoder_attention_mask=self.encoder_attention_mask,
            use_cache=True,
            return_dict=True,
        )
        self.past = outputs.past_key_values
        features = self.model.cls.predictions.features(outputs.last_hidden_state[:, -1, :])
        return self.model._choose_tokens(features, self.settings, banned, self.generator).cpu().numpy()

    def join(self, new_tokens: np.ndarray) -> torch.Tensor:
        return torch.cat([self.prompt, self._tensor(new_tokens, self.prompt.dtype)], dim=1)


class GenerationMixin(decoding.GenerationMixin):
    """Adds `generate` (rembert_spec.generation.GenerationMixin) to a PyTorch causal language model whose config
    has is_decoder=True.

    >>> model = RemBertForCausalLM.from_pretrained(path, is_decoder=True)  # doctest: +SKIP
    >>> model.generate(torch.tensor([[312, 1047, 7]]), max_new_tokens=5)  # doctest: +SKIP
    tensor([[ 312, 1047,    7, 8812,  903,   11,  204,  313]])
    """

    _generator_class = torch.Generator
    _generator_class_name = "torch.Generator"

    def _prompt(
        self, input_ids: torch.Tensor | Sequence[Sequence[int]], attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, str, np.ndarray | None]:
        prompt = torch.as_tensor(input_ids)
        if attention_mask is None:
            return prompt, tensor_kind(prompt), None
        real = torch.as_tensor(attention_mask, device=prompt.device) != 0
        return prompt, tensor_kind(prompt), real.cpu().numpy()

    def _decoding_backend(
        self,
        prompt: torch.Tensor,
        settings: GenerationSettings,
        generator: torch.Generator | None,
        encoder_hidden_states: torch.Tensor | None,
        encoder_attention_mask: torch.Tensor | None,
    ) -> _TorchDecoding:
        if settings.do_sample and generator is None and settings.seed is not None:
            generator = torch.Generator(device=prompt.device).manual_seed(settings.seed)
        return _TorchDecoding(self, prompt, settings, generator, encoder_hidden_states, encoder_attention_mask)

    def _choose_tokens(
        self,
        features: torch.Tensor,
        settings: GenerationSettings,
        banned: tuple[int, ...],
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """[batch, output_embedding_size] features of the last position -> [batch] next tokens, never `banned`."""
        decoder = self.cls.predictions.decoder
        banned = list(banned)
        if not settings.do_sample and CertifiedArgmax.applies(decoder):
            argmax = getattr(self, "_certified_argmax", None)
            if argmax is None or not argmax.fits(decoder):
                argmax = self._certified_argmax = CertifiedArgmax(decoder)
            return argmax(decoder, features, banned)
        logits = decoder(features).float()
        if banned:
            logits[:, banned] = float("-inf")
        if not settings.do_sample:
            return logits.argmax(dim=-1)
        probs = filter_logits(logits, settings.temperature, settings.top_k, settings.top_p).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
