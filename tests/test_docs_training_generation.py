"""docs/training.md and docs/generation.md: every python block runs, in order, against a tiny checkpoint."""

import sys
from pathlib import Path

from tests.docs_runner import run_page

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "data" / "multilingual.txt"


def test_training_docs_run(docs_model_dir, tmp_path):
    run_page("training.md", tmp_path, {"REMBERT_DOCS_MODEL": str(docs_model_dir), "REMBERT_DOCS_TEXT": str(SAMPLE)})


def test_generation_docs_run(tmp_path):
    # The generation page tokenizes its prompts: the examples' tiny checkpoint carries its tokenizer.
    sys.path.insert(0, str(EXAMPLES))
    try:
        from build_tiny_checkpoint import build
    finally:
        sys.path.remove(str(EXAMPLES))
    model_dir, _ = build()
    run_page("generation.md", tmp_path, {"REMBERT_DOCS_MODEL": str(model_dir)})
