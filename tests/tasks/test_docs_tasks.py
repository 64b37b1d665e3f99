from tests.docs_runner import run_page


def test_tasks_docs_run(task_dirs, tmp_path):
    root = next(iter(task_dirs.values())).parent
    run_page("tasks.md", tmp_path, {"REMBERT_DOCS_TASKS": str(root)})
