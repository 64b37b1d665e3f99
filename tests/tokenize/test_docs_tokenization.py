from tests.docs_runner import run_page


def test_tokenization_docs_run(spm_model, docs_hub_cache, tmp_path):
    run_page(
        "tokenization.md", tmp_path, {"REMBERT_DOCS_SPM": str(spm_model), "REMBERT_DOCS_HUB_CACHE": str(docs_hub_cache)}
    )
