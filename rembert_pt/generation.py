"""Text generation for RemBertForCausalLM: greedy decoding, sampling and beam search with a key/value cache.

`generate`, its checks, the processing of scores and the loops' bookkeeping are `rembert_spec.generation`'s,
shared with `rembert_tf.generation`; this module is the PyTorch half: one model step with the cache (its logits,
or for plain greedy decoding just the certified argmax), cache rows reordered, and sampling with torch's generator.
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


class _TorchDecoding(decoding.DecodingBackend):
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
        self.past = None

    def _tensor(self, array: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor | None:
        return None if array is None else torch.as_tensor(array, dtype=dtype, device=self.prompt.device)

    @torch.no_grad()
    def _features(
        self,
        input_ids: np.ndarray,
        position_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None,
    ) -> torch.Tensor:
        """One model step; the last position's features, [rows, output_embedding_size], what the decoder scores."""
        outputs = self.model.rembert(
            input_ids=self._tensor(input_ids, torch.long),  # what the embedding takes, whatever the prompt's dtype
            attention_mask=self._tensor(attention_mask, torch.long),
            token_type_ids=self._tensor(token_type_ids, torch.long),
            position_ids=self._tensor(position_ids, torch.long),
            past_key_values=self.past,
            encoder_hidden_states=self.encoder_hidden_states,
            encoder_attention_mask=self.encoder_attention_mask,
            use_cache=self.settings.use_cache,
            return_dict=True,
        )
        if self.settings.use_cache:
            self.past = outputs.past_key_values
        return self.model.cls.predictions.features(outputs.last_hidden_state[:, -1, :])

    @torch.no_grad()
    def logits(
        self,
        input_ids: np.ndarray,
        position_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None,
    ) -> np.ndarray:
        features = self._features(input_ids, position_ids, attention_mask, token_type_ids)
        return self.model.cls.predictions.decoder(features).float().cpu().numpy()

    @torch.no_grad()
    def greedy_tokens(
        self,
        input_ids: np.ndarray,
        position_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None,
        banned: tuple[int, ...],
    ) -> np.ndarray:
        features = self._features(input_ids, position_ids, attention_mask, token_type_ids)
        decoder = self.model.cls.predictions.decoder
        if CertifiedArgmax.applies(decoder):
            return self.model._certified_argmax_for(decoder)(decoder, features, list(banned)).cpu().numpy()
        logits = decoder(features).float()
        logits[:, list(banned)] = float("-inf")
        return logits.argmax(dim=-1).cpu().numpy()

    def sample(self, scores: np.ndarray) -> np.ndarray:
        probs = torch.from_numpy(scores).to(self.prompt.device).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1).cpu().numpy()

    def select(self, rows: np.ndarray) -> None:
        index = torch.as_tensor(rows, dtype=torch.long, device=self.prompt.device)
        if self.past is not None:
            self.past = tuple(tuple(t.index_select(0, index) for t in layer) for layer in self.past)
        if self.encoder_hidden_states is not None:
            self.encoder_hidden_states = self.encoder_hidden_states.index_select(0, index)
        if self.encoder_attention_mask is not None:
            self.encoder_attention_mask = self.encoder_attention_mask.index_select(0, index)

    def to_tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=self.prompt.device)


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
        self,
        input_ids: torch.Tensor | np.ndarray | Sequence[Sequence[int]],
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
    ) -> decoding.Prompt:
        device = input_ids.device if isinstance(input_ids, torch.Tensor) else next(self.parameters()).device
        prompt = torch.as_tensor(input_ids, device=device)
        real = None if attention_mask is None else (torch.as_tensor(attention_mask) != 0).cpu().numpy()
        types = None
        if token_type_ids is not None:
            types_tensor = torch.as_tensor(token_type_ids)
            decoding.check_prompt_ids("token_type_ids", tuple(types_tensor.shape), tensor_kind(types_tensor))
            types = types_tensor.cpu().numpy()
        return decoding.Prompt(prompt, prompt.cpu().numpy(), tensor_kind(prompt), real, types)

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

    def _certified_argmax_for(self, decoder: torch.nn.Linear) -> CertifiedArgmax:
        """The bfloat16 copy of `decoder`, made on first use and again when its weights change."""
        argmax = getattr(self, "_certified_argmax", None)
        if argmax is None or not argmax.fits(decoder):
            argmax = self._certified_argmax = CertifiedArgmax(decoder)
        return argmax
