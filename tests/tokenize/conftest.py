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
