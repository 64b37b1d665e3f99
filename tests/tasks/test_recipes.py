"""The XTREME recipes fine-tune on the shipped samples (loss goes down), evaluate through the pipelines and the real
metrics, print a row per language, and save checkpoints that either framework's pipelines load."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.test_examples import EXAMPLES, assert_goes_down, losses, run

from .conftest import REPO

XTREME = EXAMPLES / "xtreme"
DATA = EXAMPLES / "data" / "xtreme"
STEPS = 40


def table(output: str, columns: int) -> dict[str, list[float]]:
    """The summary table's rows: language -> (examples, metric...)."""
    row = re.compile(r"^(\w+) +(\d+)" + r" +([0-9.]+)" * columns + "$", re.M)
    return {match[0]: [float(v) for v in match[1:]] for match in row.findall(output)}


def eval_languages(name: str) -> set[str]:
    path = DATA / name
    if path.suffix == ".jsonl":
        return {json.loads(line)["language"] for line in path.read_text(encoding="utf-8").splitlines()}
    if path.suffix == ".conll":
        return {line.split(":", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line}
    return {article["language"] for article in json.loads(path.read_text(encoding="utf-8"))["data"]}


RECIPES = [
    ("run_classification.py", [], "xnli_dev.jsonl", 1, "text-classification"),
    ("run_ner.py", [], "panx_dev.conll", 3, "token-classification"),
    ("run_qa.py", ["--max-seq-len", "48", "--doc-stride", "16"], "xquad_dev.json", 2, "question-answering"),
]


@pytest.mark.parametrize("framework", ["pt", "tf"])
@pytest.mark.parametrize("script, options, eval_file, metrics, task", RECIPES, ids=[r[0] for r in RECIPES])
def test_recipe_trains_evaluates_and_saves(tmp_path, framework, script, options, eval_file, metrics, task):
    output = run(
        sys.executable,
        str(XTREME / script),
        "--framework",
        framework,
        "--steps",
        str(STEPS),
        "--output-dir",
        str(tmp_path / "model"),
        *options,
    )
    assert_goes_down(losses(output)[""], STEPS)
    rows = table(output, metrics)
    languages = eval_languages(eval_file)
    assert set(rows) == languages | {"average"}, output
    assert rows["average"][0] == sum(rows[language][0] for language in languages)
    for values in rows.values():
        assert all(0 <= value <= 100 for value in values[1:])
    saved = {path.name for path in (tmp_path / "model").iterdir()}
    assert {"config.json", "tokenizer.json", "sentencepiece.model"} <= saved
    assert ("model.safetensors" if framework == "pt" else "tf_model.h5") in saved
    if script == "run_classification.py":
        # the other framework's pipeline reads the saved checkpoint and agrees with the recipe's own; trained
        # weights make larger logits than random ones, so float32 rounding differs by up to ~1e-5 in a score
        from tests.tasks.conftest import assert_same, ours

        pairs = [{"text": line["premise"], "text_pair": line["hypothesis"]} for line in _jsonl(DATA / eval_file)]
        other = "tf" if framework == "pt" else "pt"
        mine = ours(framework, task, tmp_path / "model")(pairs)
        assert_same(ours(other, task, tmp_path / "model")(pairs), mine, atol=5e-5)


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_readers_of_the_recipes():
    sys.path.insert(0, str(XTREME))
    try:
        from run_ner import read_conll
        from run_qa import read_squad
    finally:
        sys.path.remove(str(XTREME))
    sentences = read_conll(DATA / "panx_dev.conll")
    assert sentences[0] == {
        "words": ["Albert", "Einstein", "was", "born", "in", "Ulm", "."],
        "tags": ["B-PER", "I-PER", "O", "O", "O", "B-LOC", "O"],
        "language": "en",
    }
    assert sentences[-1]["language"] == "hi"
    for question in read_squad(DATA / "squad_train.json", "en") + read_squad(DATA / "xquad_dev.json", "en"):
        start = question["answer_start"]
        assert question["context"][start : start + len(question["answers"][0])] == question["answers"][0]


def test_dataset_names_need_the_datasets_package():
    code = (
        "import sys; sys.modules['datasets'] = None; sys.argv = ['run_classification.py', '--dataset', 'xnli', "
        "'--output-dir', 'unused']; sys.path.insert(0, 'examples/xtreme'); import runpy; "
        "runpy.run_path('examples/xtreme/run_classification.py', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert "--dataset xnli needs Hugging Face datasets: pip install 'rembert[xtreme]'" in result.stderr
