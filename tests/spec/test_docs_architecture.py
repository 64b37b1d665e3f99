"""docs/architecture.md: its ```python blocks run, in order, as the docs suite runs them."""

from rembert_spec.formats import FORMATS
from tests.docs_runner import run_page


def test_architecture_docs_run(tmp_path):
    registered = dict(FORMATS)
    namespace = run_page("architecture.md", tmp_path, {})
    assert namespace["checkpoint"].format == "npz"
    assert FORMATS == registered  # the example's format was registered for the example only
