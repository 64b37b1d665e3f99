"""Fixtures for the tokenizer tests: sentencepiece models trained on the shipped multilingual sample."""

from __future__ import annotations

import itertools
import warnings
from functools import cache
from pathlib import Path

import pytest

from rembert_tokenize import RemBertTokenizer, RemBertTokenizerFast
from rembert_tokenize.testing import train_sentencepiece

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "multilingual.txt"
NORMALIZATIONS = ("nmt_nfkc", "identity")
# (do_lower_case, keep_accents, remove_space)
OPTION_SETS = list(itertools.product([True, False], repeat=3))


@pytest.fixture(scope="session")
def sample_lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="session")
def spm_models(tmp_path_factory) -> dict[str, Path]:
    """One trained model per normalization rule: ``{"nmt_nfkc": path, "identity": path}``."""
    models = {}
    for name in NORMALIZATIONS:
        directory = tmp_path_factory.mktemp(f"spm_{name}")
        models[name] = train_sentencepiece(SAMPLE, directory, normalization=name)
    return models


@pytest.fixture(scope="session")
def spm_model(spm_models) -> Path:
    return spm_models["nmt_nfkc"]


@cache
def tokenizers_for(model_path: Path, do_lower_case: bool, keep_accents: bool, remove_space: bool):
    """(ours slow, ours fast, Hugging Face fast) built from the same model with the same options."""
    from transformers import RemBertTokenizerFast as HFRemBertTokenizerFast

    options = {"do_lower_case": do_lower_case, "keep_accents": keep_accents, "remove_space": remove_space}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = HFRemBertTokenizerFast(vocab_file=str(model_path), from_slow=True, **options)
    return RemBertTokenizer(model_path, **options), RemBertTokenizerFast(vocab_file=model_path, **options), hf


@pytest.fixture(scope="session")
def trio(spm_model):
    """Default options: (ours slow, ours fast, Hugging Face fast)."""
    return tokenizers_for(spm_model, True, False, True)


def fresh_tokenizers(model_path: Path, **options):
    """(ours slow, ours fast, Hugging Face fast), new instances that a test may change (add tokens to)."""
    from transformers import RemBertTokenizerFast as HFRemBertTokenizerFast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = HFRemBertTokenizerFast(vocab_file=str(model_path), from_slow=True, **options)
    return RemBertTokenizer(model_path, **options), RemBertTokenizerFast(vocab_file=model_path, **options), hf


def add_vocabulary(tokenizer) -> list[int]:
    """The same vocabulary changes, made the way a user makes them; returns what each call returned."""
    from tokenizers import AddedToken

    return [
        tokenizer.add_tokens(["newword", "Straße", "[CLS]", "newword", ""]),
        tokenizer.add_tokens(["<ent>"], special_tokens=True),
        tokenizer.add_tokens([AddedToken("<x>"), AddedToken("<y>", lstrip=True, rstrip=True)], special_tokens=True),
        tokenizer.add_tokens([AddedToken("ñu", single_word=True)]),
        tokenizer.add_special_tokens({"additional_special_tokens": ["<e1>", "</e1>"]}),
        tokenizer.add_special_tokens({"additional_special_tokens": ["<e2>"]}, replace_additional_special_tokens=False),
        tokenizer.add_special_tokens({"pad_token": "<newpad>"}),
    ]


# Text pieces that hit the added tokens above (as written, lowercased, and inside words).
ADDED_PIECES = ["newword", "NEWWORD", "Straße", "strasse", "<ent>", "<x>", " <y> ", "<y>", "ñu", "xñux", "<e1>",
                "</e1>", "<e2>", "<newpad>", "<pad>", "[MASK]", " [mask]"]  # fmt: skip


@pytest.fixture(scope="session")
def added_trio(spm_model):
    """(ours slow, ours fast, Hugging Face fast) with the same added tokens."""
    trio = fresh_tokenizers(spm_model)
    for tokenizer in trio:
        add_vocabulary(tokenizer)
    return trio
