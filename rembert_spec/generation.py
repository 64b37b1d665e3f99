"""`generate`, written once for both backends: which arguments are legal, and the decoding loop's bookkeeping.

`GenerationMixin.generate` checks the call (`check_generate_call`, one `GenerationSettings`) and runs `decode`,
which keeps every row's ids, positions, attention mask and finished flag as numpy arrays. The framework half
(`rembert_pt.generation`, `rembert_tf.generation`) is a `DecodingBackend`: it runs the model one step with its
key/value cache and chooses the next tokens. The rules:

- the prompt is LEFT-padded (its last column is a real token in every row), positions count real tokens only;
- each step picks a token: argmax (greedy), or a sample from softmax(logits / temperature) restricted to the
  top_k most likely tokens, then to the smallest set whose probability reaches top_p (in that order);
- before `min_new_tokens` new tokens, the end-of-sequence ids are forbidden;
- a row that has produced an end-of-sequence id is finished: from the next step on it gets `pad_token_id`;
- decoding ends after `max_new_tokens` steps, or earlier when every row is finished.

Where the next options go (beam search, repetition penalty, no_repeat_ngram_size, num_return_sequences): their
argument checks into `check_generation_args` and `GenerationSettings`; what depends only on the ids so far
(n-grams to ban, which rows repeat or which beams survive) into `decode`, in numpy, once; what touches scores
into the backends' `step` (e.g. scaling the logits of tokens already seen, or returning the top candidates of
every beam) and, for beams, a backend call that reorders the cache rows.

>>> from rembert_spec import RemBertConfig
>>> config = RemBertConfig(vocab_size=99, is_decoder=True, pad_token_id=0, eos_token_id=2)
>>> settings = check_generation_args(config, prompt_length=5, max_new_tokens=4)
>>> settings.eos_token_ids, settings.pad_token_id, settings.do_sample
((2,), 0, False)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from .config import RemBertConfig
from .inputs import InputError


class GenerationError(InputError):
    """An argument of `generate` is not legal. The message names the argument and the value."""


@dataclass(frozen=True)
class GenerationSettings:
    """The checked arguments of one `generate` call.

    `eos_token_ids` is empty when no id ends a row; `pad_token_id` is what finished rows receive (None only when
    no row can finish early). `temperature`, `top_k` and `top_p` only apply when `do_sample`.
    """

    max_new_tokens: int
    min_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int | None
    top_p: float | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None
    seed: int | None

    def suppresses_eos(self, step: int) -> bool:
        """Whether the end-of-sequence ids are forbidden at 0-based decoding `step` (min_new_tokens)."""
        return bool(self.eos_token_ids) and step < self.min_new_tokens

    def banned_ids(self, step: int) -> tuple[int, ...]:
        """The token ids no row may choose at 0-based decoding `step`."""
        return self.eos_token_ids if self.suppresses_eos(step) else ()

    def stops(self, steps_taken: int, all_finished: bool) -> bool:
        """Whether decoding ends once `steps_taken` tokens per row are out, given whether every row is finished."""
        return all_finished or steps_taken >= self.max_new_tokens


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _token_id(name: str, value: Any, vocab_size: int) -> int:
    if not _is_int(value) or not 0 <= int(value) < vocab_size:
        raise GenerationError(
            f"{name} must be a token id in [0, {vocab_size}) (vocab_size={vocab_size}), got {value!r}"
        )
    return int(value)


def _eos_ids(eos_token_id: Any, config: RemBertConfig) -> tuple[int, ...]:
    if eos_token_id is None:
        # The config's id (google/rembert: 313) ends rows only when the vocabulary has it.
        default = config.eos_token_id
        return (default,) if default is not None and default < config.vocab_size else ()
    if _is_int(eos_token_id):
        return (_token_id("eos_token_id", eos_token_id, config.vocab_size),)
    if isinstance(eos_token_id, Sequence) and not isinstance(eos_token_id, str):
        return tuple(dict.fromkeys(_token_id("eos_token_id", v, config.vocab_size) for v in eos_token_id))
    raise GenerationError(
        f"eos_token_id must be a token id, a list of token ids (empty: never stop early) or None "
        f"(config.eos_token_id), got {eos_token_id!r}"
    )


def check_generation_args(
    config: RemBertConfig,
    prompt_length: int,
    max_new_tokens: Any = 20,
    min_new_tokens: Any = 0,
    do_sample: Any = False,
    temperature: Any = 1.0,
    top_k: Any = None,
    top_p: Any = None,
    eos_token_id: Any = None,
    pad_token_id: Any = None,
    seed: Any = None,
    has_generator: bool = False,
) -> GenerationSettings:
    """Check every non-tensor argument of `generate`; raise `GenerationError` naming the first bad one.

    `eos_token_id=None` uses config.eos_token_id (when it lies in the vocabulary); `pad_token_id=None` uses
    config.pad_token_id, else the first end-of-sequence id.

    >>> from rembert_spec import RemBertConfig
    >>> config = RemBertConfig(vocab_size=99, is_decoder=True)
    >>> check_generation_args(config, 3, do_sample=True, top_p=1.5)
    Traceback (most recent call last):
    ...
    rembert_spec.generation.GenerationError: top_p must be a number in (0, 1] or None, got 1.5
    """
    if not config.is_decoder:
        raise GenerationError(
            "generate needs a decoder: build or load the model with is_decoder=True "
            "(e.g. RemBertForCausalLM.from_pretrained(path, is_decoder=True))"
        )
    if not _is_int(max_new_tokens) or max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not _is_int(min_new_tokens) or not 0 <= min_new_tokens <= max_new_tokens:
        raise GenerationError(
            f"min_new_tokens must be an integer in [0, max_new_tokens={max_new_tokens}], got {min_new_tokens!r}"
        )
    total = prompt_length + int(max_new_tokens)
    if total > config.max_position_embeddings:
        raise GenerationError(
            f"max_new_tokens={max_new_tokens} after a prompt of {prompt_length} tokens needs {total} positions, "
            f"more than max_position_embeddings={config.max_position_embeddings}"
        )
    if not isinstance(do_sample, bool):
        raise GenerationError(f"do_sample must be True or False, got {do_sample!r}")
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature <= 0:
        raise GenerationError(
            f"temperature must be a positive finite number, got {temperature!r} (for greedy decoding use "
            "do_sample=False)"
        )
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise GenerationError(f"top_k must be a positive integer or None (no top-k filter), got {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise GenerationError(f"top_p must be a number in (0, 1] or None, got {top_p!r}")
    if seed is not None and not _is_int(seed):
        raise GenerationError(f"seed must be an integer or None, got {seed!r}")
    if seed is not None and has_generator:
        raise GenerationError("pass either seed or generator, not both")
    eos_ids = _eos_ids(eos_token_id, config)
    if pad_token_id is not None:
        pad = _token_id("pad_token_id", pad_token_id, config.vocab_size)
    elif config.pad_token_id is not None:
        pad = config.pad_token_id
    else:
        pad = eos_ids[0] if eos_ids else None
    return GenerationSettings(
        max_new_tokens=int(max_new_tokens),
        min_new_tokens=int(min_new_tokens),
        do_sample=do_sample,
        temperature=float(temperature),
        top_k=None if top_k is None else int(top_k),
        top_p=None if top_p is None else float(top_p),
        eos_token_ids=eos_ids,
        pad_token_id=pad,
        seed=None if seed is None else int(seed),
    )


def check_mask_shape(mask_shape: Sequence[int], ids_shape: Sequence[int]) -> None:
    """The prompt's attention_mask has the prompt's shape [batch, length]."""
    if tuple(mask_shape) != tuple(ids_shape):
        raise GenerationError(f"attention_mask has shape {tuple(mask_shape)} but input_ids needs {tuple(ids_shape)}")


def check_prompt_mask(rows_without_tokens: Sequence[int], rows_padded_on_the_right: Sequence[int]) -> None:
    """The attention mask of a prompt: every row holds a token, and padding is on the left.

    The backend finds the rows (`mask.sum(-1) == 0`; `mask[:, -1] == 0`) and hands their indices here.
    """
    if len(rows_without_tokens):
        raise GenerationError(
            f"attention_mask row {int(rows_without_tokens[0])} has no tokens: every prompt needs at least one"
        )
    if len(rows_padded_on_the_right):
        raise GenerationError(
            f"attention_mask row {int(rows_padded_on_the_right[0])} ends with padding: generate continues after "
            "the last column, so pad prompts on the LEFT (tokenizer padding_side='left')"
        )


def check_prompt_ids(name: str, shape: Sequence[int], kind: str) -> None:
    """input_ids (and attention_mask) of a prompt: [batch, length] integers, not empty."""
    if len(shape) != 2:
        raise GenerationError(f"{name} must be [batch, length], got shape {tuple(shape)}")
    if any(d == 0 for d in shape):
        raise GenerationError(f"{name} is empty (shape {tuple(shape)}): generate needs a prompt of at least one token")
    if name == "input_ids" and kind not in "iu":
        raise GenerationError(f"input_ids must hold integer ids, got a tensor of kind {kind!r}")


def check_generate_call(
    config: RemBertConfig,
    prompt_shape: Sequence[int],
    prompt_kind: str,
    real_tokens: np.ndarray | None,
    generator: Any,
    generator_class: type,
    generator_class_name: str,
    **arguments: Any,
) -> GenerationSettings:
    """Check a whole `generate` call before any model work: the prompt (`input_ids`' shape and dtype kind;
    `real_tokens` = attention_mask != 0 as a numpy bool array, None without a mask), the `generator` (None or a
    `generator_class`), and the other arguments as `check_generation_args` does."""
    check_prompt_ids("input_ids", prompt_shape, prompt_kind)
    if generator is not None and not isinstance(generator, generator_class):
        raise GenerationError(f"generator must be a {generator_class_name} or None, got {type(generator).__name__}")
    settings = check_generation_args(config, prompt_shape[1], has_generator=generator is not None, **arguments)
    if real_tokens is not None:
        check_mask_shape(real_tokens.shape, prompt_shape)
        check_prompt_mask(np.flatnonzero(~real_tokens.any(-1)), np.flatnonzero(~real_tokens[:, -1]))
    return settings


def prompt_positions(real_tokens: np.ndarray) -> np.ndarray:
    """Position ids of a left-padded prompt: real tokens count 0, 1, 2, ...; padding gets 0 (it is masked).

    >>> prompt_positions(np.array([[0, 0, 1, 1], [1, 1, 1, 1]])).tolist()
    [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    return np.maximum(np.cumsum(real_tokens != 0, axis=-1) - 1, 0)


class DecodingBackend(Protocol):
    """The framework half of one `generate` call: the model, its key/value cache and the scores stay inside;
    ids, positions and masks come in as numpy arrays and the chosen tokens go out as one."""

    prompt_ids: np.ndarray  # the prompt's ids, [batch, length], in the prompt's dtype

    def step(
        self, input_ids: np.ndarray, position_ids: np.ndarray, attention_mask: np.ndarray, banned: tuple[int, ...]
    ) -> np.ndarray:
        """Run the model over `input_ids` [batch, new] (the prompt, then one token per row) at `position_ids`,
        attending to `attention_mask` [batch, cached + new] and to the cache of the steps before, which it then
        extends; return every row's next token, [batch], never one of `banned`."""
        ...

    def join(self, new_tokens: np.ndarray) -> Any:
        """The prompt followed by `new_tokens` [batch, n_new]: one tensor of the framework, of the prompt's dtype."""
        ...


def decode(backend: DecodingBackend, settings: GenerationSettings, real_tokens: np.ndarray | None) -> np.ndarray:
    """Continue every row of the left-padded prompt `backend.prompt_ids` [batch, length] (`real_tokens` marks its
    real tokens; None: all are) by the rules of this module; returns the new tokens, [batch, n_new]."""
    prompt_ids = backend.prompt_ids
    batch = prompt_ids.shape[0]
    real = np.ones(prompt_ids.shape, bool) if real_tokens is None else real_tokens
    attention_mask = real.astype(prompt_ids.dtype)
    input_ids, position_ids = prompt_ids, prompt_positions(real)
    next_position = real.sum(axis=-1, keepdims=True)
    eos = np.asarray(settings.eos_token_ids, dtype=np.int64)
    finished = np.zeros(batch, bool)
    new_tokens: list[np.ndarray] = []
    for step in range(settings.max_new_tokens):
        tokens = backend.step(input_ids, position_ids, attention_mask, settings.banned_ids(step))
        if settings.eos_token_ids:
            if settings.pad_token_id is not None:
                tokens = np.where(finished, settings.pad_token_id, tokens)
            finished |= np.isin(tokens, eos)
        new_tokens.append(tokens)
        if settings.stops(step + 1, bool(finished.all())):
            break
        input_ids, position_ids = tokens[:, None].astype(prompt_ids.dtype), next_position
        next_position = next_position + 1
        attention_mask = np.concatenate([attention_mask, np.ones((batch, 1), attention_mask.dtype)], axis=1)
    return np.stack(new_tokens, axis=1).astype(prompt_ids.dtype)


class GenerationMixin:
    """`generate` for a causal language model whose config has is_decoder=True, in any framework.

    A backend's mixin supplies `_prompt` (its tensors in, numpy facts out) and `_decoding_backend`, and names its
    random generator class.
    """

    _generator_class: ClassVar[type]
    _generator_class_name: ClassVar[str]

    def generate(
        self,
        input_ids: Any,
        attention_mask: Any = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        seed: int | None = None,
        generator: Any = None,
        encoder_hidden_states: Any = None,
        encoder_attention_mask: Any = None,
        min_new_tokens: int = 0,
    ) -> Any:
        """Continue each prompt by up to `max_new_tokens` tokens; returns [batch, prompt + new] ids, a tensor of
        the model's framework with the prompt's dtype.

        Prompts of different lengths go in one batch LEFT-padded, with `attention_mask` (1 = token, 0 = padding):
        positions then count real tokens only, so each row continues exactly as it would alone. Greedy by default;
        `do_sample=True` samples from softmax(logits / temperature), restricted to the `top_k` most likely tokens
        and then to the `top_p` nucleus. Sampling draws from `generator` (a torch.Generator in PyTorch, a
        tf.random.Generator in TensorFlow), or one made from `seed`, or the framework's global generator.

        A row ends at an `eos_token_id` (default config.eos_token_id; a list ends at any of them, an empty list
        never), which it keeps; its later positions hold `pad_token_id` (default config.pad_token_id). Decoding
        stops early when every row has ended. No end-of-sequence id is produced before `min_new_tokens`.

        For a decoder with cross-attention, `encoder_hidden_states` [batch, source, hidden] (and its
        `encoder_attention_mask`) are attended to at every step; their keys and values are computed once.
        PyTorch and TensorFlow give the same tokens greedily from the same weights.

        >>> ids = model.generate(prompt_ids, attention_mask=mask, max_new_tokens=8, eos_token_id=313)  # doctest: +SKIP
        """
        prompt, prompt_kind, real_tokens = self._prompt(input_ids, attention_mask)
        settings = check_generate_call(
            self.config,
            tuple(prompt.shape),
            prompt_kind,
            real_tokens,
            generator,
            self._generator_class,
            self._generator_class_name,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            seed=seed,
        )
        backend = self._decoding_backend(prompt, settings, generator, encoder_hidden_states, encoder_attention_mask)
        return backend.join(decode(backend, settings, real_tokens))

    def _prompt(self, input_ids: Any, attention_mask: Any) -> tuple[Any, str, np.ndarray | None]:
        """(the prompt as the framework's tensor, its dtype kind, attention_mask != 0 as a numpy array or None)."""
        raise NotImplementedError

    def _decoding_backend(
        self,
        prompt: Any,
        settings: GenerationSettings,
        generator: Any,
        encoder_hidden_states: Any,
        encoder_attention_mask: Any,
    ) -> DecodingBackend:
        raise NotImplementedError
