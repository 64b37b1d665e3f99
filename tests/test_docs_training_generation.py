"""docs/training.md and docs/generation.md: every python block runs, in order, against a tiny checkpoint."""

from pathlib import Path

import pytest

from tests.docs_runner import run_page

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data" / "multilingual.txt"


@pytest.mark.parametrize("page", ["generation.md", "training.md"])
def test_docs_page_runs(docs_model_dir, tmp_path, page):
    run_page(page, tmp_path, {"REMBERT_DOCS_MODEL": str(docs_model_dir), "REMBERT_DOCS_TEXT": str(SAMPLE)})
