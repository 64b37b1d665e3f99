"""Train small, deterministic sentencepiece Unigram models for tests and demos.

The models look like RemBERT's: ``<pad>`` = 0, ``<unk>`` = 1, then ``[CLS]`` = 2, ``[SEP]`` = 3 and
``[MASK]`` = 4 as user-defined symbols, no ``<s>``/``</s>``. Training is single-threaded and reads the
text through an iterator, so the file bytes depend only on the text and the arguments (never on paths).

Example:
    >>> path = train_sentencepiece("examples/data/multilingual.txt", "/tmp/spm")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'sentencepiece.model'
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import sentencepiece as spm

NORMALIZATIONS = ("nmt_nfkc", "identity")
USER_DEFINED_SYMBOLS = ("[CLS]", "[SEP]", "[MASK]")


def train_sentencepiece(
    text_path: str | os.PathLike,
    model_prefix_or_dir: str | os.PathLike,
    vocab_size: int = 2000,
    normalization: str = "nmt_nfkc",
    seed: int = 0,
    character_coverage: float = 0.995,
) -> Path:
    """Train a Unigram model on the lines of ``text_path`` and write it; return the model's path.

    ``model_prefix_or_dir`` is either an existing directory (the model becomes
    ``<dir>/sentencepiece.model``, the name Hugging Face uses) or a prefix (``<prefix>.model``).
    ``normalization`` is ``"nmt_nfkc"`` (sentencepiece's default) or ``"identity"``. ``vocab_size`` is an
    upper bound: a small text may give fewer pieces. ``seed`` seeds sentencepiece's random generator;
    training also reads every line in order and uses one thread, so the bytes are the same every run.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    lines = [line for line in Path(text_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    target = Path(model_prefix_or_dir)
    path = target / "sentencepiece.model" if target.is_dir() else target.with_name(target.name + ".model")
    model = io.BytesIO()
    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=character_coverage,
        normalization_rule_name=normalization,
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols=list(USER_DEFINED_SYMBOLS),
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path
