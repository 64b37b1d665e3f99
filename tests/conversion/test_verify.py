"""--verify: PyTorch and TensorFlow models from SRC and DST on a sample batch, per head, with a tolerance; and no
framework import without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conversion import VerificationFailed, convert
from conversion.cli import EXIT_VERIFY, main
from tests.conftest import tiny_config
from tests.conversion.helpers import make_model, write_google_checkpoint

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("rembert_tf")

ROOT = Path(__file__).resolve().parents[2]


def _rows(report) -> set[tuple[str, str, str]]:
    return {(row.head, row.output, row.model) for row in report.verification.rows}


def test_float32_conversion_verifies(tmp_path, capsys):
    src = make_model(tmp_path / "src")
    assert main([str(src), str(tmp_path / "tf"), "--to", "tf", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "verify: pt(dst), tf(src), tf(dst) against pt(src)" in out and ": OK" in out
    report = convert(src, tmp_path / "tf2", to="tf", verify=True)
    assert _rows(report) == {
        (head, output, model)
        for head, output in (("base", "last_hidden_state"), ("masked_lm", "logits"))
        for model in ("pt(dst)", "tf(src)", "tf(dst)")
    }
    assert report.verification.ok and report.verification.limit == pytest.approx(1e-4 * report.verification.scale)
    per_head = report.verification.per_head()
    assert list(per_head) == ["base", "masked_lm"] and max(per_head.values()) < 1e-5
    assert next(r.value for r in report.verification.rows if r.model == "pt(dst)") == 0.0


def test_float16_verifies_with_its_own_tolerance(tmp_path):
    src = make_model(tmp_path / "src")
    report = convert(src, tmp_path / "half", to="pt", dtype="float16", verify=True)
    assert report.verification.tolerance == 1e-2
    assert 0 < report.verification.max_abs_difference < report.verification.limit


def test_above_tolerance_fails_and_writes_nothing(tmp_path, capsys):
    src = make_model(tmp_path / "src")
    argv = [str(src), str(tmp_path / "half"), "--to", "pt", "--dtype", "float16", "--verify", "--tolerance", "1e-9"]
    assert main(argv) == EXIT_VERIFY
    captured = capsys.readouterr()
    assert "ABOVE TOLERANCE" in captured.out
    error = captured.err.strip().splitlines()
    assert len(error) == 1 + 4  # the four "verify: loading" progress lines, then the one error line
    assert error[-1].startswith("rembert-convert: error: ") and "DST was not written" in error[-1]
    assert not (tmp_path / "half").exists()
    assert not list(tmp_path.glob(".half.rembert-convert-*"))
    with pytest.raises(VerificationFailed) as caught:
        convert(src, tmp_path / "half", to="pt", dtype="float16", verify=True, tolerance=1e-9)
    assert not caught.value.report.verification.ok


def test_quiet_verify_prints_only_the_error(tmp_path, capsys):
    src = make_model(tmp_path / "src")
    argv = [str(src), str(tmp_path / "h"), "--to", "pt", "--dtype", "float16", "--verify", "--tolerance", "1e-9", "-q"]
    assert main(argv) == EXIT_VERIFY
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1


def test_head_weights_initialised_at_load_are_not_compared(tmp_path):
    src = make_model(tmp_path / "src")
    report = convert(src, tmp_path / "cls", to="tf", head="sequence_classification", verify=True)
    assert {head for head, _, _ in _rows(report)} == {"base"}
    assert report.verification.ok


@pytest.mark.parametrize("head", ["multiple_choice", "question_answering", "base"])
def test_other_heads(tmp_path, head):
    src = make_model(tmp_path / "src", head=head)
    report = convert(src, tmp_path / "tf", to="tf", verify=True)
    outputs = {output for _, output, _ in _rows(report)}
    expected = {"multiple_choice": {"logits"}, "question_answering": {"start_logits", "end_logits"}}
    assert outputs == {"last_hidden_state"} | expected.get(head, {"pooler_output"})
    assert report.verification.ok


def test_google_checkpoint_verifies(tmp_path):
    config = tiny_config()
    prefix = write_google_checkpoint(tmp_path / "google", config)
    config.to_json_file(tmp_path / "config.json")
    report = convert(prefix, tmp_path / "tf", to="tf", config=tmp_path / "config.json", verify=True)
    assert {output for _, output, _ in _rows(report)} == {"last_hidden_state", "pooler_output"}
    assert report.verification.ok


def test_no_framework_is_imported_without_verify(tmp_path):
    src = make_model(tmp_path / "src")
    code = (
        "import sys; from conversion.cli import main; "
        f"assert main([{str(src)!r}, {str(tmp_path / 'tf')!r}, '--to', 'tf', '-q']) == 0; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
