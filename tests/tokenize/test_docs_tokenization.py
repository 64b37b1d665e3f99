from tests.docs_runner import run_page


def test_tokenization_docs_run(spm_model, tmp_path):
    run_page("tokenization.md", tmp_path, {"REMBERT_DOCS_SPM": str(spm_model)})
