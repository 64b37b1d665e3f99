"""`generate`, written once for both backends: which arguments are legal, how scores are processed, and the
decoding loops (greedy, sampling, beam search) with all their bookkeeping.

`GenerationMixin.generate` checks the call (`check_generate_call`, one `GenerationSettings`) and runs `decode`,
which keeps every row's ids, positions, attention mask, token types, finished flags and beams as numpy arrays and
turns the model's logits into tokens. The framework half (`rembert_pt.generation`, `rembert_tf.generation`) is a
`DecodingBackend`: it runs the model one step with its key/value cache and hands back the last position's logits,
reorders or repeats its cache rows, and draws samples with the framework's random generator.

The rules are Hugging Face's `generate` (transformers 4.x), with the same defaults:

- the prompt is LEFT-padded (its last column is a real token in every row); without an attention_mask, one is
  inferred from `pad_token_id` when the prompt holds it (and it is no end-of-sequence id); positions count real
  tokens only; token_type_ids, when given, continue with each row's last type;
- the length: `max_new_tokens`, else `max_length` (prompt included, padding counted), else 20 new tokens (fewer if
  the position embeddings end first); no end-of-sequence id before `min_new_tokens` (else `min_length`) tokens;
- the scores of a step are the last position's logits (beam search: their log-softmax), then, in this order:
  repetition penalty (seen tokens' scores divided by it when positive, multiplied when negative), no-repeat
  n-grams (-inf), the minimum length (-inf for end-of-sequence ids); for sampling then temperature, top_k, top_p;
- greedy decoding takes the argmax; sampling draws from softmax(scores), `num_return_sequences` times per prompt;
  a row that has produced an end-of-sequence id is finished and receives `pad_token_id` from then on; decoding
  ends at the length limit or when every row is finished;
- beam search keeps `num_beams` running beams and `num_beams` finished hypotheses per prompt, each hypothesis
  scored by its summed log-probabilities / new_length ** length_penalty; `early_stopping` (True, False, "never")
  decides when no running beam can beat the finished ones; the best `num_return_sequences` are returned.

>>> from rembert_spec import RemBertConfig
>>> config = RemBertConfig(vocab_size=99, is_decoder=True, pad_token_id=0, eos_token_id=2)
>>> settings = check_generation_args(config, prompt_length=5, max_new_tokens=4)
>>> settings.eos_token_ids, settings.pad_token_id, settings.do_sample, settings.num_beams
((2,), 0, False, 1)
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .config import RemBertConfig
from .inputs import InputError, check_index_dtype
from .outputs import ModelOutput

DEFAULT_NEW_TOKENS = 20  # Hugging Face's default max_length (20), counted after the prompt as it does
_NEGATIVE = np.float32(-1e9)  # a score no live beam reaches (Hugging Face's constant: same ties, same choices)


class GenerationError(InputError):
    """An argument of `generate` is not legal. The message names the argument and the value."""


@dataclass(frozen=True)
class GenerationSettings:
    """The checked arguments of one `generate` call.

    `eos_token_ids` is empty when no id ends a row; `pad_token_id` is what finished rows receive (None only when
    no row can finish early). `temperature`, `top_k` (None: no filter) and `top_p` (None: no filter) only apply
    when `do_sample`; `length_penalty` and `early_stopping` only when `num_beams > 1`.
    """

    max_new_tokens: int
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    seed: int | None = None
    use_cache: bool = True
    return_dict_in_generate: bool = False
    output_scores: bool = False
    output_logits: bool = False

    def suppresses_eos(self, step: int) -> bool:
        """Whether the end-of-sequence ids are forbidden at 0-based decoding `step` (min_new_tokens)."""
        return bool(self.eos_token_ids) and step < self.min_new_tokens

    def banned_ids(self, step: int) -> tuple[int, ...]:
        """The token ids every row is forbidden at 0-based decoding `step` (whatever the ids so far)."""
        return self.eos_token_ids if self.suppresses_eos(step) else ()

    @property
    def argmax_only(self) -> bool:
        """Greedy decoding whose scores nobody reads and which no rule on the ids so far changes: the backend may
        choose each token without handing over the logits (PyTorch's certified bfloat16 argmax)."""
        return (
            not self.do_sample
            and self.num_beams == 1
            and self.repetition_penalty == 1.0
            and self.no_repeat_ngram_size == 0
            and not (self.return_dict_in_generate and (self.output_scores or self.output_logits))
        )

    @property
    def copies(self) -> int:
        """Rows decoded per prompt: its beams, or its samples."""
        return self.num_beams if self.num_beams > 1 else self.num_return_sequences


# -- argument checks ----------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise GenerationError(f"{name} must be True or False, got {value!r}")
    return bool(value)


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


def _new_tokens(config: RemBertConfig, prompt_length: int, max_length: Any, max_new_tokens: Any) -> int:
    """How many tokens at most follow the prompt: max_new_tokens, else max_length - prompt, else 20."""
    room = config.max_position_embeddings
    if max_new_tokens is not None:
        if not _is_int(max_new_tokens) or max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        total = prompt_length + int(max_new_tokens)
        if total > room:
            raise GenerationError(
                f"max_new_tokens={max_new_tokens} after a prompt of {prompt_length} tokens needs {total} positions, "
                f"more than max_position_embeddings={room}"
            )
        return int(max_new_tokens)
    if max_length is not None:
        if not _is_int(max_length) or max_length < 1:
            raise GenerationError(f"max_length must be a positive integer, got {max_length!r}")
        if max_length > room:
            raise GenerationError(f"max_length={max_length} is more than max_position_embeddings={room}")
        if max_length <= prompt_length:
            raise GenerationError(
                f"max_length={max_length} counts the prompt, which already has {prompt_length} tokens (padding "
                "included): nothing is left to generate; set max_new_tokens instead"
            )
        return int(max_length) - prompt_length
    if prompt_length >= room:
        raise GenerationError(
            f"the prompt has {prompt_length} tokens: no position is left after it (max_position_embeddings={room})"
        )
    return min(DEFAULT_NEW_TOKENS, room - prompt_length)


def _min_new_tokens(prompt_length: int, new_tokens: int, min_length: Any, min_new_tokens: Any) -> int:
    """No end-of-sequence id before this many new tokens: min_new_tokens, else min_length - prompt, else 0."""
    if min_new_tokens is not None:
        if not _is_int(min_new_tokens) or not 0 <= min_new_tokens <= new_tokens:
            raise GenerationError(
                f"min_new_tokens must be an integer in [0, max_new_tokens={new_tokens}], got {min_new_tokens!r}"
            )
        return int(min_new_tokens)
    if min_length is not None:
        longest = prompt_length + new_tokens
        if not _is_int(min_length) or not 0 <= min_length <= longest:
            raise GenerationError(
                f"min_length must be an integer in [0, {longest}] (the prompt's {prompt_length} tokens + at most "
                f"{new_tokens} new ones), got {min_length!r}"
            )
        return max(int(min_length) - prompt_length, 0)
    return 0


def _check_sampling(temperature: Any, top_k: Any, top_p: Any) -> None:
    if temperature is not None and (not _is_finite_number(temperature) or temperature <= 0):
        raise GenerationError(
            f"temperature must be a positive finite number, got {temperature!r} (for greedy decoding use "
            "do_sample=False)"
        )
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise GenerationError(f"top_k must be a positive integer, or 0 or None (no top-k filter), got {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise GenerationError(f"top_p must be a number in (0, 1] or None, got {top_p!r}")


def check_generation_args(
    config: RemBertConfig,
    prompt_length: int,
    *,
    max_new_tokens: Any = None,
    max_length: Any = None,
    min_new_tokens: Any = None,
    min_length: Any = None,
    do_sample: Any = False,
    temperature: Any = 1.0,
    top_k: Any = 50,
    top_p: Any = 1.0,
    num_beams: Any = 1,
    length_penalty: Any = 1.0,
    early_stopping: Any = False,
    num_return_sequences: Any = 1,
    repetition_penalty: Any = 1.0,
    no_repeat_ngram_size: Any = 0,
    eos_token_id: Any = None,
    pad_token_id: Any = None,
    use_cache: Any = True,
    return_dict_in_generate: Any = False,
    output_scores: Any = False,
    output_logits: Any = False,
    seed: Any = None,
    has_generator: bool = False,
) -> GenerationSettings:
    """Check every non-tensor argument of `generate`; raise `GenerationError` naming the first bad one.

    Defaults are Hugging Face's: `eos_token_id=None` uses config.eos_token_id (when it lies in the vocabulary);
    `pad_token_id=None` uses config.pad_token_id, else the first end-of-sequence id; sampling keeps the 50 most
    likely tokens unless `top_k` says otherwise (0 or None: no filter). Without `do_sample`, `temperature`,
    `top_k` and `top_p` are ignored, not checked, as Hugging Face ignores them.

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
    new_tokens = _new_tokens(config, prompt_length, max_length, max_new_tokens)
    min_new = _min_new_tokens(prompt_length, new_tokens, min_length, min_new_tokens)
    do_sample = _check_bool("do_sample", do_sample)
    if do_sample:
        _check_sampling(temperature, top_k, top_p)
    else:  # ignored, as Hugging Face ignores them (temperature=0 is a common way to ask for greedy decoding)
        temperature, top_k, top_p = 1.0, None, None
    if not _is_int(num_beams) or num_beams < 1:
        raise GenerationError(f"num_beams must be a positive integer, got {num_beams!r}")
    if not _is_int(num_return_sequences) or num_return_sequences < 1:
        raise GenerationError(f"num_return_sequences must be a positive integer, got {num_return_sequences!r}")
    if num_beams > 1 and do_sample:
        raise GenerationError(
            "beam sampling (num_beams > 1 with do_sample=True) is not implemented: use num_beams=1 to sample, or "
            "do_sample=False for beam search"
        )
    if num_beams > 1 and num_return_sequences > num_beams:
        raise GenerationError(
            f"num_return_sequences must be at most num_beams={num_beams} (the finished beams are what is "
            f"returned), got {num_return_sequences}"
        )
    if num_beams == 1 and not do_sample and num_return_sequences != 1:
        raise GenerationError(
            f"num_return_sequences={num_return_sequences} needs do_sample=True or num_beams >= "
            f"{num_return_sequences}: greedy decoding gives one sequence per prompt"
        )
    if not _is_finite_number(length_penalty):
        raise GenerationError(f"length_penalty must be a finite number, got {length_penalty!r}")
    if not (isinstance(early_stopping, (bool, np.bool_)) or early_stopping == "never"):
        raise GenerationError(f'early_stopping must be True, False or "never", got {early_stopping!r}')
    if not _is_finite_number(repetition_penalty) or repetition_penalty <= 0:
        raise GenerationError(
            f"repetition_penalty must be a positive finite number (1.0: no penalty), got {repetition_penalty!r}"
        )
    if not _is_int(no_repeat_ngram_size) or no_repeat_ngram_size < 0:
        raise GenerationError(
            f"no_repeat_ngram_size must be a non-negative integer (0: off), got {no_repeat_ngram_size!r}"
        )
    if seed is not None and not _is_int(seed):
        raise GenerationError(f"seed must be an integer or None, got {seed!r}")
    if seed is not None and has_generator:
        raise GenerationError("pass either seed or generator, not both")
    flags = {
        name: _check_bool(name, value)
        for name, value in [
            ("use_cache", use_cache),
            ("return_dict_in_generate", return_dict_in_generate),
            ("output_scores", output_scores),
            ("output_logits", output_logits),
        ]
    }
    eos_ids = _eos_ids(eos_token_id, config)
    if pad_token_id is not None:
        pad = _token_id("pad_token_id", pad_token_id, config.vocab_size)
    elif config.pad_token_id is not None:
        pad = config.pad_token_id
    else:
        pad = eos_ids[0] if eos_ids else None
    return GenerationSettings(
        max_new_tokens=new_tokens,
        min_new_tokens=min_new,
        do_sample=do_sample,
        temperature=1.0 if temperature is None else float(temperature),
        top_k=int(top_k) if top_k else None,
        top_p=None if top_p is None or top_p >= 1 else float(top_p),
        num_beams=int(num_beams),
        length_penalty=float(length_penalty),
        early_stopping=early_stopping if early_stopping == "never" else bool(early_stopping),
        num_return_sequences=int(num_return_sequences),
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=int(no_repeat_ngram_size),
        eos_token_ids=eos_ids,
        pad_token_id=pad,
        seed=None if seed is None else int(seed),
        **flags,
    )


# Hugging Face generate options this implementation does not have, with the value that makes each a no-op (passing
# that value is fine: code written for Hugging Face often spells its defaults out).
_NOT_IMPLEMENTED = {
    "output_attentions": False,
    "output_hidden_states": False,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "penalty_alpha": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "min_p": None,
    "bad_words_ids": None,
    "force_words_ids": None,
    "constraints": None,
    "sequence_bias": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "exponential_decay_length_penalty": None,
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "renormalize_logits": False,
    "remove_invalid_values": False,
    "guidance_scale": None,
    "max_time": None,
    "stop_strings": None,
    "token_healing": False,
    "dola_layers": None,
    "prompt_lookup_num_tokens": None,
    "cache_implementation": None,
    "generation_config": None,
    "logits_processor": None,
    "stopping_criteria": None,
    "prefix_allowed_tokens_fn": None,
    "synced_gpus": None,
    "assistant_model": None,
    "streamer": None,
    "negative_prompt_ids": None,
    "negative_prompt_attention_mask": None,
    "inputs_embeds": None,
    "tokenizer": None,
}


def check_unknown_arguments(unknown: dict[str, Any], known: Sequence[str]) -> None:
    """Refuse keyword arguments `generate` does not take, with a TypeError naming each (and the likely typo).

    Hugging Face options that are not implemented here are accepted at their no-op value and named as such
    otherwise.

    >>> check_unknown_arguments({"max_new_token": 5}, ["max_new_tokens", "max_length"])
    Traceback (most recent call last):
    ...
    TypeError: generate() got an unexpected keyword argument 'max_new_token' (did you mean 'max_new_tokens'?)
    """
    problems = []
    for name, value in unknown.items():
        if name in _NOT_IMPLEMENTED:
            noop = _NOT_IMPLEMENTED[name]
            if value is None or (noop is not None and type(value) is type(noop) and value == noop):
                continue
            problems.append(f"{name}={value!r} (a Hugging Face generate option that rembert does not implement)")
            continue
        guess = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
        problems.append(f"{name!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
    if problems:
        noun = "an unexpected keyword argument" if len(problems) == 1 else "unexpected keyword arguments"
        raise TypeError(f"generate() got {noun} {', '.join(problems)}")


def check_mask_shape(mask_shape: Sequence[int], ids_shape: Sequence[int], name: str = "attention_mask") -> None:
    """The prompt's attention_mask (or token_type_ids) has the prompt's shape [batch, length]."""
    if tuple(mask_shape) != tuple(ids_shape):
        raise GenerationError(f"{name} has shape {tuple(mask_shape)} but input_ids needs {tuple(ids_shape)}")


def check_prompt_mask(
    rows_without_tokens: Sequence[int], rows_padded_on_the_right: Sequence[int], inferred_from_pad: int | None = None
) -> None:
    """The attention mask of a prompt: every row holds a token, and padding is on the left.

    The backend finds the rows (`mask.sum(-1) == 0`; `mask[:, -1] == 0`) and hands their indices here;
    `inferred_from_pad` is the pad id when the mask was inferred from the ids rather than given.
    """
    source = "attention_mask" if inferred_from_pad is None else "input_ids"
    padding = "padding" if inferred_from_pad is None else f"pad_token_id={inferred_from_pad}"
    hint = "" if inferred_from_pad is None else " (or pass an attention_mask)"
    if len(rows_without_tokens):
        raise GenerationError(
            f"{source} row {int(rows_without_tokens[0])} has no tokens, only {padding}: every prompt needs at "
            f"least one{hint}"
        )
    if len(rows_padded_on_the_right):
        raise GenerationError(
            f"{source} row {int(rows_padded_on_the_right[0])} ends with {padding}: generate continues after "
            f"the last column, so pad prompts on the LEFT (tokenizer padding_side='left'){hint}"
        )


def check_prompt_ids(name: str, shape: Sequence[int], kind: str) -> None:
    """input_ids (and attention_mask) of a prompt: [batch, length] integers, not empty."""
    if len(shape) != 2:
        raise GenerationError(f"{name} must be [batch, length], got shape {tuple(shape)}")
    if any(d == 0 for d in shape):
        raise GenerationError(f"{name} is empty (shape {tuple(shape)}): generate needs a prompt of at least one token")
    if name in ("input_ids", "token_type_ids") and kind not in "iu":
        raise GenerationError(f"{name} must hold integer ids, got a tensor of kind {kind!r}")


@dataclass
class Prompt:
    """A `generate` call's prompt: the framework's tensor (where the results go, of which dtype) and numpy facts:
    the ids, their dtype kind, which are real tokens (None: all), the token types (None: not given)."""

    tensor: Any
    ids: np.ndarray
    kind: str
    real_tokens: np.ndarray | None = None
    token_type_ids: np.ndarray | None = None
    inferred_mask: bool = False


def infer_real_tokens(prompt_ids: np.ndarray, settings: GenerationSettings) -> np.ndarray | None:
    """Without an attention_mask, Hugging Face's rule: the pad id marks padding when the prompt holds it and it
    ends no row; otherwise every token is real (None)."""
    pad = settings.pad_token_id
    if pad is None or pad in settings.eos_token_ids or not (prompt_ids == pad).any():
        return None
    return prompt_ids != pad


def check_generate_call(
    config: RemBertConfig,
    prompt: Prompt,
    generator: Any,
    generator_class: type,
    generator_class_name: str,
    **arguments: Any,
) -> GenerationSettings:
    """Check a whole `generate` call before any model work: the prompt (`input_ids`' shape and dtype kind; its
    attention mask, given or inferred from the pad id, which `prompt.real_tokens` then holds; its token types),
    the `generator` (None or a `generator_class`), and the other arguments as `check_generation_args` does."""
    shape = prompt.ids.shape
    check_prompt_ids("input_ids", shape, prompt.kind)
    # The forward's rule (and message): 8- and 16-bit ids cannot hold every token id the model may generate.
    check_index_dtype("input_ids", prompt.ids.dtype.name)
    if prompt.token_type_ids is not None:
        check_index_dtype("token_type_ids", prompt.token_type_ids.dtype.name)
    if generator is not None and not isinstance(generator, generator_class):
        raise GenerationError(f"generator must be a {generator_class_name} or None, got {type(generator).__name__}")
    settings = check_generation_args(config, shape[1], has_generator=generator is not None, **arguments)
    if prompt.real_tokens is not None:
        check_mask_shape(prompt.real_tokens.shape, shape)
    else:
        prompt.real_tokens = infer_real_tokens(prompt.ids, settings)
        prompt.inferred_mask = prompt.real_tokens is not None
    if prompt.real_tokens is not None:
        real = prompt.real_tokens
        check_prompt_mask(
            np.flatnonzero(~real.any(-1)),
            np.flatnonzero(~real[:, -1]),
            settings.pad_token_id if prompt.inferred_mask else None,
        )
    if prompt.token_type_ids is not None:
        check_mask_shape(prompt.token_type_ids.shape, shape, "token_type_ids")
    return settings


def prompt_positions(real_tokens: np.ndarray) -> np.ndarray:
    """Position ids of a left-padded prompt: real tokens count 0, 1, 2, ...; padding gets 0 (it is masked).

    >>> prompt_positions(np.array([[0, 0, 1, 1], [1, 1, 1, 1]])).tolist()
    [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    return np.maximum(np.cumsum(real_tokens != 0, axis=-1) - 1, 0)


# -- scores -------------------------------------------------------------------------------------------------


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log(softmax(logits)) over the last axis, in the logits' precision."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(scores: np.ndarray) -> np.ndarray:
    """softmax over the last axis; -inf scores get probability 0."""
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def banned_ngram_tokens(ids: Sequence[int], n: int) -> list[int]:
    """The tokens that would repeat an n-gram of `ids`: those that followed an earlier occurrence of its last
    n - 1 tokens.

    >>> banned_ngram_tokens([5, 6, 7, 5, 6], 3)
    [7]
    >>> banned_ngram_tokens([5, 6, 7], 1)
    [5, 6, 7]
    """
    if len(ids) + 1 < n:
        return []
    key = tuple(ids[len(ids) - n + 1 :]) if n > 1 else ()
    return [ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i : i + n - 1]) == key]


def process_scores(scores: np.ndarray, sequences: np.ndarray, step: int, settings: GenerationSettings) -> np.ndarray:
    """The rules that depend on the ids so far, in Hugging Face's order: repetition penalty, no-repeat n-grams,
    minimum length. `scores` [rows, vocab] (float32) belong to `sequences` [rows, length] (prompt included, padding
    too, as Hugging Face counts them) at 0-based decoding `step`; returns new scores."""
    scores = scores.copy()
    if settings.repetition_penalty != 1.0:
        seen = np.take_along_axis(scores, sequences, axis=1)
        penalised = np.where(seen < 0, seen * settings.repetition_penalty, seen / settings.repetition_penalty)
        np.put_along_axis(scores, sequences, penalised, axis=1)
    if settings.no_repeat_ngram_size:
        for row, ids in enumerate(sequences.tolist()):
            scores[row, banned_ngram_tokens(ids, settings.no_repeat_ngram_size)] = -np.inf
    banned = settings.banned_ids(step)
    if banned:
        scores[:, list(banned)] = -np.inf
    return scores


def warp_for_sampling(scores: np.ndarray, settings: GenerationSettings) -> np.ndarray:
    """scores / temperature, then everything outside the top_k and outside the top_p nucleus set to -inf (the
    most likely token always stays).

    >>> s = GenerationSettings(max_new_tokens=1, do_sample=True, top_k=2)
    >>> warp_for_sampling(np.array([[1.0, 3.0, 2.0, 0.0]], np.float32), s).tolist()
    [[-inf, 3.0, 2.0, -inf]]
    >>> s = GenerationSettings(max_new_tokens=1, do_sample=True, top_p=0.5)
    >>> warp_for_sampling(np.array([[0.0, 9.0, 1.0, 0.0]], np.float32), s).tolist()
    [[-inf, 9.0, -inf, -inf]]
    """
    if settings.temperature != 1.0:
        scores = scores / np.float32(settings.temperature)
    vocab = scores.shape[-1]
    if settings.top_k is not None and settings.top_k < vocab:
        kth = np.partition(scores, vocab - settings.top_k, axis=-1)[:, vocab - settings.top_k, None]
        scores = np.where(scores < kth, -np.inf, scores).astype(np.float32)
    if settings.top_p is not None:
        order = np.argsort(scores, axis=-1, kind="stable")  # ascending: the least likely first
        mass_up_to = np.cumsum(softmax(np.take_along_axis(scores, order, axis=-1)), axis=-1)
        drop_sorted = mass_up_to <= np.float32(1 - settings.top_p)
        drop_sorted[:, -1] = False
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        scores = np.where(drop, -np.inf, scores).astype(np.float32)
    return scores


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values of each row, largest first (ties: the lower index first)."""
    if k < values.shape[-1]:
        candidates = np.argpartition(-values, k - 1, axis=-1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(values.shape[-1]), values.shape)
    chosen = np.take_along_axis(values, candidates, axis=-1)
    order = np.lexsort((candidates, -chosen), axis=-1)
    return np.take_along_axis(candidates, order, axis=-1)


# -- the decoding loops --------------------------------------------------------------------------------------


class DecodingBackend:
    """The framework half of one `generate` call: the model, its key/value cache and the random generator stay
    inside; ids, positions, masks and scores cross as numpy arrays."""

    def logits(
        self,
        input_ids: np.ndarray,
        position_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None,
    ) -> np.ndarray:
        """Run the model over `input_ids` [rows, new] at `position_ids` [rows, new], attending to
        `attention_mask` [rows, cached + new] and to the cache of the steps before, which it then extends (with
        use_cache); return the last position's logits, [rows, vocab] float32."""
        raise NotImplementedError

    def greedy_tokens(
        self,
        input_ids: np.ndarray,
        position_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None,
        banned: tuple[int, ...],
    ) -> np.ndarray:
        """One step as `logits`, returning every row's float32 argmax instead, never one of `banned`; a backend
        may choose it without computing all the logits."""
        scores = self.logits(input_ids, position_ids, attention_mask, token_type_ids)
        scores[:, list(banned)] = -np.inf
        return scores.argmax(axis=-1)

    def sample(self, scores: np.ndarray) -> np.ndarray:
        """One draw per row from softmax(scores) [rows, vocab] (-inf: never), with the framework's generator."""
        raise NotImplementedError

    def select(self, rows: np.ndarray) -> None:
        """Keep the cache rows (and cross-attention inputs) `rows`, in that order: beams reordered, prompts
        repeated."""
        raise NotImplementedError

    def to_tensor(self, array: np.ndarray) -> Any:
        """`array` as a tensor of the framework, where the prompt is, of the array's dtype."""
        raise NotImplementedError


class _ModelInputs:
    """What the model sees besides the ids: every row's attention mask, positions and token types so far, and how
    much of it the backend's cache already holds."""

    def __init__(self, real_tokens: np.ndarray, token_type_ids: np.ndarray | None, use_cache: bool):
        self.mask = real_tokens.astype(np.int64)
        self.positions = prompt_positions(real_tokens)
        self.token_types = token_type_ids
        self.use_cache = use_cache
        self.cached = 0

    def step(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """The arguments of the next model step for `ids` [rows, length] so far: the new columns (everything
        without a cache), their positions, the whole mask, their token types."""
        start = self.cached if self.use_cache else 0
        self.cached = ids.shape[1]
        types = None if self.token_types is None else self.token_types[:, start:]
        return ids[:, start:], self.positions[:, start:], self.mask, types

    def grow(self) -> None:
        """One more column: a real token, at the next position, of the row's last type."""
        rows = len(self.mask)
        self.mask = np.concatenate([self.mask, np.ones((rows, 1), self.mask.dtype)], axis=1)
        self.positions = np.concatenate([self.positions, self.positions[:, -1:] + 1], axis=1)
        if self.token_types is not None:
            self.token_types = np.concatenate([self.token_types, self.token_types[:, -1:]], axis=1)

    def select(self, rows: np.ndarray) -> None:
        self.mask, self.positions = self.mask[rows], self.positions[rows]
        if self.token_types is not None:
            self.token_types = self.token_types[rows]


@dataclass
class Decoded:
    """What `decode` produced, as numpy arrays: the sequences (prompt included) and, when asked for, each step's
    processed scores and raw logits; beam search adds each returned sequence's score and its beam at each step."""

    sequences: np.ndarray
    scores: list[np.ndarray] | None = None
    logits: list[np.ndarray] | None = None
    sequences_scores: np.ndarray | None = None
    beam_indices: np.ndarray | None = None


def _first_step(
    backend: DecodingBackend, inputs: _ModelInputs, prompt_ids: np.ndarray, copies: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run the prompt once, then repeat every row `copies` times (logits, cache, inputs): (logits, sequences)."""
    logits = backend.logits(*inputs.step(prompt_ids))
    sequences = prompt_ids
    if copies > 1:
        rows = np.repeat(np.arange(len(prompt_ids)), copies)
        backend.select(rows)
        inputs.select(rows)
        logits, sequences = logits[rows], sequences[rows]
    return logits, sequences


def _greedy_or_sample(
    backend: DecodingBackend, settings: GenerationSettings, inputs: _ModelInputs, prompt_ids: np.ndarray
) -> Decoded:
    """Greedy decoding and sampling, one token per row per step; finished rows get the pad id."""
    keep_scores = settings.return_dict_in_generate and settings.output_scores
    keep_logits = settings.return_dict_in_generate and settings.output_logits
    scores_kept: list[np.ndarray] = []
    logits_kept: list[np.ndarray] = []
    eos = np.asarray(settings.eos_token_ids, np.int64)
    sequences = prompt_ids
    unfinished = np.ones(len(sequences), bool)
    for step in range(settings.max_new_tokens):
        if settings.argmax_only:
            tokens = backend.greedy_tokens(*inputs.step(sequences), settings.banned_ids(step))
        else:
            if step == 0:
                logits, sequences = _first_step(backend, inputs, sequences, settings.copies)
                unfinished = np.ones(len(sequences), bool)
            else:
                logits = backend.logits(*inputs.step(sequences))
            scores = process_scores(logits, sequences, step, settings)
            if settings.do_sample:
                scores = warp_for_sampling(scores, settings)
            if keep_scores:
                scores_kept.append(scores)
            if keep_logits:
                logits_kept.append(logits)
            tokens = backend.sample(scores) if settings.do_sample else scores.argmax(axis=-1)
        tokens = np.asarray(tokens, np.int64)
        if len(eos):
            tokens = np.where(unfinished, tokens, settings.pad_token_id)
            unfinished &= ~np.isin(tokens, eos)
        sequences = np.concatenate([sequences, tokens[:, None]], axis=1)
        inputs.grow()
        if not unfinished.any():
            break
    return Decoded(sequences, scores_kept if keep_scores else None, logits_kept if keep_logits else None)


def _beam_fill(settings: GenerationSettings) -> int:
    """What fills beam-search sequences shorter than the longest returned one: Hugging Face's value, the pad id,
    or the first end-of-sequence id when the pad id is missing or 0 (it tests the id's truth), or -1 without
    end-of-sequence ids."""
    if not settings.eos_token_ids:
        return -1
    return settings.pad_token_id or settings.eos_token_ids[0]


def _beam_search(
    backend: DecodingBackend, settings: GenerationSettings, inputs: _ModelInputs, prompt_ids: np.ndarray
) -> Decoded:
    """Hugging Face's beam search (transformers >= 4.50, the vectorised one), step for step, so that ties and
    early stops fall the same way. Per prompt: `beams` running beams, `beams` finished hypotheses."""
    batch, prompt_length = prompt_ids.shape
    beams = settings.num_beams
    max_length = prompt_length + settings.max_new_tokens
    eos = np.asarray(settings.eos_token_ids, np.int64)
    # Enough candidates that `beams` of them still run when the best ones all end.
    candidates = max(2, 1 + len(eos)) * beams
    among_best = np.arange(candidates) < beams
    penalty, early_stopping = settings.length_penalty, settings.early_stopping

    running = np.full((batch, beams, max_length), _beam_fill(settings), np.int64)
    running[:, :, :prompt_length] = prompt_ids[:, None, :]
    finished = running.copy()
    running_scores = np.zeros((batch, beams), np.float32)
    running_scores[:, 1:] = _NEGATIVE  # the copies of a prompt are one beam until they differ
    finished_scores = np.full((batch, beams), _NEGATIVE, np.float32)
    is_finished = np.zeros((batch, beams), bool)
    improvable = np.ones((batch, 1), bool)
    running_origins = np.full((batch, beams, settings.max_new_tokens), -1, np.int32)
    finished_origins = running_origins.copy()
    keep_scores = settings.return_dict_in_generate and settings.output_scores
    keep_logits = settings.return_dict_in_generate and settings.output_logits
    scores_kept: list[np.ndarray] = []
    logits_kept: list[np.ndarray] = []
    length = prompt_length
    while True:
        step = length - prompt_length
        flat = running[:, :, :length].reshape(batch * beams, length)
        if step == 0:
            logits, _ = _first_step(backend, inputs, prompt_ids, beams)
        else:
            logits = backend.logits(*inputs.step(flat))
        log_probs = process_scores(log_softmax(logits), flat, step, settings)
        if keep_scores:
            scores_kept.append(log_probs)
        if keep_logits:
            logits_kept.append(logits)
        vocab = log_probs.shape[-1]
        totals = (log_probs.reshape(batch, beams, vocab) + running_scores[:, :, None]).reshape(batch, beams * vocab)

        # The best continuations of all beams together.
        best = _top_k(totals, candidates)
        best_totals = np.take_along_axis(totals, best, axis=1)
        from_beam, tokens = best // vocab, best % vocab
        grown = np.take_along_axis(running, from_beam[:, :, None], axis=1)
        grown[:, :, length] = tokens
        grown_origins = np.take_along_axis(running_origins, from_beam[:, :, None], axis=1)
        grown_origins[:, :, step] = from_beam + np.arange(batch)[:, None] * beams
        ends = np.isin(tokens, eos) | (length + 1 >= max_length)

        # The best `beams` that did not end run on.
        alive = best_totals + ends.astype(np.float32) * _NEGATIVE
        keep = _top_k(alive, beams)
        running = np.take_along_axis(grown, keep[:, :, None], axis=1)
        running_scores = np.take_along_axis(alive, keep, axis=1)
        running_origins = np.take_along_axis(grown_origins, keep[:, :, None], axis=1)

        # Those among the best `beams` that ended compete with the finished hypotheses.
        ended = ends & among_best[None, :]
        hypothesis = best_totals / ((length + 1 - prompt_length) ** penalty)
        hypothesis += (is_finished.all(axis=-1, keepdims=True) & (early_stopping is True)).astype(np.float32) * (
            _NEGATIVE
        )
        hypothesis += (~improvable).astype(np.float32) * _NEGATIVE
        hypothesis += (~ended).astype(np.float32) * _NEGATIVE
        merged_scores = np.concatenate([finished_scores, hypothesis], axis=1)
        top = _top_k(merged_scores, beams)
        finished = np.take_along_axis(np.concatenate([finished, grown], axis=1), top[:, :, None], axis=1)
        finished_scores = np.take_along_axis(merged_scores, top, axis=1)
        finished_origins = np.take_along_axis(
            np.concatenate([finished_origins, grown_origins], axis=1), top[:, :, None], axis=1
        )
        is_finished = np.take_along_axis(np.concatenate([is_finished, ended], axis=1), top, axis=1)

        backend.select(running_origins[:, :, step].reshape(-1).astype(np.int64))
        inputs.grow()
        length += 1

        # Can a running beam still beat the worst finished hypothesis? (early_stopping=False: judged at the
        # current length; "never" with a positive length_penalty: at the longest possible one.)
        if early_stopping == "never" and penalty > 0.0:
            best_length = max_length - prompt_length
        else:
            best_length = length - prompt_length
        best_possible = running_scores[:, :1] / (best_length**penalty)
        worst_finished = np.where(is_finished, finished_scores.min(axis=1, keepdims=True), _NEGATIVE)
        improvable = improvable & (best_possible > worst_finished).any(axis=-1, keepdims=True)
        all_done = is_finished.all() and early_stopping is True
        if not improvable.any() or all_done or ends.all():
            break

    n = settings.num_return_sequences
    sequences = finished[:, :n].reshape(batch * n, max_length)
    origins = finished_origins[:, :n].reshape(batch * n, settings.max_new_tokens)
    generated = int((origins != -1).sum(axis=1).max())
    return Decoded(
        sequences[:, : prompt_length + generated],
        scores_kept if keep_scores else None,
        logits_kept if keep_logits else None,
        finished_scores[:, :n].reshape(-1),
        origins[:, :generated],
    )


def decode(backend: DecodingBackend, settings: GenerationSettings, prompt: Prompt) -> Decoded:
    """Continue every row of the left-padded `prompt` by the rules of this module."""
    prompt_ids = prompt.ids.astype(np.int64)
    real = np.ones(prompt_ids.shape, bool) if prompt.real_tokens is None else prompt.real_tokens
    types = None if prompt.token_type_ids is None else prompt.token_type_ids.astype(np.int64)
    inputs = _ModelInputs(real, types, settings.use_cache)
    if settings.num_beams > 1:
        return _beam_search(backend, settings, inputs, prompt_ids)
    return _greedy_or_sample(backend, settings, inputs, prompt_ids)


# -- outputs ------------------------------------------------------------------------------------------------


class GenerateDecoderOnlyOutput(ModelOutput):
    """`generate(..., return_dict_in_generate=True)` of greedy decoding and sampling: `sequences`
    [rows, length]; with output_scores, `scores`, one [rows, vocab] tensor per step (processed: what the token
    was chosen from); with output_logits, `logits`, the raw logits likewise."""

    fields = ("sequences", "scores", "logits", "attentions", "hidden_states", "past_key_values")


class GenerateBeamDecoderOnlyOutput(ModelOutput):
    """`generate(..., num_beams=k, return_dict_in_generate=True)`: `sequences` [batch * num_return_sequences,
    length]; with output_scores, `sequences_scores` (each sequence's length-penalised log-probability) and
    `scores` (each step's processed log-probabilities, [batch * num_beams, vocab]); `beam_indices`, the beam each
    returned token came from."""

    fields = (
        "sequences",
        "sequences_scores",
        "scores",
        "logits",
        "beam_indices",
        "attentions",
        "hidden_states",
        "past_key_values",
    )


# -- the method ---------------------------------------------------------------------------------------------

# The arguments of `generate` that are tensors (or make them), handled apart from the settings.
_TENSOR_ARGUMENTS = (
    "input_ids",
    "inputs",
    "attention_mask",
    "token_type_ids",
    "bos_token_id",
    "generator",
    "encoder_hidden_states",
    "encoder_attention_mask",
)


class GenerationMixin:
    """`generate` for a causal language model whose config has is_decoder=True, in any framework.

    A backend's mixin supplies `_prompt` (its tensors in, numpy facts out) and `_decoding_backend`, and names its
    random generator class.
    """

    _generator_class: ClassVar[type]
    _generator_class_name: ClassVar[str]

    def generate(
        self,
        input_ids: Any = None,
        *,
        attention_mask: Any = None,
        token_type_ids: Any = None,
        max_new_tokens: int | None = None,
        max_length: int | None = None,
        min_new_tokens: int | None = None,
        min_length: int | None = None,
        do_sample: bool = False,
        temperature: float | None = 1.0,
        top_k: int | None = 50,
        top_p: float | None = 1.0,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        early_stopping: bool | str = False,
        num_return_sequences: int = 1,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        use_cache: bool = True,
        return_dict_in_generate: bool = False,
        output_scores: bool = False,
        output_logits: bool = False,
        seed: int | None = None,
        generator: Any = None,
        encoder_hidden_states: Any = None,
        encoder_attention_mask: Any = None,
        inputs: Any = None,
        **unknown: Any,
    ) -> Any:
        """Continue each prompt, as Hugging Face's `generate` does; returns [rows, prompt + new] ids, a tensor of
        the model's framework with the prompt's dtype (or, with `return_dict_in_generate=True`, a
        `GenerateDecoderOnlyOutput` / `GenerateBeamDecoderOnlyOutput`).

        `model.generate(**tokenizer(texts, padding=True, return_tensors=...))` works with a left-padding
        tokenizer: prompts of different lengths go in one batch LEFT-padded, with `attention_mask` (1 = token,
        0 = padding; inferred from `pad_token_id` when absent), and positions count real tokens only, so each row
        continues exactly as it would alone. Greedy by default; `num_beams > 1` searches beams (`length_penalty`,
        `early_stopping`, `num_return_sequences`); `do_sample=True` samples from softmax(scores / temperature)
        within the `top_k` (default 50) and the `top_p` nucleus, drawing from `generator` (a torch.Generator in
        PyTorch, a tf.random.Generator in TensorFlow), or one made from `seed`, or the framework's global one.
        `repetition_penalty` and `no_repeat_ngram_size` discourage repeats.

        Length: `max_new_tokens`, else `max_length` (prompt included), else 20 new tokens; no end-of-sequence id
        before `min_new_tokens` (else `min_length`, prompt included). A row ends at an `eos_token_id` (default
        config.eos_token_id; a list ends at any of them, an empty list never), which it keeps; its later positions
        hold `pad_token_id` (default config.pad_token_id).

        For a decoder with cross-attention, `encoder_hidden_states` [batch, source, hidden] (and its
        `encoder_attention_mask`) are attended to at every step; their keys and values are computed once.
        Unknown keyword arguments are a TypeError; bad values a `GenerationError` naming them.

        >>> ids = model.generate(**tokenizer(texts, padding=True, return_tensors="pt"), num_beams=4)  # doctest: +SKIP
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "unknown", "__class__")}
        check_unknown_arguments(unknown, list(arguments))
        if inputs is not None:
            if input_ids is not None:
                raise GenerationError("pass the prompt once, as input_ids or as inputs, not both")
            input_ids = inputs
        if input_ids is None:
            input_ids = self._start_ids(bos_token_id, encoder_hidden_states)
        prompt = self._prompt(input_ids, attention_mask, token_type_ids)
        settings = check_generate_call(
            self.config,
            prompt,
            generator,
            self._generator_class,
            self._generator_class_name,
            **{name: value for name, value in arguments.items() if name not in _TENSOR_ARGUMENTS},
        )
        backend = self._decoding_backend(
            prompt.tensor, settings, generator, encoder_hidden_states, encoder_attention_mask
        )
        decoded = decode(backend, settings, prompt)
        sequences = backend.to_tensor(decoded.sequences.astype(prompt.ids.dtype))
        if not settings.return_dict_in_generate:
            return sequences

        def tensors(arrays: list[np.ndarray] | None) -> tuple | None:
            return None if arrays is None else tuple(backend.to_tensor(a) for a in arrays)

        if settings.num_beams == 1:
            return GenerateDecoderOnlyOutput(
                sequences=sequences, scores=tensors(decoded.scores), logits=tensors(decoded.logits)
            )
        return GenerateBeamDecoderOnlyOutput(
            sequences=sequences,
            sequences_scores=backend.to_tensor(decoded.sequences_scores) if settings.output_scores else None,
            scores=tensors(decoded.scores),
            logits=tensors(decoded.logits),
            beam_indices=backend.to_tensor(decoded.beam_indices),  # int32, as Hugging Face's
        )

    def _start_ids(self, bos_token_id: Any, encoder_hidden_states: Any) -> np.ndarray:
        """Without a prompt, Hugging Face starts every row from the beginning-of-sequence id (one row, or one per
        encoded source)."""
        bos = self.config.bos_token_id if bos_token_id is None else bos_token_id
        if bos is None:
            raise GenerationError("without input_ids, generate starts from bos_token_id, which is not set")
        bos = _token_id("bos_token_id", bos, self.config.vocab_size)
        rows = 1 if encoder_hidden_states is None else int(encoder_hidden_states.shape[0])
        return np.full((rows, 1), bos, np.int64)

    def _prompt(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Prompt:
        """The prompt as numpy facts (ids, dtype kind, attention_mask != 0 or None, token types or None)."""
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
