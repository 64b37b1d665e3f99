"""Read, check and write ``sentencepiece.model`` files with the protobuf module that sentencepiece ships.

A ``sentencepiece.model`` is a serialized ``ModelProto`` (``sentencepiece.sentencepiece_model_pb2``).
Parsing is protobuf's; this module adds the checks that make a file safe and usable for RemBERT (a
Unigram model with unique, non-empty pieces, one unknown piece and a well-formed normalization table),
so that neither sentencepiece nor ``tokenizers`` ever walks a broken table, and writes the stripped-down
copy that the slow tokenizer hands to sentencepiece.

Example:
    >>> model = SentencePieceModel.from_file("sentencepiece.model")  # doctest: +SKIP
    >>> model.pieces[model.unk_id].text, model.normalizer_name  # doctest: +SKIP
    ('<unk>', 'nmt_nfkc')
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from google.protobuf.message import DecodeError
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from rembert_tokenize._charsmap import validate_precompiled_charsmap
from rembert_tokenize.errors import TokenizerFileError

_Type = model_pb2.ModelProto.SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = _Type.NORMAL, _Type.UNKNOWN, _Type.CONTROL, _Type.USER_DEFINED
PIECE_TYPES = frozenset(_Type.values())
UNIGRAM = model_pb2.TrainerSpec.ModelType.UNIGRAM


class Piece(NamedTuple):
    """One vocabulary entry: its text, its log-probability score and its sentencepiece type."""

    text: str
    score: float
    kind: int = NORMAL


class SentencePieceModel:
    """A parsed and checked sentencepiece Unigram model.

    ``proto`` is the ``ModelProto`` message; ``pieces`` its vocabulary; ``raw`` the file's bytes.

    Example:
        >>> model = SentencePieceModel.from_file("sentencepiece.model")  # doctest: +SKIP
        >>> len(model.pieces), model.unk_id  # doctest: +SKIP
        (2000, 1)
    """

    def __init__(self, proto: model_pb2.ModelProto, raw: bytes):
        self.proto = proto
        self.raw = raw
        self.pieces = [Piece(p.piece, p.score, p.type) for p in proto.pieces]

    @classmethod
    def from_file(cls, path: str | Path) -> SentencePieceModel:
        """Read and check a ``sentencepiece.model`` file; errors name the file."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"sentencepiece model file not found: {path}") from None
        except OSError as exc:
            raise OSError(f"cannot read sentencepiece model file {path}: {exc}") from exc
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> SentencePieceModel:
        """Parse and check serialized ModelProto bytes; ``source`` names them in error messages."""
        proto = model_pb2.ModelProto()
        try:
            proto.ParseFromString(bytes(data))
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise TokenizerFileError(source, f"not a valid sentencepiece model: {exc}") from None
        model = cls(proto, bytes(data))
        try:
            model._check()
        except ValueError as exc:
            raise TokenizerFileError(source, f"unusable sentencepiece model: {exc}") from None
        return model

    def __reduce__(self):
        return (SentencePieceModel.from_bytes, (self.raw,))

    # --- what the tokenizers read -----------------------------------------------------------------

    @property
    def unk_id(self) -> int:
        """Index of the single UNKNOWN piece."""
        return next(i for i, piece in enumerate(self.pieces) if piece.kind == UNKNOWN)

    @property
    def normalizer_name(self) -> str:
        return self.proto.normalizer_spec.name

    @property
    def precompiled_charsmap(self) -> bytes:
        """The model's own normalization table (empty for the ``identity`` rule)."""
        return self.proto.normalizer_spec.precompiled_charsmap

    def matched_whole_pieces(self) -> list[tuple[int, str, bool]]:
        """Control and user-defined pieces as ``(id, text, is_control)``: the tokens matched whole in text."""
        return [(i, p.text, p.kind == CONTROL) for i, p in enumerate(self.pieces) if p.kind in (CONTROL, USER_DEFINED)]

    def segments_by_word_are_needed(self) -> bool:
        """Whether text must reach sentencepiece word by word to segment like the ``tokenizers`` Unigram.

        ``tokenizers`` runs the Unigram model on each ``▁``-started word. Handing sentencepiece a whole
        text gives the same pieces when ``▁`` is a piece of its own (so no unknown run crosses a word
        start) and no piece holds a ``▁`` after its first character (so no piece crosses one).
        """
        texts = {p.text for p in self.pieces if p.kind != UNKNOWN}
        return "\u2581" not in texts or any("\u2581" in text[1:] for text in texts)

    def segmentation_proto(self) -> tuple[bytes, int]:
        """Serialize the copy that makes sentencepiece do only the Unigram segmentation.

        The copy has an identity normalizer without dummy prefix or whitespace removal (the caller
        normalizes), and every piece except the unknown one becomes a NORMAL piece, so that
        sentencepiece scores user-defined, control and unused pieces like the ``tokenizers`` Unigram
        model does. The unknown piece cannot match text in sentencepiece but can in ``tokenizers``, so
        its text is appended as one more NORMAL piece. Returns the bytes and the id of that extra piece.
        """
        unk_id = self.unk_id
        taken = {piece.text for piece in self.pieces}
        placeholder = "<rembert-unknown-placeholder>"
        while placeholder in taken:
            placeholder += "_"
        copy = model_pb2.ModelProto()
        for index, piece in enumerate(self.pieces):
            if index == unk_id:
                copy.pieces.add(piece=placeholder, score=piece.score, type=UNKNOWN)
            else:
                copy.pieces.add(piece=piece.text, score=piece.score, type=NORMAL)
        copy.pieces.add(piece=self.pieces[unk_id].text, score=self.pieces[unk_id].score, type=NORMAL)
        trainer = copy.trainer_spec
        trainer.model_type = UNIGRAM
        trainer.vocab_size = len(copy.pieces)
        trainer.byte_fallback = False
        trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = unk_id, -1, -1, -1
        normalizer = copy.normalizer_spec
        normalizer.name = "identity"
        normalizer.precompiled_charsmap = b""
        normalizer.add_dummy_prefix = False
        normalizer.remove_extra_whitespaces = False
        normalizer.escape_whitespaces = True
        return copy.SerializeToString(), len(self.pieces)

    # --- checks -----------------------------------------------------------------------------------

    def _check(self) -> None:
        """Raise ValueError unless this is a usable Unigram model."""
        if not self.pieces:
            raise ValueError("it has no pieces")
        trainer = self.proto.trainer_spec
        if trainer.model_type != UNIGRAM:
            raise ValueError(f"model_type is {trainer.model_type}; only Unigram (1) models are supported")
        seen: set[str] = set()
        unknown = []
        for index, piece in enumerate(self.pieces):
            if not isinstance(piece.text, str):  # protobuf hands out bytes for text that is not UTF-8
                raise ValueError(f"piece {index} is not valid UTF-8")
            if not piece.text:
                raise ValueError(f"piece {index} is empty")
            if piece.text in seen:
                raise ValueError(f"piece {index} ({piece.text!r}) appears twice")
            seen.add(piece.text)
            if piece.kind not in PIECE_TYPES:
                raise ValueError(f"piece {index} has unknown type {piece.kind}")
            if not math.isfinite(piece.score):
                raise ValueError(f"piece {index} has a non-finite score")
            if piece.kind == UNKNOWN:
                unknown.append(index)
        if len(unknown) != 1:
            raise ValueError(f"it must have exactly one unknown piece, found {len(unknown)}")
        if trainer.unk_id != unknown[0]:
            raise ValueError(f"trainer_spec.unk_id is {trainer.unk_id} but the unknown piece is {unknown[0]}")
        if not isinstance(self.normalizer_name, str):
            raise ValueError("the normalizer name is not valid UTF-8")
        if self.precompiled_charsmap:
            validate_precompiled_charsmap(self.precompiled_charsmap)
