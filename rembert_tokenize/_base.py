"""What both RemBERT tokenizers share: arguments, special tokens, vocabulary, the call API, decoding, saving.

A subclass only turns texts into token ids without special tokens (``_encode_texts``), or into ids with
their alignment (``_align_texts``: offsets, word indices, token strings), looks pieces up, and says how it
is saved. Batching, truncation windows, padding and tensors come from :mod:`rembert_tokenize._batch`,
and every field of every row is laid out there once for both tokenizers.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rembert_spec import hub
from rembert_tokenize import _batch
from rembert_tokenize._added import SPECIAL_TOKEN_NAMES, AddedToken, AddedVocabulary, special_token
from rembert_tokenize._batch import Assembly, BatchOptions, Segments
from rembert_tokenize._inputs import Inputs, parse_inputs
from rembert_tokenize._pad import PadValues, pad_features
from rembert_tokenize._pipeline import metaspace_decode
from rembert_tokenize.encoding import BatchEncoding, Encoding
from rembert_tokenize.errors import TokenizerFileError

logger = logging.getLogger(__name__)

VOCAB_FILE = "sentencepiece.model"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
# What from_pretrained fetches from a Hugging Face Hub repo (each if the repo has it).
TOKENIZER_FILES = (CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_FILE, VOCAB_FILE)

# tokenizer_config.json keys that describe the file rather than the tokenizer.
_IGNORED_CONFIG_KEYS = {
    "tokenizer_class",
    "auto_map",
    "name_or_path",
    "extra_special_tokens",
    "tokenizer_file",
    "vocab_file",
    "processor_class",
}
# Keyword arguments of the constructors besides the ones they spell out.
_INIT_OPTIONS = {
    "model_max_length",
    "padding_side",
    "truncation_side",
    "clean_up_tokenization_spaces",
    "additional_special_tokens",
    "added_tokens_decoder",
    "model_input_names",
}
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]  # fmt: skip


def read_json(path: Path) -> dict:
    """Load a JSON object; a broken file raises TokenizerFileError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerFileError(str(path), f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TokenizerFileError(str(path), "expected a JSON object")
    return data


def write_json(path: Path, data: dict) -> None:
    """Write a JSON file atomically (a failed write leaves the previous file, never half of one)."""
    from rembert_spec.atomic import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def check_init_kwargs(cls: type, kwargs: Mapping[str, Any]) -> None:
    """Unknown keyword arguments are a TypeError naming them (a typo must not pass silently)."""
    unknown = sorted(set(kwargs) - _INIT_OPTIONS)
    if unknown:
        raise TypeError(
            f"{cls.__name__} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts its named arguments and {sorted(_INIT_OPTIONS)}"
        )


class RemBertTokenizerBase:
    """Common part of :class:`RemBertTokenizer` and :class:`RemBertTokenizerFast` (not used directly)."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    is_fast = False

    def __init__(
        self,
        do_lower_case: bool = True,
        remove_space: bool = True,
        keep_accents: bool = False,
        bos_token: str | AddedToken = "[CLS]",
        eos_token: str | AddedToken = "[SEP]",
        unk_token: str | AddedToken = "<unk>",
        sep_token: str | AddedToken = "[SEP]",
        pad_token: str | AddedToken = "<pad>",
        cls_token: str | AddedToken = "[CLS]",
        mask_token: str | AddedToken = "[MASK]",
        *,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        additional_special_tokens: Sequence[str | AddedToken] | None = None,
        added_tokens_decoder: Mapping[int | str, Any] | None = None,
        model_input_names: Sequence[str] | None = None,
        _config_extras: Mapping[str, Any] | None = None,
        **unknown: Any,
    ):
        check_init_kwargs(type(self), unknown)
        self.padding_side = _side(padding_side, "padding_side")
        self.truncation_side = _side(truncation_side, "truncation_side")
        self.do_lower_case = bool(do_lower_case)
        self.remove_space = bool(remove_space)
        self.keep_accents = bool(keep_accents)
        self.model_max_length = _batch.VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        if model_input_names is not None:
            self.model_input_names = list(model_input_names)
        self.pad_token_type_id = 0
        # Keys of tokenizer_config.json that this library does not use: kept, and saved again.
        self.extra_init_kwargs = {k: v for k, v in (_config_extras or {}).items() if k not in _IGNORED_CONFIG_KEYS}
        values = (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token)
        given = dict(zip(SPECIAL_TOKEN_NAMES, values, strict=True))
        self._special = {name: special_token(name, value) for name, value in given.items() if value is not None}
        self._additional = [AddedToken.coerce(t, special=True) for t in additional_special_tokens or ()]
        self.added = AddedVocabulary(self.vocab_size)
        self.added.add_tokens(self._initial_added_tokens(), self._model_piece_to_id)
        self._vocabulary_changed([])
        self._add_to_vocabulary(self._tokens_to_register(added_tokens_decoder))

    def _tokens_to_register(self, added_tokens_decoder: Mapping[int | str, Any] | None) -> list[AddedToken]:
        """What Hugging Face's fast tokenizer adds once it is built: every ``added_tokens_decoder`` entry
        (repeats are skipped by the vocabulary) and each special token that is not in the table yet (one
        given as a token object always); all of them special if their text is a special token's."""
        entries = sorted((int(index), value) for index, value in (added_tokens_decoder or {}).items())
        tokens = [AddedToken.parse(value) for _, value in entries]
        present = set(self.added.by_content) | {token.content for token in tokens}
        seen: set[str] = set()
        roles = [self._special[name] for name in SPECIAL_TOKEN_NAMES if name in self._special]
        for token, given_as_object in roles + [(token, True) for token in self._additional]:
            if token.content in seen:
                continue
            seen.add(token.content)
            if (given_as_object or token.content not in present) and token not in tokens:
                tokens.append(token)
        specials = set(self.all_special_tokens)
        return [AddedToken.coerce(token, special=token.special or token.content in specials) for token in tokens]

    def _add_to_vocabulary(self, tokens: list[AddedToken]) -> int:
        """One ``add_tokens`` step of the vocabulary, for both the Python table and the subclass's model."""
        if not tokens:
            return 0
        added = self.added.add_tokens(tokens, self._model_piece_to_id)
        self._vocabulary_changed(tokens)
        return added

    # --- hooks for the subclasses ---------------------------------------------------------------

    def _initial_added_tokens(self) -> list[AddedToken]:
        """The added tokens the tokenizer starts from, in id order (step 1 of :mod:`rembert_tokenize._added`)."""
        raise NotImplementedError

    def _model_piece_to_id(self, piece: str) -> int | None:
        raise NotImplementedError

    def _model_id_to_piece(self, index: int) -> str | None:
        raise NotImplementedError

    def _vocabulary_changed(self, tokens: list[AddedToken]) -> None:
        """Called after ``tokens`` went into the added-token table in one step (``[]`` after step 1)."""
        raise NotImplementedError

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def _align_texts(self, texts: list[str], tokens: bool = True) -> Segments:
        """Ids, character offsets, word indices and (if ``tokens``) token strings of each text, without
        special tokens."""
        raise NotImplementedError

    def _tokenize_text(self, text: str) -> list[str]:
        raise NotImplementedError

    def _model_files(self, directory: Path, prefix: str) -> list[str]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        """Number of pieces in the sentencepiece model (added tokens not counted)."""
        raise NotImplementedError

    # --- special tokens -------------------------------------------------------------------------

    def _special_content(self, name: str) -> str | None:
        entry = self._special.get(name)
        return None if entry is None else entry[0].content

    def _set_special(self, name: str, value: str | AddedToken | None) -> None:
        """``tokenizer.pad_token = ...``: change which token plays the role (the vocabulary is unchanged,
        as in Hugging Face; use ``add_special_tokens`` to add a new one)."""
        if value is None:
            self._special.pop(name, None)
        elif isinstance(value, str):
            self._special[name] = (AddedToken(value, special=True), False)
        else:
            self._special[name] = (AddedToken.coerce(value, special=True), True)

    def _special_id(self, name: str) -> int | None:
        content = self._special_content(name)
        return None if content is None else self.convert_tokens_to_ids(content)

    @property
    def _pad_token(self) -> str | None:
        # Hugging Face's data collators read this private name to decide whether padding is possible.
        return self.pad_token

    @property
    def additional_special_tokens(self) -> list[str]:
        return [t.content for t in self._additional]

    @additional_special_tokens.setter
    def additional_special_tokens(self, tokens: Sequence[str | AddedToken] | None) -> None:
        self._additional = [AddedToken.coerce(t, special=True) for t in tokens or ()]

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.additional_special_tokens)

    @property
    def special_tokens_map(self) -> dict[str, Any]:
        """Special token names and their text, e.g. ``{"cls_token": "[CLS]", ...}``."""
        names = [name for name in SPECIAL_TOKEN_NAMES if name in self._special]
        tokens: dict[str, Any] = {name: self._special_content(name) for name in names}
        if self._additional:
            tokens["additional_special_tokens"] = [t.content for t in self._additional]
        return tokens

    @property
    def all_special_tokens(self) -> list[str]:
        """The text of every special token, without repeats."""
        names = [self._special_content(name) for name in SPECIAL_TOKEN_NAMES if name in self._special]
        return list(dict.fromkeys(names + [t.content for t in self._additional]))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """The added-token table: id -> token with its matching flags."""
        return dict(self.added.tokens_in_id_order())

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """The added-token table: text -> id."""
        return {token.content: index for index, token in self.added.tokens_in_id_order()}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    # --- vocabulary -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Size of the full vocabulary: the model's pieces plus the added tokens beyond them."""
        return self.vocab_size + self.added.extra_size

    def get_vocab(self) -> dict[str, int]:
        """Every piece and added token, mapped to its id."""
        vocab = {self._model_id_to_piece(i): i for i in range(self.vocab_size)}
        vocab.update(self.added.by_content)
        return vocab

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens matched whole in text; returns how many were added (repeats are not counted).

        A new token gets the next id after the vocabulary (``len(tokenizer)`` grows); a token that is
        already a piece keeps its id. Text tokens are matched after normalisation (so ``"Hello"`` also
        matches ``"hello"`` with ``do_lower_case``); ``special_tokens=True`` tokens are matched as written
        and skipped by ``decode(..., skip_special_tokens=True)``.
        """
        if not new_tokens:
            return 0
        if isinstance(new_tokens, (str, AddedToken)) or not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        tokens = [AddedToken.coerce(token, special=True if special_tokens else None) for token in new_tokens]
        return self._add_to_vocabulary(tokens)

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Add special tokens by role: ``{"pad_token": "[PAD]"}`` or ``{"additional_special_tokens": [...]}``.

        The tokens are added to the vocabulary as special tokens and take their role; returns how many
        were added. ``additional_special_tokens`` replaces the current list unless
        ``replace_additional_special_tokens=False`` (the replaced tokens stay in the vocabulary).
        """
        to_add: list[AddedToken] = []
        for name, value in special_tokens_dict.items():
            if name == "additional_special_tokens":
                if isinstance(value, (str, AddedToken)) or not isinstance(value, (list, tuple)):
                    raise TypeError("additional_special_tokens must be a list of str or AddedToken")
                tokens = [AddedToken.coerce(t, special=True) for t in value]
                if not replace_additional_special_tokens:
                    known = set(self.additional_special_tokens)
                    tokens = [t for t in tokens if t.content not in known]
                    self._additional = self._additional + tokens
                elif tokens:
                    self._additional = tokens
                to_add += tokens
            elif name in SPECIAL_TOKEN_NAMES:
                if not isinstance(value, (str, AddedToken)) and not hasattr(value, "content"):
                    raise TypeError(f"{name} must be a str or an AddedToken, got {type(value).__name__}")
                token = AddedToken.coerce(value, special=True)
                self._special[name] = (token, True)
                if token not in to_add:
                    to_add.append(token)
            else:
                raise ValueError(
                    f"{name!r} is not a special token role; use one of {list(SPECIAL_TOKEN_NAMES)} or "
                    "'additional_special_tokens' (add_tokens adds plain tokens)"
                )
        return self.add_tokens(to_add, special_tokens=True)

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Id of a token (or ids of a list of tokens); unknown tokens get the unknown id."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str) -> int:
        index = self.added.by_content.get(token)
        if index is None:
            index = self._model_piece_to_id(token)
        if index is None:
            index = self.added.by_content.get(self.unk_token)
            if index is None:
                index = self._model_piece_to_id(self.unk_token)
        return index

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False):
        """Token text of an id (or of a list of ids); ids outside the vocabulary give None."""
        if isinstance(ids, (int, np.integer)):
            return self._id_to_token(int(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._id_to_token(i) for i in _batch.to_python_ids(ids) if i not in skip]

    def _id_to_token(self, index: int) -> str | None:
        token = self.added.by_id.get(index)
        if token is not None:
            return token.content
        return self._model_id_to_piece(index) if 0 <= index < self.vocab_size else None

    # --- sequences with special tokens ----------------------------------------------------------

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where ``build_inputs_with_special_tokens`` puts (or has put) a special token, else 0."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError(
                    "You should not supply a second sequence if the provided sequence of ids is already "
                    "formatted with special tokens for the model."
                )
            marks = {self.cls_token_id, self.sep_token_id}
            return [1 if token in marks else 0 for token in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 for ``[CLS] A [SEP]``, then 1 for ``B [SEP]``."""
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # --- encoding -------------------------------------------------------------------------------

    def __call__(
        self,
        text: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_pair: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Tokenize a text, a pair, or a batch of either, like Hugging Face's fast tokenizers.

        ``text`` is a string, a list of strings, or a list of ``(text, pair)`` tuples (with
        ``is_split_into_words=True``: a list of words, or a list of such lists); ``text_pair`` gives the
        second texts separately. ``padding`` is ``True``/``"longest"``, ``"max_length"`` or ``False``;
        ``truncation`` is ``True``/``"longest_first"``, ``"only_first"``, ``"only_second"`` or ``False``.
        With ``return_overflowing_tokens=True`` the truncated tokens are not dropped but give more rows
        (windows overlapping by ``stride`` tokens) and ``overflow_to_sample_mapping`` says which input each
        row comes from. ``return_tensors`` is None (lists), ``"np"``, ``"pt"`` or ``"tf"``.
        """
        inputs = parse_inputs(text, text_pair, is_split_into_words)
        options = BatchOptions.resolve(padding, truncation, max_length, self.model_max_length, pad_to_multiple_of)
        side = _side(padding_side or self.padding_side, "padding_side")
        kind = None if return_tensors is None else _batch.tensor_type(return_tensors)
        if options.padding != "do_not_pad" and self.pad_token_id is None:
            raise ValueError("padding needs a pad token: set tokenizer.pad_token, or add one with add_special_tokens")
        if add_special_tokens and (self.cls_token_id is None or self.sep_token_id is None):
            raise ValueError("add_special_tokens=True needs a cls_token and a sep_token")
        single_budget = None if options.max_length is None else options.max_length - self.num_special_tokens_to_add()
        if options.truncation != "do_not_truncate" and single_budget is not None and 0 <= single_budget < stride:
            # Hugging Face's fast tokenizer refuses this when truncation is set up, whatever the texts.
            raise ValueError(
                f"stride ({stride}) must be smaller than the number of tokens a truncated text keeps per row "
                f"(at most max_length - {self.num_special_tokens_to_add()} = {single_budget}); use a smaller stride"
            )
        with _batch.gc_paused():
            first = self._segments(inputs.first, inputs.split, return_offsets_mapping)
            second = None
            if inputs.second is not None:
                second = self._segments(inputs.second, inputs.split, return_offsets_mapping)
            n_special = self.num_special_tokens_to_add(second is not None) if add_special_tokens else 0
            plan = _batch.plan_rows(first.lengths, None if second is None else second.lengths, options, n_special,
                                    int(stride), return_overflowing_tokens, self.truncation_side)  # fmt: skip
            content = plan.first_length + (0 if second is None else plan.second_length) + n_special
            assembly = Assembly.build(plan, len(first.ids), add_special_tokens, second is not None,
                                      options.width(content), side)  # fmt: skip
            texts = first.then(second)
            fields = self._fields(assembly, texts, return_token_type_ids, return_attention_mask,
                                  return_special_tokens_mask, return_offsets_mapping)  # fmt: skip
            data = {name: _convert(values, assembly, kind) for name, values in fields.items()}
            if return_length:
                data["length"] = _convert_1d(assembly.lengths, kind)
            if return_overflowing_tokens:
                data["overflow_to_sample_mapping"] = _convert_1d(plan.sample, kind)
        if not inputs.batched and kind is None and not return_overflowing_tokens:
            # One text in, one row out, without the batch axis (as Hugging Face's fast tokenizers do).
            data = {key: value[0] if value and isinstance(value[0], list) else value for key, value in data.items()}

        def make_encodings() -> list[Encoding]:
            with _batch.gc_paused():
                return self._encodings(inputs, texts, assembly, plan.sample)

        return BatchEncoding._from_call(data, make_encodings, 1 if second is None else 2, self.is_fast)

    encode_plus = __call__

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence, **kwargs: Any) -> BatchEncoding:
        """``tokenizer(batch, ...)`` under Hugging Face's older name."""
        return self(batch_text_or_text_pairs, **kwargs)

    def _segments(self, sequences: list, split: bool, align: bool, tokens: bool = False) -> Segments:
        """The tokens of each text (or of each list of words, when ``split``): ids, and with ``align`` their
        offsets and word indices, and with ``tokens`` their strings too."""
        if split:
            counts = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
            words = [word for sequence in sequences for word in sequence]
            return self._segments(words, False, align, tokens).grouped(counts)
        if align:
            return self._align_texts(sequences, tokens)
        return Segments.from_ids(self._encode_texts(sequences))

    def _fields(self, assembly: Assembly, texts: Segments, type_ids, attention, special_mask, offsets) -> dict:
        """The flat values of each field the call returns, in Hugging Face's order."""
        want_types = "token_type_ids" in self.model_input_names if type_ids is None else type_ids
        want_attention = "attention_mask" in self.model_input_names if attention is None else attention
        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        fields = {"input_ids": assembly.take(texts.ids, self.cls_token_id or 0, self.sep_token_id or 0, pad_id)}
        if want_types:
            fields["token_type_ids"] = assembly.type_ids(self.pad_token_type_id)
        if want_attention:
            fields["attention_mask"] = assembly.attention_mask()
        if special_mask:
            fields["special_tokens_mask"] = assembly.special_tokens_mask()
        if offsets:
            fields["offset_mapping"] = assembly.take(texts.offsets, (0, 0), (0, 0), (0, 0))
        return fields

    def _encodings(self, inputs: Inputs, texts: Segments, assembly: Assembly, sample: np.ndarray) -> list[Encoding]:
        """The rows of a call with their alignment (computed when a BatchEncoding is first asked for it)."""
        if texts.tokens is None:
            first = self._segments(inputs.first, inputs.split, True, True)
            second = None if inputs.second is None else self._segments(inputs.second, inputs.split, True, True)
            aligned = first.then(second)
            if not np.array_equal(aligned.ids, texts.ids):
                raise RuntimeError(
                    "the tokenizer's vocabulary changed after this call (add_tokens?); call it again to get "
                    "the alignment"
                )
            texts = aligned
        flat = self._fields(assembly, texts, True, True, True, True)

        def rows(values: list) -> list[list]:
            return _batch.split_rows(values, assembly.lengths)

        ids, type_ids = rows(flat["input_ids"].tolist()), rows(flat["token_type_ids"].tolist())
        attention, special = rows(flat["attention_mask"].tolist()), rows(flat["special_tokens_mask"].tolist())
        offsets = rows(_batch.pairs(flat["offset_mapping"]))
        words = rows(_none_below_zero(assembly.take(texts.words, -1, -1, -1)))
        sequences = rows(_none_below_zero(assembly.sequence_ids()))
        strings = (self.cls_token or "", self.sep_token or "", self.pad_token or "")
        tokens = rows(assembly.take_list(texts.tokens, *strings))
        lengths = assembly.lengths
        n_sequences = 2 if assembly.pair else 1
        ranges = assembly.ranges.tolist()
        rows = []
        for index in range(len(lengths)):
            spans = {s: tuple(ranges[index][s]) for s in range(n_sequences)}
            rows.append(Encoding(ids[index], type_ids[index], tokens[index], offsets[index], attention[index],
                                 special[index], words[index], sequences[index], spans))  # fmt: skip
        owners: dict[int, Encoding] = {}
        for index, owner in enumerate(sample.tolist()):
            if owner in owners:
                owners[owner].overflowing.append(rows[index])
            else:
                owners[owner] = rows[index]
        return rows

    def encode(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        padding_side: str | None = None,
        return_tensors: str | None = None,
    ) -> list[int]:
        """Token ids of one text (or pair), with ``[CLS]``/``[SEP]`` unless ``add_special_tokens=False``."""
        if not is_split_into_words and not isinstance(text, str):
            raise TypeError("encode takes one text (str); call the tokenizer itself for batches")
        return self(text, text_pair, add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
                    max_length=max_length, stride=stride, is_split_into_words=is_split_into_words,
                    padding_side=padding_side, return_tensors=return_tensors, return_token_type_ids=False,
                    return_attention_mask=False)["input_ids"]  # fmt: skip

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """The tokens of a text as strings (unknown pieces show the text they cover)."""
        tokens = self._tokenize_text(text)
        if pair is not None:
            second = self._tokenize_text(pair)
            if add_special_tokens:
                return [self.cls_token, *tokens, self.sep_token, *second, self.sep_token]
            return tokens + second
        return [self.cls_token, *tokens, self.sep_token] if add_special_tokens else tokens

    # --- decoding -------------------------------------------------------------------------------

    def decode(
        self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> str:
        """Text of a sequence of ids (list, numpy array or tensor); ``▁`` becomes a space.

        ``skip_special_tokens`` drops the tokens the vocabulary marks special (like Hugging Face's fast
        tokenizer: ``<pad>``, ``<unk>``, ``[MASK]`` and added special tokens; the model's own ``[CLS]`` and
        ``[SEP]`` pieces are not marked special and stay).
        """
        ids = _batch.to_python_ids(token_ids)
        if skip_special_tokens:
            skip = self._decode_skip_ids()
            ids = [i for i in ids if i not in skip]
        return self._clean(self._decode_ids(ids), clean_up_tokenization_spaces)

    def batch_decode(
        self, sequences, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> list[str]:
        """``decode`` for each sequence of a batch (list of lists, 2-D array or tensor)."""
        if hasattr(sequences, "numpy") and not isinstance(sequences, np.ndarray):
            sequences = sequences.detach().cpu().numpy() if hasattr(sequences, "detach") else sequences.numpy()
        rows = [_batch.to_python_ids(row) for row in sequences]
        if skip_special_tokens:
            skip = self._decode_skip_ids()
            rows = [[i for i in row if i not in skip] for row in rows]
        return [self._clean(text, clean_up_tokenization_spaces) for text in self._decode_rows(rows)]

    def _decode_skip_ids(self) -> set[int]:
        return {index for index, token in self.added.by_id.items() if self.added.is_special(token.content)}

    def _decode_ids(self, ids: list[int]) -> str:
        tokens = [token for token in map(self._id_to_token, ids) if token is not None]
        return metaspace_decode(tokens)

    def _decode_rows(self, rows: list[list[int]]) -> list[str]:
        return [self._decode_ids(row) for row in rows]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return metaspace_decode(list(tokens))

    def _clean(self, text: str, clean_up: bool | None) -> str:
        if clean_up if clean_up is not None else self.clean_up_tokenization_spaces:
            for before, after in _CLEANUP:
                text = text.replace(before, after)
        return text

    # --- padding --------------------------------------------------------------------------------

    def pad(
        self,
        encoded_inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encoded examples to a common length, as Hugging Face's data collators call it.

        ``encoded_inputs`` is one dict of fields, or a list of them (one per example). ``input_ids``,
        ``attention_mask`` (made if missing), ``token_type_ids`` and ``special_tokens_mask`` are padded;
        any other field (a ``label``, per-token ``labels``, ...) is passed through untouched.
        """
        values = PadValues(self.pad_token_id, self.pad_token_type_id, self.padding_side, self.model_input_names,
                           self.model_max_length)  # fmt: skip
        return pad_features(encoded_inputs, values, padding, max_length, pad_to_multiple_of, padding_side,
                            return_attention_mask, return_tensors)  # fmt: skip

    # --- saving and loading ---------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        """The constructor arguments that ``tokenizer_config.json`` records."""
        config: dict[str, Any] = {
            "do_lower_case": self.do_lower_case,
            "remove_space": self.remove_space,
            "keep_accents": self.keep_accents,
            "model_max_length": self.model_max_length,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
        }
        for name in SPECIAL_TOKEN_NAMES:
            if name in self._special:
                config[name] = self._special_content(name)
        if self._additional:
            config["additional_special_tokens"] = [t.content for t in self._additional]
        if self.padding_side != "right":
            config["padding_side"] = self.padding_side
        if self.truncation_side != "right":
            config["truncation_side"] = self.truncation_side
        if self.model_input_names != type(self).model_input_names:
            config["model_input_names"] = list(self.model_input_names)
        config.update(self.extra_init_kwargs)
        return config

    def save_pretrained(self, save_directory: str | os.PathLike, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write Hugging Face's files: tokenizer_config.json (with every added token), special_tokens_map.json,
        sentencepiece.model (and tokenizer.json for the fast tokenizer). Returns the paths written."""
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_directory ({directory}) should be a directory, not a file")
        directory.mkdir(parents=True, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        config = self._config()
        config["added_tokens_decoder"] = {str(i): t.to_dict() for i, t in self.added.tokens_in_id_order()}
        config["extra_special_tokens"] = {}
        config["tokenizer_class"] = "RemBertTokenizer"
        config_path = directory / f"{prefix}{CONFIG_FILE}"
        write_json(config_path, config)
        map_path = directory / f"{prefix}{SPECIAL_TOKENS_MAP_FILE}"
        write_json(map_path, self._special_tokens_map_file())
        return (str(config_path), str(map_path), *self._model_files(directory, prefix))

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Write ``sentencepiece.model`` (named ``{filename_prefix}-sentencepiece.model`` with a prefix)
        into an existing directory and return its path, like Hugging Face."""
        from rembert_spec.atomic import atomic_write

        model = getattr(self, "model", None)
        if model is None:
            raise ValueError("this tokenizer was loaded from tokenizer.json alone; it has no sentencepiece.model")
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_directory ({save_directory}) should be a directory")
        name = (f"{filename_prefix}-" if filename_prefix else "") + VOCAB_FILE
        path = os.path.join(save_directory, name)
        with atomic_write(path) as tmp:
            tmp.write_bytes(model.raw)
        return (path,)

    def _special_tokens_map_file(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in SPECIAL_TOKEN_NAMES:
            if name not in self._special:
                continue
            token, given_as_object = self._special[name]
            flags = token.to_dict()
            del flags["special"]
            data[name] = flags if given_as_object else token.content
        if self._additional:
            data["additional_special_tokens"] = [{k: v for k, v in t.to_dict().items() if k != "special"}
                                                 for t in self._additional]  # fmt: skip
        return data

    @classmethod
    def _directory(cls, pretrained_model_name_or_path: str | os.PathLike, kwargs: dict[str, Any]) -> Path:
        """The local directory `from_pretrained` reads: the one given (with `subfolder=`), or the snapshot of a
        Hugging Face Hub repo id fetched through huggingface_hub (`revision=`, `cache_dir=`, `local_files_only=`,
        `token=`). Removes those options from `kwargs`."""
        options, rest = hub.pop_hub_options(kwargs)
        kwargs.clear()
        kwargs.update(rest)
        return hub.resolve_directory(pretrained_model_name_or_path, TOKENIZER_FILES, options)

    @classmethod
    def _config_from_directory(cls, directory: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments for a saved directory, resolved as Hugging Face's ``from_pretrained`` does.

        ``tokenizer_config.json`` first. A ``tokenizer.json`` is what a fast tokenizer runs, so the options
        its normalizer implies (lowercasing, accents) win over the config, and both classes start from its
        added tokens (``tokenizer_file``). Without one,
        options the config does not set take the defaults Hugging Face uses to convert a bare
        sentencepiece model (those of its ``RemBertTokenizer``: ``do_lower_case=False``,
        ``keep_accents=True``). Then special_tokens_map.json, then ``kwargs`` (unknown ones are an error).
        """
        named = set(inspect.signature(cls.__init__).parameters) - {"self", "unknown", "_config_extras"}
        check_init_kwargs(cls, {k: v for k, v in kwargs.items() if k not in named})
        if not directory.is_dir():
            raise OSError(f"tokenizer directory not found: {directory}")
        config = read_json(directory / CONFIG_FILE) if (directory / CONFIG_FILE).is_file() else {}
        init = {key: value for key, value in config.items() if key not in _IGNORED_CONFIG_KEYS}
        if (directory / TOKENIZER_FILE).is_file():
            init.update(_options_from_tokenizer_json(directory / TOKENIZER_FILE))
            init["tokenizer_file"] = directory / TOKENIZER_FILE
        else:
            init.setdefault("do_lower_case", False)
            init.setdefault("keep_accents", True)
        special_map_path = directory / SPECIAL_TOKENS_MAP_FILE
        if special_map_path.is_file():
            for key, value in read_json(special_map_path).items():
                if key in SPECIAL_TOKEN_NAMES or key == "additional_special_tokens":
                    init[key] = value
        init.update(kwargs)
        known = set(inspect.signature(cls.__init__).parameters) | _INIT_OPTIONS
        extras = {key: init.pop(key) for key in list(init) if key not in known}
        init["_config_extras"] = extras
        return init

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"keep_accents={self.keep_accents}, model_max_length={self.model_max_length})")  # fmt: skip


def _special_token_property(name: str) -> property:
    def get(self) -> str | None:
        return self._special_content(name)

    def set(self, value: str | AddedToken | None) -> None:
        self._set_special(name, value)

    return property(get, set, doc=f"The text of the {name.replace('_', ' ')} (settable, as in Hugging Face).")


def _special_id_property(name: str) -> property:
    def get(self) -> int | None:
        return self._special_id(name)

    def set(self, value: int | None) -> None:
        self._set_special(name, None if value is None else self.convert_ids_to_tokens(int(value)))

    return property(get, set, doc=f"The id of the {name.replace('_', ' ')} (settable).")


for _name in SPECIAL_TOKEN_NAMES:
    setattr(RemBertTokenizerBase, _name, _special_token_property(_name))
    setattr(RemBertTokenizerBase, f"{_name}_id", _special_id_property(_name))


# --- helpers ----------------------------------------------------------------------------------------


def _side(value: str, name: str) -> str:
    if value not in ("left", "right"):
        raise ValueError(f"{name} must be 'left' or 'right', got {value!r}")
    return value


def _none_below_zero(values: np.ndarray) -> list[int | None]:
    return [None if v < 0 else v for v in values.tolist()]


def _convert(flat: np.ndarray, assembly: Assembly, kind: str | None):
    """A field's flat values as rows: lists of lists (of tuples for offsets), or a tensor."""
    matrix = assembly.rows(flat)
    if kind is not None:
        if matrix is None:
            raise ValueError(
                "Unable to create tensor: the sequences have different lengths. "
                "Use padding=True, or padding='max_length' with truncation=True, to get equal lengths."
            )
        return _batch.ids_tensor(matrix, kind)
    if flat.ndim == 2:
        return _batch.split_rows(_batch.pairs(flat), assembly.lengths)
    if matrix is not None:
        return matrix.tolist()
    return _batch.split_rows(flat.tolist(), assembly.lengths)


def _convert_1d(values: np.ndarray, kind: str | None):
    return values.tolist() if kind is None else _batch.ids_tensor(values, kind)


def _options_from_tokenizer_json(path: Path) -> dict[str, Any]:
    """The options a ``tokenizer.json`` implies, for a directory without tokenizer_config.json.

    Its normalizer says whether text is lowercased (a ``Lowercase`` step) and whether accents are kept
    (no ``StripAccents`` step).
    """
    steps = _normalizer_steps(read_json(path).get("normalizer"))
    return {"do_lower_case": "Lowercase" in steps, "keep_accents": "StripAccents" not in steps}


def _normalizer_steps(normalizer: Any) -> list[str]:
    if not isinstance(normalizer, dict):
        return []
    if normalizer.get("type") == "Sequence":
        return [step for child in normalizer.get("normalizers") or [] for step in _normalizer_steps(child)]
    return [str(normalizer.get("type"))]
