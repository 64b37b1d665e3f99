from tests.docs_runner import run_page


def test_tensorflow_docs_run(docs_model_dir, docs_hub_cache, tmp_path):
    env = {"REMBERT_DOCS_MODEL": str(docs_model_dir), "REMBERT_DOCS_HUB_CACHE": str(docs_hub_cache)}
    run_page("tensorflow.md", tmp_path, env)
