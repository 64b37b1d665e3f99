"""Text generation for RemBertForCausalLM: greedy decoding and sampling with a key/value cache.

The rules (argument checks, filters, when a row stops) are `rembert_spec.generation`'s, shared with
`rembert_tf.generation`; this module is the PyTorch loop that applies them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rembert_spec import generation as rules
from rembert_spec.generation import GenerationError, GenerationSettings


def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "b"
    return "f" if t.is_floating_point() else "i"


def prompt_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded prompt: real tokens count 0, 1, 2, ...; padding gets 0 (it is masked).

    >>> prompt_positions(torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])).tolist()
    [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)


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
    def _key(decoder: torch.nn.Linear) -> tuple:
        return (decoder.weight.data_ptr(), decoder.weight._version, decoder.bias.data_ptr(), decoder.bias._version)

    def fits(self, decoder: torch.nn.Linear) -> bool:
        return self.key == self._key(decoder)

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


class GenerationMixin:
    """Adds `generate` to a causal language model whose config has is_decoder=True.

    >>> model = RemBertForCausalLM.from_pretrained(path, is_decoder=True)  # doctest: +SKIP
    >>> model.generate(torch.tensor([[312, 1047, 7]]), max_new_tokens=5)  # doctest: +SKIP
    tensor([[ 312, 1047,    7, 8812,  903,   11,  204,  313]])
    """

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | Sequence[Sequence[int]],
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        min_new_tokens: int = 0,
    ) -> torch.Tensor:
        """Continue each prompt by up to `max_new_tokens` tokens; returns [batch, prompt + new] ids.

        Prompts of different lengths go in one batch LEFT-padded, with `attention_mask` (1 = token, 0 = padding):
        positions then count real tokens only, so each row continues exactly as it would alone. Greedy by default;
        `do_sample=True` samples from softmax(logits / temperature), restricted to the `top_k` most likely tokens
        and then to the `top_p` nucleus. `seed` (or a torch.Generator) makes sampling reproducible.

        A row ends at an `eos_token_id` (default config.eos_token_id; a list ends at any of them, an empty list
        never), which it keeps; its later positions hold `pad_token_id` (default config.pad_token_id). Decoding
        stops early when every row has ended. No end-of-sequence id is produced before `min_new_tokens`.

        For a decoder with cross-attention, `encoder_hidden_states` [batch, source, hidden] (and its
        `encoder_attention_mask`) are attended to at every step; their keys and values are computed once.

        >>> ids = model.generate(prompt_ids, attention_mask=mask, max_new_tokens=8, eos_token_id=313)  # doctest: +SKIP
        """
        config = self.config
        input_ids = torch.as_tensor(input_ids)
        rules.check_prompt_ids("input_ids", tuple(input_ids.shape), _kind(input_ids))
        if generator is not None and not isinstance(generator, torch.Generator):
            raise GenerationError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        settings = rules.check_generation_args(
            config,
            input_ids.shape[1],
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
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        else:
            attention_mask = torch.as_tensor(attention_mask, device=device)
            rules.check_mask_shape(tuple(attention_mask.shape), tuple(input_ids.shape))
            real = attention_mask != 0
            rules.check_prompt_mask(
                (~real.any(-1)).nonzero().flatten().tolist(), (~real[:, -1]).nonzero().flatten().tolist()
            )
            attention_mask = real.to(input_ids.dtype)
        if settings.do_sample and generator is None and settings.seed is not None:
            generator = torch.Generator(device=device).manual_seed(settings.seed)

        eos = torch.tensor(settings.eos_token_ids, dtype=input_ids.dtype, device=device)
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=device)
        next_position = attention_mask.sum(-1, keepdim=True)
        step_ids, position_ids, past = input_ids, prompt_positions(attention_mask), None
        new_tokens: list[torch.Tensor] = []
        for step in range(settings.max_new_tokens):
            outputs = self.rembert(
                input_ids=step_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                use_cache=True,
                return_dict=True,
            )
            features = self.cls.predictions.features(outputs.last_hidden_state[:, -1, :])
            tokens = self._choose_tokens(features, settings, step, generator).to(input_ids.dtype)
            if settings.eos_token_ids:
                if settings.pad_token_id is not None:
                    tokens = torch.where(finished, settings.pad_token_id, tokens)
                finished |= torch.isin(tokens, eos)
            new_tokens.append(tokens[:, None])
            if settings.stops(step + 1, bool(finished.all())):
                break
            past = outputs.past_key_values
            step_ids, position_ids = tokens[:, None], next_position
            next_position = next_position + 1
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], 1)
        return torch.cat([input_ids, *new_tokens], dim=1)

    def _choose_tokens(
        self, features: torch.Tensor, settings: GenerationSettings, step: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """[batch, output_embedding_size] features of the last position -> [batch] next tokens."""
        decoder = self.cls.predictions.decoder
        banned = list(settings.eos_token_ids) if settings.suppresses_eos(step) else []
        if not settings.do_sample and decoder.weight.dtype == torch.float32:
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
