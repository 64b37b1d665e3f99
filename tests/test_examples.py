"""The training examples run (briefly, as their own processes) and their printed training loss goes down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LOSS = re.compile(r"^(?:(\w+) )?step +\d+ loss ([0-9.]+)$", re.M)


def run(*command: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def losses(output: str) -> dict[str, list[float]]:
    """Printed losses by model name ('' when the lines carry none), in step order."""
    found: dict[str, list[float]] = {}
    for name, value in LOSS.findall(output):
        found.setdefault(name, []).append(float(value))
    return found


def assert_goes_down(values: list[float], steps: int) -> None:
    assert len(values) == steps, values
    assert all(v == v for v in values), values  # no NaN
    first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
    assert last < first - 0.05, f"training loss did not go down: {values}"


@pytest.mark.parametrize("distributed", [False, True], ids=["one-process", "torchrun-ddp"])
def test_finetune_classification_pt(distributed):
    script = str(EXAMPLES / "finetune_classification_pt.py")
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"] if distributed else [sys.executable]
    )
    output = run(*launcher, script, "--steps", "30")
    assert_goes_down(losses(output)[""], 30)
    assert f" {2 if distributed else 1} process(es))" in output


@pytest.mark.parametrize("mirrored", [False, True], ids=["one-device", "mirrored"])
def test_finetune_classification_keras(mirrored):
    output = run(
        sys.executable,
        str(EXAMPLES / "finetune_classification_keras.py"),
        "--steps",
        "30",
        *(["--mirrored"] * mirrored),
    )
    assert_goes_down(losses(output)[""], 30)
    assert f" {2 if mirrored else 1} device(s))" in output
    first, last = map(float, re.search(r"first 5 steps ([0-9.]+), last 5 steps ([0-9.]+)", output).groups())
    assert last > first, "the accuracy metric is tracked during fit"


def test_functional_head_keras():
    output = run(sys.executable, str(EXAMPLES / "functional_head_keras.py"), "--steps", "12")
    assert_goes_down(losses(output)[""], 12)
    assert "reloaded from .keras: max |difference| 0.0e+00" in output
    exported = float(re.search(r"exported SavedModel: max \|difference\| ([0-9.e+-]+)", output).group(1))
    assert exported < 1e-5


def test_fill_mask_and_generate():
    output = run(sys.executable, str(EXAMPLES / "fill_mask_and_generate.py"), "--steps", "15")
    found = losses(output)
    assert_goes_down(found["mlm"], 15)
    assert_goes_down(found["clm"], 15)
    assert "top 5:" in output and "greedy:" in output and "sampled" in output


def test_encoder_decoder():
    output = run(sys.executable, str(EXAMPLES / "encoder_decoder.py"), "--steps", "15")
    assert_goes_down(losses(output)[""], 15)
    assert output.count("  copy ") == 3
