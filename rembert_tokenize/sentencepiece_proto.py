"""Read, check and write sentencepiece model files without the protobuf package.

A ``sentencepiece.model`` file is a serialized ``ModelProto`` message. Only a few of its fields matter
for tokenization: the pieces (text, score, type), the trainer's model type and special ids, and the
normalizer spec. This module reads them with a small protobuf wire-format reader, checks that they make
a usable Unigram model, and writes the stripped-down copy the slow tokenizer hands to sentencepiece.

Example:
    >>> model = SentencePieceModel.from_bytes(model_bytes, source="sentencepiece.model")  # doctest: +SKIP
    >>> model.pieces[model.unk_id].text  # doctest: +SKIP
    '<unk>'
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rembert_tokenize._charsmap import validate_precompiled_charsmap
from rembert_tokenize.errors import TokenizerFileError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
PIECE_TYPES = {NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE}
UNIGRAM = 1

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class _WireError(ValueError):
    """Raised by the wire reader; turned into a TokenizerFileError naming the file."""


# --- protobuf wire format: reading ------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("message ends inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _WireError("varint longer than 10 bytes")


def _iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field of one message."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _LENGTH:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise _WireError("length-delimited field runs past the end of the message")
            value = buf[pos : pos + length]
            pos += length
        elif wire in (_FIXED32, _FIXED64):
            size = 4 if wire == _FIXED32 else 8
            if pos + size > end:
                raise _WireError("fixed-size field runs past the end of the message")
            value = buf[pos : pos + size]
            pos += size
        else:
            raise _WireError(f"unsupported wire type {wire}")
        yield number, wire, value


def _expect(wire: int, wanted: int, what: str) -> None:
    if wire != wanted:
        raise _WireError(f"{what} has wire type {wire}, expected {wanted}")


def _as_int32(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _as_text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _WireError(f"{what} is not valid UTF-8") from exc


# --- the model ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One vocabulary entry: its text, its log-probability score and its sentencepiece type."""

    text: str
    score: float
    kind: int = NORMAL


@dataclass
class NormalizerSpec:
    """The fields of sentencepiece's NormalizerSpec that tokenization uses."""

    name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


@dataclass
class TrainerSpec:
    """The fields of sentencepiece's TrainerSpec that tokenization uses."""

    model_type: int = UNIGRAM
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    byte_fallback: bool = False


@dataclass
class SentencePieceModel:
    """A parsed and checked sentencepiece Unigram model.

    Example:
        >>> model = SentencePieceModel.from_file("sentencepiece.model")  # doctest: +SKIP
        >>> len(model.pieces), model.normalizer.name  # doctest: +SKIP
        (2000, 'nmt_nfkc')
    """

    pieces: list[Piece]
    trainer: TrainerSpec = field(default_factory=TrainerSpec)
    normalizer: NormalizerSpec = field(default_factory=NormalizerSpec)
    raw: bytes = b""

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
        try:
            model = _parse_model(bytes(data))
            _check_model(model)
        except _WireError as exc:
            raise TokenizerFileError(source, f"not a valid sentencepiece model: {exc}") from None
        except ValueError as exc:
            raise TokenizerFileError(source, f"unusable sentencepiece model: {exc}") from None
        return model

    @property
    def unk_id(self) -> int:
        """Index of the single UNKNOWN piece."""
        return next(i for i, piece in enumerate(self.pieces) if piece.kind == UNKNOWN)

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
        pieces = []
        for index, piece in enumerate(self.pieces):
            if index == unk_id:
                pieces.append(Piece(placeholder, piece.score, UNKNOWN))
            else:
                pieces.append(Piece(piece.text, piece.score, NORMAL))
        pieces.append(Piece(self.pieces[unk_id].text, self.pieces[unk_id].score, NORMAL))
        trainer = TrainerSpec(model_type=UNIGRAM, unk_id=unk_id, bos_id=-1, eos_id=-1, pad_id=-1)
        normalizer = NormalizerSpec("identity", b"", False, False, True)
        return _write_model(pieces, trainer, normalizer), len(self.pieces)


def _parse_model(data: bytes) -> SentencePieceModel:
    pieces: list[Piece] = []
    trainer = TrainerSpec()
    normalizer = NormalizerSpec()
    for number, wire, value in _iter_fields(data):
        if number == 1:
            _expect(wire, _LENGTH, "ModelProto.pieces")
            pieces.append(_parse_piece(value))
        elif number == 2:
            _expect(wire, _LENGTH, "ModelProto.trainer_spec")
            trainer = _parse_trainer(value)
        elif number == 3:
            _expect(wire, _LENGTH, "ModelProto.normalizer_spec")
            normalizer = _parse_normalizer(value)
    return SentencePieceModel(pieces, trainer, normalizer, data)


def _parse_piece(buf: bytes) -> Piece:
    text, score, kind = "", 0.0, NORMAL
    for number, wire, value in _iter_fields(buf):
        if number == 1:
            _expect(wire, _LENGTH, "SentencePiece.piece")
            text = _as_text(value, "a piece")
        elif number == 2:
            _expect(wire, _FIXED32, "SentencePiece.score")
            score = struct.unpack("<f", value)[0]
        elif number == 3:
            _expect(wire, _VARINT, "SentencePiece.type")
            kind = _as_int32(value)
    return Piece(text, score, kind)


def _parse_trainer(buf: bytes) -> TrainerSpec:
    spec = TrainerSpec()
    varint_fields = {3: "model_type", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}
    for number, wire, value in _iter_fields(buf):
        if number in varint_fields:
            _expect(wire, _VARINT, f"TrainerSpec.{varint_fields[number]}")
            setattr(spec, varint_fields[number], _as_int32(value))
        elif number == 35:
            _expect(wire, _VARINT, "TrainerSpec.byte_fallback")
            spec.byte_fallback = bool(value)
    return spec


def _parse_normalizer(buf: bytes) -> NormalizerSpec:
    spec = NormalizerSpec()
    flags = {3: "add_dummy_prefix", 4: "remove_extra_whitespaces", 5: "escape_whitespaces"}
    for number, wire, value in _iter_fields(buf):
        if number == 1:
            _expect(wire, _LENGTH, "NormalizerSpec.name")
            spec.name = _as_text(value, "the normalizer name")
        elif number == 2:
            _expect(wire, _LENGTH, "NormalizerSpec.precompiled_charsmap")
            spec.precompiled_charsmap = bytes(value)
        elif number in flags:
            _expect(wire, _VARINT, f"NormalizerSpec.{flags[number]}")
            setattr(spec, flags[number], bool(value))
    return spec


def _check_model(model: SentencePieceModel) -> None:
    if not model.pieces:
        raise ValueError("it has no pieces")
    if model.trainer.model_type != UNIGRAM:
        raise ValueError(f"model_type is {model.trainer.model_type}; only Unigram (1) models are supported")
    seen: set[str] = set()
    unknown = []
    for index, piece in enumerate(model.pieces):
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
    if model.trainer.unk_id != unknown[0]:
        raise ValueError(f"trainer_spec.unk_id is {model.trainer.unk_id} but the unknown piece is {unknown[0]}")
    if model.normalizer.precompiled_charsmap:
        validate_precompiled_charsmap(model.normalizer.precompiled_charsmap)


# --- protobuf wire format: writing ------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _length_field(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _varint(value)


def _write_model(pieces: list[Piece], trainer: TrainerSpec, normalizer: NormalizerSpec) -> bytes:
    out = bytearray()
    for piece in pieces:
        body = (
            _length_field(1, piece.text.encode("utf-8"))
            + _key(2, _FIXED32)
            + struct.pack("<f", piece.score)
            + _varint_field(3, piece.kind)
        )
        out += _length_field(1, body)
    trainer_body = (
        _varint_field(3, trainer.model_type)
        + _varint_field(4, len(pieces))
        + _varint_field(35, int(trainer.byte_fallback))
        + _varint_field(40, trainer.unk_id)
        + _varint_field(41, trainer.bos_id)
        + _varint_field(42, trainer.eos_id)
        + _varint_field(43, trainer.pad_id)
    )
    out += _length_field(2, trainer_body)
    normalizer_body = (
        _length_field(1, normalizer.name.encode("utf-8"))
        + _length_field(2, normalizer.precompiled_charsmap)
        + _varint_field(3, int(normalizer.add_dummy_prefix))
        + _varint_field(4, int(normalizer.remove_extra_whitespaces))
        + _varint_field(5, int(normalizer.escape_whitespaces))
    )
    out += _length_field(3, normalizer_body)
    return bytes(out)
