"""The int8 ONNX export computes the same numbers on a CPU without AVX-512 or VNNI (AVX2 only).

ONNX Runtime picks its int8 kernel from what the CPU reports, and has no switch to pick another. Valgrind's CPU
reports AVX2 without AVX-512 or VNNI, so ONNX Runtime run under valgrind takes the kernel an AVX2-only machine takes:
it adds two uint8 x int8 products in a saturating 16-bit sum.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

import rembert_pt
from tests.batches import batch_for, config_for

INPUTS = ("input_ids", "attention_mask", "token_type_ids")

_RUN = """
import sys
import numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feed = dict(np.load(sys.argv[2]))
np.save(sys.argv[3], session.run([session.get_outputs()[0].name], feed)[0])
"""


def run_on_an_avx2_cpu(model_path, feed: dict, tmp_path) -> np.ndarray:
    """ONNX Runtime's first output for `feed`, computed under valgrind (an AVX2 CPU without VNNI)."""
    valgrind = shutil.which("valgrind")
    assert valgrind, "valgrind is needed to run ONNX Runtime on a CPU without AVX-512: apt-get install valgrind"
    np.savez(tmp_path / "feed.npz", **feed)
    out = tmp_path / "out.npy"
    command = [valgrind, "-q", "--tool=none", sys.executable, "-c", _RUN, str(model_path), str(tmp_path / "feed.npz")]
    subprocess.run([*command, str(out)], check=True, capture_output=True, timeout=600)
    return np.load(out)


def matmul_integer_model(path, weight: np.ndarray) -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "int8_product",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, weight.shape[1]])],
        [numpy_helper.from_array(weight, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))


def test_valgrinds_cpu_takes_the_saturating_kernel_that_weights_within_64_avoid(tmp_path):
    # What makes the next test mean something: under valgrind, full-range int8 weights come out wrong.
    inputs = {"a": np.full((4, 64), 255, dtype=np.uint8)}
    for limit, exact_on_avx2 in ((127, False), (64, True)):
        weight = np.full((64, 16), limit, dtype=np.int8)
        matmul_integer_model(tmp_path / f"w{limit}.onnx", weight)
        expected = inputs["a"].astype(np.int64) @ weight.astype(np.int64)
        native = ort.InferenceSession(str(tmp_path / f"w{limit}.onnx"), providers=["CPUExecutionProvider"])
        if exact_on_avx2:  # exact on every CPU: this one too (full-range weights are exact here only with VNNI)
            assert (native.run(None, inputs)[0] == expected).all()
        got = run_on_an_avx2_cpu(tmp_path / f"w{limit}.onnx", inputs, tmp_path)
        assert bool((got == expected).all()) == exact_on_avx2, f"weights within {limit}"


def test_the_int8_export_gives_the_same_hidden_states_on_an_avx2_cpu(tmp_path):
    torch.manual_seed(0)
    model = rembert_pt.RemBertModel(config_for("base")).eval()
    with torch.no_grad():  # one projection whose weights all share a sign: pairs of large products everywhere
        query = model.encoder.layer[0].attention.self.query.weight
        query.copy_(query.abs() + 0.05)
    path = model.to_onnx(tmp_path / "int8.onnx", int8=True)
    feed = {k: v for k, v in batch_for("base", model.config).items() if k in INPUTS}
    native = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = native.run(["last_hidden_state"], feed)[0]
    got = run_on_an_avx2_cpu(path, feed, tmp_path)
    # The int8 products are exact on both CPUs; only float32 rounding (other kernels' summation order) differs.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
