"""`rembert-convert SRC DST --to onnx [--int8]` as a user types it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch

import rembert_pt
from conversion.cli import main
from rembert_spec.testing import write_random_checkpoint
from tests.batches import batch_for
from tests.conftest import tiny_config

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def test_to_onnx_writes_a_model_directory_that_onnx_runtime_runs_as_pytorch_does(tmp_path, capsys):
    config = tiny_config(num_labels=3)
    write_random_checkpoint(tmp_path / "src", config, "token_classification", seed=0, fmt="tf_h5")
    (tmp_path / "src" / "tokenizer_config.json").write_text("{}")
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "onnx"]) == 0
    assert "ONNX opset 18, float32" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json",
        "model.onnx",
        "tokenizer_config.json",
    ]
    inputs = {k: v for k, v in batch_for("token_classification", config).items() if k in INPUTS}
    got = ort.InferenceSession(str(tmp_path / "out" / "model.onnx")).run(["logits"], inputs)[0]
    model = rembert_pt.RemBertForTokenClassification.from_pretrained(tmp_path / "src")
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_int8_and_opset_are_passed_on(tmp_path):
    write_random_checkpoint(tmp_path / "src", tiny_config(), "base", seed=0)
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "onnx", "--int8", "--opset", "17", "-q"]) == 0
    model = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    assert "MatMulInteger" in {node.op_type for node in model.graph.node}


def test_options_that_do_not_fit_are_refused_before_anything_is_written(tmp_path, capsys):
    write_random_checkpoint(tmp_path / "src", tiny_config(), "base", seed=0)
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    for argv, words in (
        ([src, out, "--to", "pt", "--int8"], "--int8 applies to --to onnx only"),
        ([src, out, "--to", "tf", "--opset", "18"], "--opset applies to --to onnx only"),
        ([src, out, "--to", "onnx", "--dtype", "float16"], "--dtype does not apply to --to onnx"),
        ([src, out, "--to", "onnx", "--verify"], "--verify does not apply to --to onnx"),
        ([src, out, "--to", "onnx", "--opset", "13"], "--opset must be at least 17"),
    ):
        assert main(argv) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_existing_destination_is_kept_unless_forced(tmp_path, capsys):
    write_random_checkpoint(tmp_path / "src", tiny_config(), "base", seed=0)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "onnx", "-q"]) == 1
    assert "exists and is not empty; pass --force" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "onnx", "-q", "--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.onnx"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind
