"""RemBertTokenizer: the tokenizer on sentencepiece.

Text goes through the same pipeline as the fast tokenizer (added tokens, normalisation, metaspace; see
:mod:`rembert_tokenize._pipeline`), then sentencepiece segments it with the Unigram model. Sentencepiece
gets a copy of the model whose own normalizer is switched off, so it does nothing but the segmentation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sentencepiece as spm
from tokenizers import NormalizedString, PreTokenizedString, Token

from rembert_tokenize._added import AddedToken
from rembert_tokenize._base import VOCAB_FILE, RemBertTokenizerBase
from rembert_tokenize._batch import Segments
from rembert_tokenize._pipeline import SPIECE_UNDERLINE, build_normalizer, metaspace, metaspace_words
from rembert_tokenize.errors import TokenizerFileError
from rembert_tokenize.fast import added_tokens_of_tokenizer_json
from rembert_tokenize.model_file import SentencePieceModel

_Unit = str | tuple[int, str]  # text for sentencepiece, or (added token id, matched text)


class RemBertTokenizer(RemBertTokenizerBase):
    """RemBERT tokenizer on `sentencepiece <https://github.com/google/sentencepiece>`_.

    Gives the same results as :class:`RemBertTokenizerFast` (and as Hugging Face's ``RemBertTokenizerFast``)
    for every text: ids, and also offsets, word ids and the other alignments, which Hugging Face's slow
    tokenizers do not have.

    Args:
        vocab_file: path of the ``sentencepiece.model`` (a Unigram model).
        do_lower_case: lowercase the text (default True).
        remove_space: accepted and saved for compatibility; it changes nothing (as in Hugging Face's
            fast tokenizer, runs of spaces are always collapsed).
        keep_accents: keep accents; if False (default) the text is NFKD-decomposed and marks removed.
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: special tokens
            (defaults ``[CLS]``, ``[SEP]``, ``<unk>``, ``[SEP]``, ``<pad>``, ``[CLS]``, ``[MASK]``).
        model_max_length: length used by ``truncation=True`` without ``max_length``.

    Example:
        >>> tokenizer = RemBertTokenizer("sentencepiece.model")  # doctest: +SKIP
        >>> batch = tokenizer(["Hello world!", "Bonjour"], padding=True, return_tensors="np")  # doctest: +SKIP
        >>> batch.input_ids.shape  # doctest: +SKIP
        (2, 6)
        >>> tokenizer.decode(batch.input_ids[1], skip_special_tokens=True)  # doctest: +SKIP
        'bonjour'
    """

    vocab_files_names = {"vocab_file": VOCAB_FILE}

    def __init__(
        self,
        vocab_file: str | os.PathLike,
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
        self.vocab_file = str(vocab_file)
        self.tokenizer_file = None if tokenizer_file is None else str(tokenizer_file)
        self.model = SentencePieceModel.from_file(vocab_file)
        self._load_segmenter()
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

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> RemBertTokenizer:
        """Load from a directory holding ``sentencepiece.model`` and, optionally, Hugging Face's config files, or
        from a Hugging Face Hub repo id ("google/rembert"; ``revision=``, ``cache_dir=``, ``local_files_only=``,
        ``token=``, ``subfolder=``)."""
        directory = cls._directory(pretrained_model_name_or_path, kwargs)
        init = cls._config_from_directory(directory, kwargs)
        return cls(init.pop("vocab_file", directory / VOCAB_FILE), **init)

    # --- model ----------------------------------------------------------------------------------

    def _load_segmenter(self) -> None:
        model = self.model
        self._piece_ids = {piece.text: index for index, piece in enumerate(model.pieces)}
        self._unk_id = model.unk_id
        self._unk_text = model.pieces[self._unk_id].text
        self._by_word = model.segments_by_word_are_needed()
        proto, self._unk_text_id = model.segmentation_proto()
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=proto)
        except (RuntimeError, OSError) as exc:
            raise TokenizerFileError(self.vocab_file, f"sentencepiece cannot load it: {exc}") from None

    def _initial_added_tokens(self) -> list[AddedToken]:
        """The model's control and user-defined pieces, as Hugging Face's converter adds them; or the
        added tokens of ``tokenizer_file``, as the fast tokenizer loading it starts from."""
        if self.tokenizer_file is not None:
            return added_tokens_of_tokenizer_json(self.tokenizer_file)
        return [AddedToken(text, normalized=False, special=is_control) for _, text, is_control in
                self.model.matched_whole_pieces()]  # fmt: skip

    def _model_piece_to_id(self, piece: str) -> int | None:
        return self._piece_ids.get(piece)

    def _model_id_to_piece(self, index: int) -> str | None:
        return self.model.pieces[index].text if 0 <= index < len(self.model.pieces) else None

    @property
    def vocab_size(self) -> int:
        return len(self.model.pieces)

    def _vocabulary_changed(self, tokens: list[AddedToken]) -> None:
        if getattr(self, "_normalizer", None) is None:
            self._normalizer = build_normalizer(self.do_lower_case, self.keep_accents, self.model.precompiled_charsmap)
        self.added.compile(self._normalizer.normalize_str)

    # --- text to units --------------------------------------------------------------------------

    def _units(self, text: str) -> list[_Unit]:
        """The text as strings ready for sentencepiece and added tokens, in order."""
        raw = self.added.raw_pattern
        if raw is None or raw.search(text) is None:
            return self._normalized_units(text)
        units: list[_Unit] = []
        for part in self.added.split_raw(text):
            if isinstance(part, tuple):
                units.append(part)
            else:
                units += self._normalized_units(part)
        return units

    def _normalized_units(self, text: str) -> list[_Unit]:
        normalized = self._normalizer.normalize_str(text)
        pattern = self.added.normalized_pattern
        if pattern is None or pattern.search(normalized) is None:
            return self._model_units(normalized)
        units: list[_Unit] = []
        for part in self.added.split_normalized(normalized):
            if isinstance(part, tuple):
                units.append(part)
            else:
                units += self._model_units(part)
        return units

    def _model_units(self, normalized: str) -> list[str]:
        if self._by_word:
            return metaspace_words(normalized)
        text = metaspace(normalized)
        return [text] if text else []

    # --- segmentation ---------------------------------------------------------------------------

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        plans, segments = self._plan(texts)
        encoded = self._sp.encode(segments) if segments else []
        for index, segment in enumerate(segments):
            if self._unk_text in segment:
                encoded[index] = self._fuse_unknown_ids(encoded[index])
        results = []
        for plan in plans:
            if isinstance(plan, int):
                results.append(encoded[plan])
                continue
            ids: list[int] = []
            for step in plan:
                if step >= 0:
                    ids += encoded[step]
                else:
                    ids.append(-step - 1)
            results.append(ids)
        return results

    def _plan(self, texts: list[str]) -> tuple[list[int | list[int]], list[str]]:
        """Where each text's pieces come from: an index into ``segments``, or a list of indices and
        ``-(id + 1)`` for added tokens."""
        plans: list[int | list[int]] = []
        segments: list[str] = []
        for text in texts:
            units = self._units(text)
            if len(units) == 1 and isinstance(units[0], str):
                plans.append(len(segments))
                segments.append(units[0])
                continue
            plan = []
            for unit in units:
                if isinstance(unit, str):
                    plan.append(len(segments))
                    segments.append(unit)
                else:
                    plan.append(-unit[0] - 1)
            plans.append(plan)
        return plans, segments

    def _fuse_unknown_ids(self, ids: list[int]) -> list[int]:
        """Count the model's unknown text as unknown, and merge runs of unknowns like ``tokenizers``."""
        fused: list[int] = []
        for index in ids:
            index = self._unk_id if index == self._unk_text_id else index
            if index == self._unk_id and fused and fused[-1] == self._unk_id:
                continue
            fused.append(index)
        return fused

    def _tokenize_text(self, text: str) -> list[str]:
        words = [unit for unit in self._units(text) if isinstance(unit, str)]
        pieces = iter(self._word_pieces(words))
        tokens: list[str] = []
        for unit in self._units(text):
            if isinstance(unit, tuple):
                tokens.append(unit[1])
            else:
                tokens += [surface for _, surface in next(pieces)]
        return tokens

    def _word_pieces(self, words: list[str]) -> list[list[tuple[int, str]]]:
        """Sentencepiece's segmentation of each word as ``(id, text covered)``, unknown runs merged."""
        if not words:
            return []
        all_ids = self._sp.encode(words)
        all_texts = self._sp.encode(words, out_type=str)  # unknown pieces come back as the text they cover
        unknown = (self._unk_id, self._unk_text_id)
        result = []
        for ids, texts in zip(all_ids, all_texts, strict=True):
            pieces: list[tuple[int, list[str]]] = []
            for index, text in zip(ids, texts, strict=True):
                if index in unknown and pieces and pieces[-1][0] == self._unk_id:
                    pieces[-1][1].append(text)
                else:
                    pieces.append((self._unk_id if index in unknown else index, [text]))
            result.append([(index, "".join(parts)) for index, parts in pieces])
        return result

    # --- alignment --------------------------------------------------------------------------------

    def _align_texts(self, texts: list[str], tokens: bool = True) -> Segments:
        """Ids with character offsets, word indices and token strings.

        Each text goes through the fast tokenizer's splits (added tokens as written, normalisation, added
        tokens after normalisation, metaspace words) as a ``tokenizers.PreTokenizedString``, which tracks
        where every normalised character comes from; sentencepiece then segments each word. So offsets
        and word indices are those of the fast tokenizer by construction.
        """
        strings = [PreTokenizedString(text) for text in texts]
        plans: list[list[int]] = []  # per text, per split: an added token id, or -(word index + 1)
        words: list[str] = []
        for string in strings:
            plan: list[int] = []
            string.split(lambda _, whole, plan=plan: self._alignment_splits(whole, plan, words))
            plans.append(plan)
        word_pieces = self._word_pieces(words)
        ids, offsets, word_ids, tokens = [], [], [], []
        for string, plan in zip(strings, plans, strict=True):
            steps = iter(plan)
            string.tokenize(lambda split, steps=steps: self._split_tokens(split, next(steps), word_pieces))
            encoding = string.to_encoding()
            ids.append(encoding.ids)
            offsets.append(encoding.offsets)
            word_ids.append(encoding.word_ids)
            tokens.append(encoding.tokens)
        return Segments.from_rows(ids, offsets, word_ids, tokens)

    def _alignment_splits(self, whole: NormalizedString, plan: list[int], words: list[str]) -> list:
        """The splits of one text, as slices of ``whole`` (so that offsets follow them); fills ``plan``."""
        splits = []
        position = 0
        for part in self._raw_parts(whole.normalized):
            length = len(part[1]) if isinstance(part, tuple) else len(part)
            piece = whole.slice((position, position + length))
            position += length
            if isinstance(part, tuple):
                splits.append(piece)
                plan.append(part[0])
                continue
            self._normalizer.normalize(piece)
            inner = 0
            for sub in self._normalized_parts(piece.normalized):
                size = len(sub[1]) if isinstance(sub, tuple) else len(sub)
                span = piece.slice((inner, inner + size))
                inner += size
                if isinstance(sub, tuple):
                    splits.append(span)
                    plan.append(sub[0])
                    continue
                span.replace(" ", SPIECE_UNDERLINE)
                if span.normalized and not span.normalized.startswith(SPIECE_UNDERLINE):
                    span.prepend(SPIECE_UNDERLINE)
                for word in span.split(SPIECE_UNDERLINE, "merged_with_next"):
                    if word.normalized:
                        splits.append(word)
                        plan.append(-len(words) - 1)
                        words.append(word.normalized)
        return splits

    def _raw_parts(self, text: str) -> list:
        if self.added.raw_pattern is None or self.added.raw_pattern.search(text) is None:
            return [text] if text else []
        return self.added.split_raw(text)

    def _normalized_parts(self, text: str) -> list:
        if self.added.normalized_pattern is None or self.added.normalized_pattern.search(text) is None:
            return [text] if text else []
        return self.added.split_normalized(text)

    @staticmethod
    def _split_tokens(split: str, step: int, word_pieces: list[list[tuple[int, str]]]) -> list[Token]:
        """The tokens of one split; offsets are UTF-8 byte offsets inside it, as ``tokenizers`` wants."""
        if step >= 0:
            return [Token(step, split, (0, len(split.encode("utf-8"))))]
        tokens = []
        start = 0
        for index, text in word_pieces[-step - 1]:
            stop = start + len(text.encode("utf-8"))
            tokens.append(Token(index, text, (start, stop)))
            start = stop
        return tokens

    # --- saving and pickling --------------------------------------------------------------------

    def _model_files(self, directory: Path, prefix: str) -> list[str]:
        return list(self.save_vocabulary(str(directory), prefix.rstrip("-") or None))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for native in ("_sp", "_normalizer"):
            state.pop(native, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        # As the fast tokenizer (whose backend pickles as tokenizer.json), come back as if reloaded.
        self.added = self.added.reloaded(self._model_piece_to_id)
        self._load_segmenter()
        self._normalizer = None
        self._vocabulary_changed([])
