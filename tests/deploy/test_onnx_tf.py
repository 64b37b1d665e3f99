"""`model.to_onnx(path)` for every TensorFlow head (tf2onnx over `serving_function()`), run by ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import rembert_tf
from rembert_spec.weights import HEADS
from rembert_tf import onnx_export
from tests.batches import batch_for, config_for

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@pytest.mark.parametrize("head", list(HEADS))
def test_onnx_runtime_matches_tensorflow_for_every_head(head, tmp_path):
    config = config_for(head)
    model = getattr(rembert_tf, HEADS[head].tf_class)(config)
    runtime = ort.InferenceSession(str(model.to_onnx(tmp_path / "model.onnx")))
    assert [i.name for i in runtime.get_inputs()] == list(INPUTS)
    for batch, length in ((5, 13), (2, 4)):
        arrays = batch_for(head, config, batch=batch, length=length)
        inputs = {k: v.astype(np.int32) for k, v in arrays.items() if k in INPUTS}
        expected = model(**inputs)
        names = [o.name for o in runtime.get_outputs()]
        for name, got in zip(names, runtime.run(None, inputs), strict=True):
            np.testing.assert_allclose(got, expected[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_int8_quantizes_every_encoder_kernel_and_stays_close(tmp_path):
    config = config_for("token_classification")
    model = rembert_tf.TFRemBertForTokenClassification(config)
    path = model.to_onnx(tmp_path / "int8.onnx", int8=True)
    graph = onnx.load(str(path)).graph
    # the attention output projection stays float (as in the PyTorch export)
    assert sum(node.op_type == "MatMulInteger" for node in graph.node) == 2 * 5 * config.num_hidden_layers
    assert "NonZero" in {node.op_type for node in graph.node}  # the padding skip survives quantization
    inputs = {k: v.astype(np.int32) for k, v in batch_for("token_classification", config).items() if k in INPUTS}
    got = ort.InferenceSession(str(path)).run(["logits"], inputs)[0]
    expected = model(**inputs)["logits"].numpy()
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 0.02


def test_models_above_two_gigabytes_are_sent_to_the_pytorch_exporter(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "MAX_SINGLE_FILE", 1000)
    model = rembert_tf.TFRemBertModel(config_for("base"))
    with pytest.raises(ValueError, match="rembert-convert MODEL_DIR OUT --to onnx"):
        model.to_onnx(tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []
