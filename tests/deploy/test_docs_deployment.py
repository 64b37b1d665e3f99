from tests.docs_runner import run_page


def test_deployment_docs_run(docs_model_dir, tmp_path):
    namespace = run_page("deployment.md", tmp_path, {"REMBERT_DOCS_MODEL": str(docs_model_dir)})
    assert namespace["bf16_hidden"].shape == namespace["eager"].last_hidden_state.shape
