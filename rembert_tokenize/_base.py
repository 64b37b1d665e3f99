"""What both RemBERT tokenizers share: arguments, special tokens, the call API, decoding, saving.

A subclass only has to turn texts into token ids (without special tokens), look pieces up, and say how
it is saved; batching, truncation, padding and tensors come from :mod:`rembert_tokenize._batch`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rembert_tokenize import _batch
from rembert_tokenize._added import SPECIAL_TOKEN_NAMES, AddedToken, AddedVocabulary, special_token
from rembert_tokenize._batch import BatchOptions, Layout
from rembert_tokenize._pipeline import metaspace_decode
from rembert_tokenize.errors import TokenizerFileError

logger = logging.getLogger(__name__)

VOCAB_FILE = "sentencepiece.model"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

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
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]  # fmt: skip


class BatchEncoding(dict):
    """The result of calling a tokenizer: a dict that also allows attribute access.

    Example:
        >>> encoding = BatchEncoding({"input_ids": [2, 17, 3], "attention_mask": [1, 1, 1]})
        >>> encoding.input_ids == encoding["input_ids"]
        True
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


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


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


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
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        additional_special_tokens: Sequence[str | AddedToken] | None = None,
        added_tokens_decoder: Mapping[int | str, Any] | None = None,
        **kwargs: Any,
    ):
        if padding_side not in ("right", "left") or truncation_side not in ("right", "left"):
            raise ValueError("padding_side and truncation_side must be 'right' or 'left'")
        self.do_lower_case = bool(do_lower_case)
        self.remove_space = bool(remove_space)
        self.keep_accents = bool(keep_accents)
        self.model_max_length = _batch.VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.pad_token_type_id = 0
        self.extra_init_kwargs = {k: v for k, v in kwargs.items() if k not in _IGNORED_CONFIG_KEYS}
        values = (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token)
        given = dict(zip(SPECIAL_TOKEN_NAMES, values, strict=True))
        self._special = {name: special_token(name, value) for name, value in given.items() if value is not None}
        self._additional = [AddedToken.coerce(t, special=True) for t in additional_special_tokens or ()]
        self.added = self._initial_added_vocabulary()
        self.added.add_all(_decoder_entries(added_tokens_decoder), self._model_piece_to_id)
        specials = [self._special[name] for name in SPECIAL_TOKEN_NAMES if name in self._special]
        self.added.add_special(specials + [(t, True) for t in self._additional], self._model_piece_to_id)
        self._setup_matching()

    # --- hooks for the subclasses ---------------------------------------------------------------

    def _initial_added_vocabulary(self) -> AddedVocabulary:
        raise NotImplementedError

    def _model_piece_to_id(self, piece: str) -> int | None:
        raise NotImplementedError

    def _model_id_to_piece(self, index: int) -> str | None:
        raise NotImplementedError

    def _setup_matching(self) -> None:
        raise NotImplementedError

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def _encode_texts_with_offsets(self, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
        raise NotImplementedError(
            "return_offsets_mapping is not available with the slow (sentencepiece) tokenizer; use RemBertTokenizerFast"
        )

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

    bos_token = property(lambda self: self._special_content("bos_token"))
    eos_token = property(lambda self: self._special_content("eos_token"))
    unk_token = property(lambda self: self._special_content("unk_token"))
    sep_token = property(lambda self: self._special_content("sep_token"))
    pad_token = property(lambda self: self._special_content("pad_token"))
    cls_token = property(lambda self: self._special_content("cls_token"))
    mask_token = property(lambda self: self._special_content("mask_token"))

    def _special_id(self, name: str) -> int | None:
        content = self._special_content(name)
        return None if content is None else self.convert_tokens_to_ids(content)

    bos_token_id = property(lambda self: self._special_id("bos_token"))
    eos_token_id = property(lambda self: self._special_id("eos_token"))
    unk_token_id = property(lambda self: self._special_id("unk_token"))
    sep_token_id = property(lambda self: self._special_id("sep_token"))
    pad_token_id = property(lambda self: self._special_id("pad_token"))
    cls_token_id = property(lambda self: self._special_id("cls_token"))
    mask_token_id = property(lambda self: self._special_id("mask_token"))

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """Special token names and their text, e.g. ``{"cls_token": "[CLS]", ...}``."""
        tokens: dict[str, Any] = {name: self._special_content(name) for name in self._special}
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

    # --- vocabulary -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.vocab_size + self.added.extra_size

    def get_vocab(self) -> dict[str, int]:
        """Every piece and added token, mapped to its id."""
        vocab = {self._model_id_to_piece(i): i for i in range(self.vocab_size)}
        vocab.update(self.added.by_content)
        return vocab

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Id of a token (or ids of a list of tokens); unknown tokens get the unknown id."""
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

    # --- encoding -------------------------------------------------------------------------------

    def __call__(
        self,
        text: str | Sequence[str] | Sequence[tuple[str, str]],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Tokenize a text, a pair, or a batch of either, like Hugging Face tokenizers.

        ``text`` is a string, a list of strings, or a list of ``(text, pair)`` tuples; ``text_pair``
        gives the second texts separately. ``padding`` is ``True``/``"longest"``, ``"max_length"`` or
        ``False``; ``truncation`` is ``True``/``"longest_first"``, ``"only_first"``, ``"only_second"``
        or ``False``; ``return_tensors`` is None (lists), ``"np"``, ``"pt"`` or ``"tf"``.
        """
        firsts, seconds, batched = _as_batch(text, text_pair)
        options = BatchOptions.resolve(padding, truncation, max_length, self.model_max_length, pad_to_multiple_of)
        if return_offsets_mapping:
            first_ids, first_offsets = self._encode_texts_with_offsets(firsts)
            second_ids, second_offsets = (None, None) if seconds is None else self._encode_texts_with_offsets(seconds)
        else:
            both = self._encode_texts(firsts + (seconds or []))
            first_ids, second_ids = both[: len(firsts)], (None if seconds is None else both[len(firsts) :])
            first_offsets = second_offsets = None
        layout = self._layout(first_ids, second_ids, add_special_tokens, options, first_offsets, second_offsets)
        wanted = {
            "input_ids": True,
            "token_type_ids": True if return_token_type_ids is None else return_token_type_ids,
            "attention_mask": True if return_attention_mask is None else return_attention_mask,
            "special_tokens_mask": return_special_tokens_mask,
            "offset_mapping": return_offsets_mapping,
        }
        return self._finish(layout, options, wanted, return_tensors, batched, return_length)

    encode_plus = __call__
    batch_encode_plus = __call__

    def _layout(self, first_ids, second_ids, add_special_tokens, options, first_offsets, second_offsets) -> Layout:
        """Truncate the encoded texts and put the special tokens in."""
        first, first_lengths = _batch.ragged(first_ids)
        second, second_lengths = (None, None) if second_ids is None else _batch.ragged(second_ids)
        first_offsets = None if first_offsets is None else _flat_offsets(first_offsets)
        second_offsets = None if second_offsets is None else _flat_offsets(second_offsets)
        if options.truncation != "do_not_truncate":
            n_special = self.num_special_tokens_to_add(second is not None) if add_special_tokens else 0
            if options.max_length < n_special:
                raise ValueError(f"max_length ({options.max_length}) is smaller than the {n_special} special tokens")
            keep_first, keep_second = _batch.truncated_lengths(
                first_lengths, second_lengths, options.max_length - n_special, options.truncation
            )
            first, first_offsets = self._keep(first, first_offsets, first_lengths, keep_first)
            first_lengths = keep_first
            if second is not None:
                second, second_offsets = self._keep(second, second_offsets, second_lengths, keep_second)
                second_lengths = keep_second
        specials = (self.cls_token_id, self.sep_token_id) if add_special_tokens else None
        return Layout.build(first, first_lengths, second, second_lengths, specials, first_offsets, second_offsets)

    def _keep(self, ids, offsets, lengths, keep):
        """Ids (and offsets) of each row cut to ``keep`` tokens on the truncation side."""
        side = self.truncation_side
        if offsets is not None:
            offsets = _batch.truncate_rows(offsets, lengths, keep, side)
        return _batch.truncate_rows(ids, lengths, keep, side), offsets

    def _finish(self, layout: Layout, options: BatchOptions, wanted: dict, return_tensors, batched, return_length):
        """Pad the wanted fields and convert them to lists or tensors."""
        width = _batch.target_width(layout.lengths, options)
        if width is not None and self.pad_token_id is None:
            raise ValueError("padding needs a pad token")
        fields = {
            "input_ids": (layout.ids, self.pad_token_id),
            "token_type_ids": (layout.type_ids, self.pad_token_type_id),
            "attention_mask": (np.ones_like(layout.ids), 0),
            "special_tokens_mask": (layout.special_mask, 1),
            "offset_mapping": (layout.offsets, 0),
        }
        encoding = BatchEncoding()
        for name, (flat, fill) in fields.items():
            if wanted[name]:
                encoding[name] = self._convert(flat, layout.lengths, width, fill, return_tensors, batched)
        if return_length:
            lengths = layout.lengths if width is None else np.maximum(layout.lengths, width)
            if return_tensors:
                encoding["length"] = _batch.as_tensor(lengths, return_tensors)
            else:
                encoding["length"] = lengths.tolist() if batched else int(lengths[0])
        return encoding

    def _convert(self, flat, lengths, width, fill, return_tensors, batched):
        side = self.padding_side
        if return_tensors is None:
            rows = _batch.to_rows(flat, lengths, width, fill, side)
            if flat.ndim == 2:
                rows = [[tuple(pair) for pair in row] for row in rows]
            return rows if batched else rows[0]
        if return_tensors not in _batch.TENSOR_TYPES:
            raise ValueError(f"return_tensors must be None or one of {_batch.TENSOR_TYPES}, got {return_tensors!r}")
        return _batch.as_tensor(_batch.to_matrix(flat, lengths, width, fill, side), return_tensors)

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
    ) -> list[int]:
        """Token ids of one text (or pair), with ``[CLS]``/``[SEP]`` unless ``add_special_tokens=False``."""
        if not isinstance(text, str):
            raise TypeError("encode takes one text; call the tokenizer itself for batches")
        return self(text, text_pair, add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
                    max_length=max_length, return_tensors=return_tensors, return_token_type_ids=False,
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
        """Text of a sequence of ids (list, numpy array or tensor); ``▁`` becomes a space."""
        ids = _batch.to_python_ids(token_ids)
        if skip_special_tokens:
            skip = set(self.all_special_ids)
            ids = [i for i in ids if i not in skip]
        return self._clean(self._decode_ids(ids), clean_up_tokenization_spaces)

    def batch_decode(
        self, sequences, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> list[str]:
        """``decode`` for each sequence of a batch (list of lists, 2-D array or tensor)."""
        if hasattr(sequences, "numpy") and not isinstance(sequences, np.ndarray):
            sequences = sequences.numpy()
        rows = [_batch.to_python_ids(row) for row in sequences]
        if skip_special_tokens:
            skip = set(self.all_special_ids)
            rows = [[i for i in row if i not in skip] for row in rows]
        return [self._clean(text, clean_up_tokenization_spaces) for text in self._decode_rows(rows)]

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
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchEncoding:
        """Pad already-encoded inputs (a dict of lists, or a list of dicts) to a common length."""
        columns, batched = _columns(encoded_inputs)
        options = BatchOptions.resolve(padding, False, max_length, self.model_max_length, pad_to_multiple_of)
        ids, lengths = _batch.ragged(columns["input_ids"])
        width = _batch.target_width(lengths, options)
        if "attention_mask" not in columns and return_attention_mask is not False:
            columns["attention_mask"] = [[1] * len(row) for row in columns["input_ids"]]
        if return_attention_mask is False:
            columns.pop("attention_mask", None)
        fills = {"input_ids": self.pad_token_id, "token_type_ids": self.pad_token_type_id, "attention_mask": 0,
                 "special_tokens_mask": 1, "offset_mapping": 0}  # fmt: skip
        encoding = BatchEncoding()
        for name, rows in columns.items():
            if name not in fills:
                encoding[name] = rows if batched else rows[0]
                continue
            flat = ids if name == "input_ids" else _flat_column(rows, name)
            encoding[name] = self._convert(flat, lengths, width, fills[name], return_tensors, batched)
        return encoding

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
        for name in self._special:
            config[name] = self._special_content(name)
        if self._additional:
            config["additional_special_tokens"] = [t.content for t in self._additional]
        if self.padding_side != "right":
            config["padding_side"] = self.padding_side
        if self.truncation_side != "right":
            config["truncation_side"] = self.truncation_side
        config.update(self.extra_init_kwargs)
        return config

    def save_pretrained(self, save_directory: str | os.PathLike, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write Hugging Face's files: tokenizer_config.json, special_tokens_map.json, sentencepiece.model
        (and tokenizer.json for the fast tokenizer). Returns the paths written."""
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
        _write_json(config_path, config)
        map_path = directory / f"{prefix}{SPECIAL_TOKENS_MAP_FILE}"
        _write_json(map_path, self._special_tokens_map_file())
        return (str(config_path), str(map_path), *self._model_files(directory, prefix))

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Write ``sentencepiece.model`` (named ``{filename_prefix}-sentencepiece.model`` with a prefix)
        into an existing directory and return its path, like Hugging Face."""
        model = getattr(self, "model", None)
        if model is None:
            raise ValueError("this tokenizer was loaded from tokenizer.json alone; it has no sentencepiece.model")
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_directory ({save_directory}) should be a directory")
        name = (f"{filename_prefix}-" if filename_prefix else "") + VOCAB_FILE
        path = os.path.join(save_directory, name)
        Path(path).write_bytes(model.raw)
        return (path,)

    def _special_tokens_map_file(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, (token, given_as_object) in self._special.items():
            flags = token.to_dict()
            del flags["special"]
            data[name] = (
                flags
                if given_as_object and any(flags[k] for k in ("lstrip", "rstrip", "single_word", "normalized"))
                else token.content
            )
        if self._additional:
            data["additional_special_tokens"] = [t.content for t in self._additional]
        return data

    @classmethod
    def _config_from_directory(cls, directory: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not directory.is_dir():
            raise OSError(f"tokenizer directory not found: {directory} (only local directories are supported)")
        config = read_json(directory / CONFIG_FILE) if (directory / CONFIG_FILE).is_file() else {}
        init = {key: value for key, value in config.items() if key not in _IGNORED_CONFIG_KEYS}
        special_map_path = directory / SPECIAL_TOKENS_MAP_FILE
        if special_map_path.is_file():
            for key, value in read_json(special_map_path).items():
                if key in SPECIAL_TOKEN_NAMES or key == "additional_special_tokens":
                    init[key] = value
        init.update(kwargs)
        return init

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"keep_accents={self.keep_accents}, model_max_length={self.model_max_length})")  # fmt: skip


# --- helpers ----------------------------------------------------------------------------------------


def _decoder_entries(decoder: Mapping[int | str, Any] | None) -> list[AddedToken]:
    if not decoder:
        return []
    entries = sorted((int(index), value) for index, value in decoder.items())
    return [AddedToken.coerce(value) for _, value in entries]


def _as_batch(text, text_pair) -> tuple[list[str], list[str] | None, bool]:
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError("text_pair must be a string when text is a string")
        return [text], (None if text_pair is None else [text_pair]), False
    if not isinstance(text, (list, tuple)):
        raise TypeError("text must be a string, a list of strings or a list of (text, pair) tuples")
    items = list(text)
    if text_pair is not None:
        if isinstance(text_pair, str) or len(text_pair) != len(items):
            raise ValueError("text_pair must be a list with one entry per text")
        pairs = list(text_pair)
        _check_strings(items + pairs)
        return items, pairs, True
    if items and all(isinstance(item, (list, tuple)) for item in items):
        if not all(len(item) == 2 for item in items):
            raise ValueError("each item of a batch of pairs must be a (text, pair) tuple")
        firsts, seconds = [item[0] for item in items], [item[1] for item in items]
        _check_strings(firsts + seconds)
        return firsts, seconds, True
    _check_strings(items)
    return items, None, True


def _check_strings(items: list) -> None:
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"expected text (str), got {type(item).__name__}")


def _flat_offsets(rows: list[list[tuple[int, int]]]) -> np.ndarray:
    flat = [pair for row in rows for pair in row]
    return np.asarray(flat, dtype=np.int64).reshape(len(flat), 2)


def _flat_column(rows: list, name: str) -> np.ndarray:
    if name == "offset_mapping":
        return _flat_offsets(rows)
    return _batch.ragged(rows)[0]


def _columns(encoded_inputs) -> tuple[dict[str, list], bool]:
    """Inputs of ``pad`` as a dict of per-row lists, and whether they were a batch."""
    if isinstance(encoded_inputs, (list, tuple)):
        if not encoded_inputs or not isinstance(encoded_inputs[0], Mapping):
            raise ValueError("pad takes a dict of lists or a list of dicts")
        keys = list(encoded_inputs[0].keys())
        return {key: [_as_list(item[key]) for item in encoded_inputs] for key in keys}, True
    if not isinstance(encoded_inputs, Mapping) or "input_ids" not in encoded_inputs:
        raise ValueError("pad needs 'input_ids'")
    columns = {key: _as_list(value) for key, value in encoded_inputs.items()}
    first = columns["input_ids"]
    batched = bool(first) and isinstance(first[0], list)
    if not batched:
        columns = {key: [value] for key, value in columns.items()}
    return columns, batched


def _as_list(value) -> list:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return [_as_list(v) if isinstance(v, (list, tuple, np.ndarray)) and not _is_pair(v) else v for v in value]


def _is_pair(value) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value)
