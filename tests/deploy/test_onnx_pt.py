"""`model.to_onnx(path)` for every PyTorch head, run by ONNX Runtime as a deployment would run it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rembert_pt
from rembert_spec import onnx_files
from rembert_spec.weights import HEADS
from tests.batches import batch_for, config_for
from tests.deploy.classifier import held_out_inputs

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def model_for(head: str):
    torch.manual_seed(0)
    return getattr(rembert_pt, HEADS[head].pt_class)(config_for(head)).eval()


@pytest.mark.parametrize("head", list(HEADS))
def test_onnx_runtime_matches_pytorch_for_every_head_at_any_batch_and_length(head, tmp_path):
    model = model_for(head)
    path = model.to_onnx(tmp_path / "model.onnx")
    runtime = session(path)
    assert [i.name for i in runtime.get_inputs()] == list(INPUTS)
    for batch, length in ((5, 13), (2, 3)):
        inputs = {k: v for k, v in batch_for(head, model.config, batch=batch, length=length).items() if k in INPUTS}
        if length == 3:  # one row, one token
            inputs = {k: v[:1, ..., :1] for k, v in inputs.items()}
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        names = [o.name for o in runtime.get_outputs()]
        assert names == [k for k, v in expected.items() if isinstance(v, torch.Tensor)]
        for name, got in zip(names, runtime.run(None, inputs), strict=True):
            np.testing.assert_allclose(got, expected[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_graph_skips_padding_and_declares_dynamic_axes(tmp_path):
    model = model_for("base")
    graph = onnx.load(str(model.to_onnx(tmp_path / "model.onnx"))).graph
    assert "NonZero" in {node.op_type for node in graph.node}  # the real tokens are gathered in the graph
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param != "" for d in dims] == [True, True], tensor.name
    inputs = {k: v for k, v in batch_for("base", model.config).items() if k in INPUTS}
    hidden = session(tmp_path / "model.onnx").run(["last_hidden_state"], inputs)[0]
    assert (hidden[inputs["attention_mask"] == 0] == 0).all()  # padding is zeros, as in eager PyTorch


def test_int8_onnx_agrees_with_float_on_the_fine_tuned_classifier(classifier_dir, tmp_path):
    model = rembert_pt.RemBertForSequenceClassification.from_pretrained(classifier_dir)
    inputs = held_out_inputs()
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    path = model.to_onnx(tmp_path / "int8.onnx", int8=True)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    # every linear layer of every encoder layer but the attention output, as two quantized products (W_hi, W_lo)
    assert ops.count("MatMulInteger") == 2 * 5 * model.config.num_hidden_layers
    got = session(path).run(["logits"], inputs)[0]
    agreement = float((got.argmax(-1) == expected.argmax(-1)).mean())
    assert agreement >= 0.99, f"int8 ONNX changed {1 - agreement:.1%} of the predictions"
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 0.02


def test_a_failed_export_leaves_the_previous_model_in_place(tmp_path, monkeypatch):
    model = model_for("token_classification")
    path = model.to_onnx(tmp_path / "model.onnx")
    before = path.read_bytes()

    def broken(program, file):
        file.write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch.onnx.ONNXProgram, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        model.to_onnx(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # nothing left beside it


def test_large_models_keep_their_weights_beside_the_file_and_replace_them_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_files, "MAX_SINGLE_FILE", 1)
    model = model_for("base")
    # torch.onnx decides by its own 2 GB threshold: ask it for external data as it would for a full-size model.
    original = torch.onnx.ONNXProgram.save
    monkeypatch.setattr(torch.onnx.ONNXProgram, "save", lambda self, file: original(self, file, external_data=True))
    path = model.to_onnx(tmp_path / "model.onnx")
    first = onnx_files.external_data_files(path)
    assert len(first) == 1 and (tmp_path / next(iter(first))).is_file()
    model.to_onnx(path, int8=True)  # replaced: the new data file in, the old one gone
    second = onnx_files.external_data_files(path)
    assert second and second != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"model.onnx", *second})
    inputs = {k: v for k, v in batch_for("base", model.config).items() if k in INPUTS}
    assert session(path).run(None, inputs)[0].shape == (3, 9, model.config.hidden_size)


def test_bad_arguments_are_refused(tmp_path):
    model = model_for("base")
    with pytest.raises(ValueError, match="opset must be an integer >= 17"):
        model.to_onnx(tmp_path / "model.onnx", opset=13)
    assert not (tmp_path / "model.onnx").exists()


def test_one_weight_term_halves_the_int8_products_and_loses_accuracy(tmp_path):
    # The benchmark's measurement of what the second term buys (bench_deploy: one term on an AVX2-only CPU).
    model = model_for("base")
    float_path = model.to_onnx(tmp_path / "float.onnx")
    weights = {n.input[1] for n in onnx.load(str(float_path)).graph.node if n.op_type in ("MatMul", "Gemm")}
    weights &= {f"model.{name}" for name, _ in model.named_parameters() if ".intermediate." in name}
    inputs = {k: v for k, v in batch_for("base", model.config).items() if k in INPUTS}
    expected = session(float_path).run(["last_hidden_state"], inputs)[0]
    products, errors = {}, {}
    for terms in (1, 2):
        path = onnx_files.quantize_int8(float_path, tmp_path / f"int8-{terms}.onnx", weights, weight_terms=terms)
        products[terms] = sum(n.op_type == "MatMulInteger" for n in onnx.load(str(path)).graph.node)
        got = session(path).run(["last_hidden_state"], inputs)[0]
        errors[terms] = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert products == {1: model.config.num_hidden_layers, 2: 2 * model.config.num_hidden_layers}
    assert errors[2] < errors[1] < 0.1
    with pytest.raises(ValueError, match="weight_terms must be 1 or 2, got 3"):
        onnx_files.quantize_int8(float_path, tmp_path / "int8-3.onnx", weights, weight_terms=3)
    assert not (tmp_path / "int8-3.onnx").exists()
