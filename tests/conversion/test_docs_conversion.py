"""docs/conversion.md: its ```python blocks run as the docs suite runs them, and every `$ rembert-convert`
line of its ```console blocks runs through `conversion.cli.main`, in order, in a directory holding the files the
page names (`my-rembert`, `google/model.ckpt`); the status and the output shown must be what the command does."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conversion.cli import main
from tests.conftest import tiny_config
from tests.conversion.helpers import make_model, write_google_checkpoint
from tests.docs_runner import DOCS, run_page

PAGE = "conversion.md"
_CONSOLE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)


def console_commands(page: str = PAGE) -> list[tuple[str, list[str]]]:
    """(command, output lines shown under it) for every `$ rembert-convert` line, in page order."""
    commands: list[tuple[str, list[str]]] = []
    for block in _CONSOLE.findall((DOCS / page).read_text(encoding="utf-8")):
        current = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = (line[2:], []) if line.startswith("$ rembert-convert ") else None
                if current:
                    commands.append(current)
            elif current is not None:
                current[1].append(line)
    return commands


def _shown_lines_match(shown: list[str], actual: list[str]) -> list[str]:
    """Shown lines missing from the actual output ('...' elides; timings and verify figures vary)."""
    missing = []
    in_verify_table = False
    for line in shown:
        if line.startswith("verify:"):
            in_verify_table = True
        elif in_verify_table or line.startswith("done in"):
            continue
        if "..." in line:
            head, tail = line.split("...", 1)[0], line.rsplit("...", 1)[1]
            found = any(a.startswith(head) and a.endswith(tail) for a in actual)
        else:
            found = line in actual
        if not found:
            missing.append(line)
    return missing


def test_python_blocks_run(docs_model_dir, tmp_path):
    namespace = run_page(PAGE, tmp_path, {"REMBERT_DOCS_MODEL": str(docs_model_dir)})
    assert namespace["report"].head == "masked_lm"


def test_console_commands_do_what_the_page_shows(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorflow")  # the Google checkpoint is written by TensorFlow; --verify runs it
    commands = console_commands()
    assert len(commands) >= 10
    make_model(tmp_path / "my-rembert", tiny_config(), tokenizer=True)
    write_google_checkpoint(tmp_path / "google", tiny_config())
    tiny_config().to_json_file(tmp_path / "google" / "rembert_config.json")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    for command, shown in commands:
        status = main(shlex.split(command)[1:])
        captured = capsys.readouterr()
        errors = [line for line in shown if line.startswith("rembert-convert: error:")]
        if errors:
            assert status != 0, command
            assert captured.err.strip().splitlines()[-1] == errors[0], command
        else:
            assert status == 0, f"{command}: {captured.err}"
            missing = _shown_lines_match(shown, captured.out.splitlines())
            assert not missing, f"{command}: the page shows lines the command does not print: {missing}"
    assert (
        Path("my-rembert-verified/model.safetensors").read_bytes() == Path("my-rembert/model.safetensors").read_bytes()
    )
