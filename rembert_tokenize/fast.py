"""RemBertTokenizerFast: the tokenizer on Hugging Face's ``tokenizers`` library (Rust).

It is built from a ``tokenizer.json`` or converted from a ``sentencepiece.model``: the Unigram pieces
and scores, the normalizer of :mod:`rembert_tokenize._pipeline`, a metaspace pre-tokenizer and decoder,
and the ``[CLS] A [SEP] B [SEP]`` template. The conversion gives the same ``tokenizer.json`` content as
Hugging Face's RemBERT converter, so either library loads what the other saves.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from tokenizers import AddedToken as RustAddedToken
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import Unigram

from rembert_tokenize._added import AddedToken
from rembert_tokenize._base import TOKENIZER_FILE, VOCAB_FILE, RemBertTokenizerBase, read_json
from rembert_tokenize._batch import Segments
from rembert_tokenize._charsmap import validate_precompiled_charsmap
from rembert_tokenize._pipeline import SPIECE_UNDERLINE, build_normalizer
from rembert_tokenize.errors import TokenizerFileError
from rembert_tokenize.model_file import SentencePieceModel


def backend_from_model(model: SentencePieceModel, do_lower_case: bool, keep_accents: bool) -> Tokenizer:
    """Convert a sentencepiece Unigram model into a ``tokenizers`` pipeline (without post-processor)."""
    backend = Tokenizer(Unigram([(p.text, p.score) for p in model.pieces], unk_id=model.unk_id, byte_fallback=False))
    backend.normalizer = build_normalizer(do_lower_case, keep_accents, model.precompiled_charsmap)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True)
    whole = [RustAddedToken(text, normalized=False, special=is_control) for _, text, is_control in
             model.matched_whole_pieces()]  # fmt: skip
    backend.add_tokens(whole)
    return backend


def _rust_token(token: AddedToken) -> RustAddedToken:
    token = AddedToken.coerce(token)
    return RustAddedToken(token.content, single_word=token.single_word, lstrip=token.lstrip, rstrip=token.rstrip,
                          normalized=token.normalized, special=token.special)  # fmt: skip


def added_tokens_of_tokenizer_json(path: str | os.PathLike) -> list[AddedToken]:
    """The ``added_tokens`` of a ``tokenizer.json``, in file order: the table a fast tokenizer loading the
    file starts from. A broken file raises TokenizerFileError naming it."""
    path = Path(path)
    data = read_json(path)
    try:
        _check_tokenizer_json(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise TokenizerFileError(str(path), f"not a usable RemBERT tokenizer.json: {exc}") from None
    return [AddedToken.coerce(entry) for entry in data.get("added_tokens") or []]


def load_tokenizer_json(path: str | os.PathLike) -> Tokenizer:
    """Read a ``tokenizer.json``; a missing, truncated or corrupted file raises an error naming it."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"tokenizer file not found: {path}") from None
    except UnicodeDecodeError:
        raise TokenizerFileError(str(path), "not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenizerFileError(str(path), f"not valid JSON: {exc}") from None
    try:
        _check_tokenizer_json(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise TokenizerFileError(str(path), f"not a usable RemBERT tokenizer.json: {exc}") from None
    try:
        return Tokenizer.from_str(text)
    except Exception as exc:  # the Rust side reports every problem as a plain Exception
        raise TokenizerFileError(str(path), f"tokenizers cannot load it: {exc}") from None


def _check_tokenizer_json(data: Any) -> None:
    """Refuse what could make the Rust side panic later (it indexes tables without bounds checks)."""
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object")
    model = data["model"]
    if not isinstance(model, dict) or model.get("type") != "Unigram":
        raise ValueError("the model must be a Unigram model")
    vocab = model["vocab"]
    if not isinstance(vocab, list) or not vocab:
        raise ValueError("the Unigram vocab must be a non-empty list")
    for entry in vocab:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], (int, float)) and not isinstance(entry[1], bool)):  # fmt: skip
            raise ValueError(f"bad vocab entry {entry!r}")
    unk_id = model.get("unk_id")
    if unk_id is not None and not (isinstance(unk_id, int) and 0 <= unk_id < len(vocab)):
        raise ValueError(f"unk_id {unk_id!r} is outside the vocab")
    for token in data.get("added_tokens") or []:
        if not (isinstance(token, dict) and isinstance(token.get("id"), int) and token["id"] >= 0
                and isinstance(token.get("content"), str)):  # fmt: skip
            raise ValueError(f"bad added token {token!r}")
    for blob in _charsmaps(data.get("normalizer")):
        validate_precompiled_charsmap(base64.b64decode(blob, validate=True))


def _charsmaps(normalizer: Any) -> list[str]:
    if not isinstance(normalizer, dict):
        return []
    if normalizer.get("type") == "Precompiled":
        blob = normalizer.get("precompiled_charsmap")
        if blob is None:
            return []
        if not isinstance(blob, str):
            raise TypeError("precompiled_charsmap must be a base64 string")
        return [blob]
    if normalizer.get("type") == "Sequence":
        return [blob for step in normalizer.get("normalizers") or [] for blob in _charsmaps(step)]
    return []


class RemBertTokenizerFast(RemBertTokenizerBase):
    """RemBERT tokenizer on Hugging Face's Rust ``tokenizers`` library.

    Same arguments and results as :class:`RemBertTokenizer`. Built from ``tokenizer_file`` (a
    ``tokenizer.json``) if given, otherwise converted from ``vocab_file`` (a sentencepiece Unigram model).

    Example:
        >>> tokenizer = RemBertTokenizerFast(vocab_file="sentencepiece.model")  # doctest: +SKIP
        >>> tokenizer("Hello world!", return_offsets_mapping=True).offset_mapping  # doctest: +SKIP
        [(0, 0), (0, 5), (5, 11), (11, 12), (0, 0)]
    """

    vocab_files_names = {"vocab_file": VOCAB_FILE, "tokenizer_file": TOKENIZER_FILE}
    is_fast = True

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        tokenizer_file: str | os.PathLike | None = None,
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
        **kwargs: Any,
    ):
        if vocab_file is None and tokenizer_file is None:
            raise ValueError("RemBertTokenizerFast needs vocab_file (sentencepiece.model) or tokenizer_file")
        self.vocab_file = None if vocab_file is None else str(vocab_file)
        self.model = None if vocab_file is None else SentencePieceModel.from_file(vocab_file)
        if tokenizer_file is not None:
            self._backend = load_tokenizer_json(tokenizer_file)
        else:
            self._backend = backend_from_model(self.model, do_lower_case, keep_accents)
        self._from_model = tokenizer_file is None
        self._backend.no_truncation()
        self._backend.no_padding()
        super().__init__(
            do_lower_case=do_lower_case,
            remove_space=remove_space,
            keep_accents=keep_accents,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            **kwargs,
        )
        if self._from_model:
            self._set_template()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> RemBertTokenizerFast:
        """Load from a directory with ``tokenizer.json`` and/or ``sentencepiece.model`` (plus config files), or from
        a Hugging Face Hub repo id ("google/rembert"; ``revision=``, ``cache_dir=``, ``local_files_only=``,
        ``token=``, ``subfolder=``)."""
        directory = cls._directory(pretrained_model_name_or_path, kwargs)
        init = cls._config_from_directory(directory, kwargs)
        vocab = directory / VOCAB_FILE
        tokenizer = directory / TOKENIZER_FILE
        init.setdefault("vocab_file", vocab if vocab.is_file() else None)
        init.setdefault("tokenizer_file", tokenizer if tokenizer.is_file() else None)
        if init["vocab_file"] is None and init["tokenizer_file"] is None:
            raise FileNotFoundError(f"neither {vocab} nor {tokenizer} exists")
        return cls(**init)

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._backend

    # --- model ----------------------------------------------------------------------------------

    def _initial_added_tokens(self) -> list[AddedToken]:
        """The backend's added tokens (from the conversion or the tokenizer.json), in id order: the
        Python table mirrors the backend's, history included."""
        return [AddedToken.coerce(token) for _, token in sorted(self._backend.get_added_tokens_decoder().items())]

    def _model_piece_to_id(self, piece: str) -> int | None:
        return self._backend.token_to_id(piece)

    def _model_id_to_piece(self, index: int) -> str | None:
        return self._backend.id_to_token(index)

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=False)

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def _vocabulary_changed(self, tokens: list[AddedToken]) -> None:
        """Make the same ``add_tokens`` step in the backend, and check that both tables agree."""
        if not tokens:
            return
        self._backend.add_tokens([_rust_token(token) for token in tokens])
        backend = {index: AddedToken.coerce(token) for index, token in self._backend.get_added_tokens_decoder().items()}
        if backend != self.added.by_id:
            raise RuntimeError("the tokenizers backend and the added-token table disagree; please report this")

    def __setstate__(self, state: dict) -> None:
        # The backend pickles as its tokenizer.json, so it comes back as if reloaded: so does the table.
        self.__dict__.update(state)
        self.added = self.added.reloaded(self._model_piece_to_id)

    def _set_template(self) -> None:
        """``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` for a converted model (saved in tokenizer.json)."""
        cls, sep = self.cls_token, self.sep_token
        self._backend.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, self.cls_token_id), (sep, self.sep_token_id)],
        )

    # --- encoding and decoding ------------------------------------------------------------------

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self._backend.encode_batch_fast(texts, add_special_tokens=False)]

    def _align_texts(self, texts: list[str], tokens: bool = True) -> Segments:
        encodings = self._backend.encode_batch(texts, add_special_tokens=False)
        ids, offsets = [e.ids for e in encodings], [e.offsets for e in encodings]
        if not tokens:
            return Segments.from_rows(ids, offsets)
        return Segments.from_rows(ids, offsets, [e.word_ids for e in encodings], [e.tokens for e in encodings])

    def _tokenize_text(self, text: str) -> list[str]:
        return self._backend.encode(text, add_special_tokens=False).tokens

    def _decode_ids(self, ids: list[int]) -> str:
        return self._backend.decode(ids, skip_special_tokens=False)

    def _decode_rows(self, rows: list[list[int]]) -> list[str]:
        return self._backend.decode_batch(rows, skip_special_tokens=False)

    # --- saving ---------------------------------------------------------------------------------

    def _model_files(self, directory: Path, prefix: str) -> list[str]:
        paths = []
        if self.model is not None:
            paths += self.save_vocabulary(str(directory), prefix.rstrip("-") or None)
        from rembert_spec.atomic import atomic_write

        tokenizer_path = directory / f"{prefix}{TOKENIZER_FILE}"
        self._set_template()  # the special tokens as they are now, so that other libraries build the same rows
        with atomic_write(tokenizer_path) as tmp:
            self._backend.save(str(tmp))
        return [*paths, str(tokenizer_path)]
