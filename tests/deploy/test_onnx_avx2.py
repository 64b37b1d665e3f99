"""The int8 ONNX export computes the same numbers on a CPU without AVX-512 or VNNI (AVX2 only).

ONNX Runtime picks its int8 kernel from what the CPU reports, and has no switch to pick another. Two CPUs that report
AVX2 without AVX-512 or VNNI, on which ONNX Runtime takes the kernel an AVX2-only machine takes (it adds two
uint8 x int8 products in a saturating 16-bit sum):
- valgrind's, which emulates the whole process;
- the CPUID hold that benchmarks/bench_deploy.py times ONNX Runtime under (benchmarks/onnx_runtime_on_avx2.py): a
  copy of ONNX Runtime whose CPUID instructions are answered as on an AVX2-only CPU, its kernels run natively.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import rembert_pt
from benchmarks import onnx_runtime_on_avx2
from tests.batches import batch_for, config_for

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

_PROBE = """
from benchmarks.onnx_runtime_on_avx2 import int8_products_exact
print(int8_products_exact(127), int8_products_exact(64))
"""

_RUN = """
import sys
import numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feed = dict(np.load(sys.argv[2]))
np.save(sys.argv[3], session.run([session.get_outputs()[0].name], feed)[0])
"""


@pytest.fixture(scope="module", params=["valgrind", "cpuid hold"])
def on_an_avx2_cpu(request, tmp_path_factory):
    """Runs `python -c code args...` in a child process on an AVX2-only CPU; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    prefix = [sys.executable]
    if request.param == "valgrind":
        valgrind = shutil.which("valgrind")
        assert valgrind, "valgrind is needed to run ONNX Runtime on a CPU without AVX-512: apt-get install valgrind"
        prefix = [valgrind, "-q", "--tool=none", sys.executable]
    else:
        env.update(onnx_runtime_on_avx2.environment(tmp_path_factory.mktemp("held")))

    def run(code: str, *args) -> str:
        done = subprocess.run([*prefix, "-c", code, *map(str, args)], env=env, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"{request.param}: {done.stderr[-2000:]}"
        return done.stdout

    return run


def test_the_avx2_cpu_takes_the_saturating_kernel_that_weights_within_64_avoid(on_an_avx2_cpu):
    # What makes the next test mean something: there, full-range int8 weights come out wrong; within 64 they are exact.
    assert on_an_avx2_cpu(_PROBE).split() == ["False", "True"]
    assert onnx_runtime_on_avx2.int8_products_exact(64)  # and on this CPU, whatever it has


def test_the_int8_export_gives_the_same_hidden_states_on_an_avx2_cpu(on_an_avx2_cpu, tmp_path):
    torch.manual_seed(0)
    model = rembert_pt.RemBertModel(config_for("base")).eval()
    with torch.no_grad():  # one projection whose weights all share a sign: pairs of large products everywhere
        query = model.encoder.layer[0].attention.self.query.weight
        query.copy_(query.abs() + 0.05)
    path = model.to_onnx(tmp_path / "int8.onnx", int8=True)
    feed = {k: v for k, v in batch_for("base", model.config).items() if k in INPUTS}
    native = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = native.run(["last_hidden_state"], feed)[0]
    np.savez(tmp_path / "feed.npz", **feed)
    on_an_avx2_cpu(_RUN, path, tmp_path / "feed.npz", tmp_path / "out.npy")
    got = np.load(tmp_path / "out.npy")
    # The int8 products are exact on both CPUs; only float32 rounding (other kernels' summation order) differs.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
