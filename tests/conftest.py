"""Shared test fixtures: tiny configs and the Hugging Face oracle (transformers 4.x, tests only)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # reproducible TF numbers, comparable with PyTorch's
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No test reaches the network: huggingface_hub (read at its import) answers from its cache only.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from rembert_spec import RemBertConfig  # noqa: E402

TINY = dict(
    vocab_size=99,
    hidden_size=12,
    num_hidden_layers=2,
    num_attention_heads=3,
    input_embedding_size=8,
    output_embedding_size=10,
    intermediate_size=20,
    max_position_embeddings=40,
    type_vocab_size=2,
)


def tiny_config(**overrides) -> RemBertConfig:
    """A RemBERT small enough for a test to build in milliseconds, odd sizes on purpose."""
    return RemBertConfig(**{**TINY, **overrides})


@pytest.fixture
def config() -> RemBertConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def docs_model_dir(tmp_path_factory):
    """The tiny random masked-LM checkpoint the docs examples load (REMBERT_DOCS_MODEL)."""
    from rembert_spec.testing import write_random_checkpoint

    directory = tmp_path_factory.mktemp("docs-model")
    write_random_checkpoint(directory, tiny_config(), "masked_lm", seed=0)
    return directory


@pytest.fixture(scope="session")
def docs_hub_cache(docs_model_dir, tmp_path_factory):
    """A Hugging Face Hub cache holding "google/rembert": the docs model and a tokenizer trained on the shipped
    sample (REMBERT_DOCS_HUB_CACHE), read offline by the docs examples."""
    from rembert_tokenize import RemBertTokenizerFast
    from rembert_tokenize.testing import train_sentencepiece
    from tests.hub_cache import add_repo, files_of

    tokenizer_dir = tmp_path_factory.mktemp("docs-tokenizer")
    sample = Path(__file__).resolve().parent.parent / "examples" / "data" / "multilingual.txt"
    RemBertTokenizerFast(vocab_file=train_sentencepiece(sample, tokenizer_dir)).save_pretrained(tokenizer_dir)
    cache = tmp_path_factory.mktemp("docs-hub-cache")
    add_repo(cache, "google/rembert", {**files_of(docs_model_dir), **files_of(tokenizer_dir)})
    return cache


def damage(raw: bytes, data, max_edits: int) -> bytes:
    """For hypothesis tests of damaged files: `raw` truncated somewhere, or with up to `max_edits` bytes changed."""
    from hypothesis import strategies as st

    damaged = bytearray(raw)
    if data.draw(st.booleans()):
        return bytes(damaged[: data.draw(st.integers(0, len(damaged) - 1))])
    for _ in range(data.draw(st.integers(1, max_edits))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    return bytes(damaged)
