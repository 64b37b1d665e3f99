from tests.docs_runner import run_page


def test_reliability_docs_run(docs_model_dir, tmp_path):
    run_page("reliability.md", tmp_path, {"REMBERT_DOCS_MODEL": str(docs_model_dir)})
