"""int8 in PyTorch (`from_pretrained(..., quantize="int8")`): what it changes, what it refuses, how far it moves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rembert_pt
from rembert_pt import internals
from rembert_pt.quantize import Int8Linear, bf16_path, quantize_model, quantized_linears
from rembert_spec.testing import write_random_checkpoint
from tests.batches import batch_for
from tests.conftest import tiny_config
from tests.deploy.classifier import held_out_inputs


def test_int8_predictions_agree_with_float_on_held_out_inputs(classifier_dir):
    inputs = {k: torch.from_numpy(v) for k, v in held_out_inputs().items()}
    float_model = rembert_pt.RemBertForSequenceClassification.from_pretrained(classifier_dir)
    int8_model = rembert_pt.RemBertForSequenceClassification.from_pretrained(classifier_dir, quantize="int8")
    with torch.no_grad():
        expected, got = float_model(**inputs).logits, int8_model(**inputs).logits
    agreement = float((expected.argmax(-1) == got.argmax(-1)).float().mean())
    assert agreement >= 0.99, f"int8 changed {1 - agreement:.1%} of the predictions"
    assert float((got - expected).norm() / expected.norm()) < 0.02


def test_only_the_encoder_layers_linear_layers_are_quantized(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", seed=0)
    model = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path, quantize="int8")
    int8 = {name for name, module in model.named_modules() if isinstance(module, Int8Linear)}
    assert len(int8) == 6 * model.config.num_hidden_layers  # query, key, value, attention output, FFN in and out
    assert all(".encoder.layer." in name for name in int8)
    floats = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    backbone = model._backbone()
    assert isinstance(backbone.encoder.embedding_hidden_mapping_in, torch.nn.Linear)
    assert isinstance(model.cls.predictions.decoder, torch.nn.Linear)  # the vocabulary projection stays float
    assert len(floats) == 3  # mapping in, LM head dense, decoder
    assert model.quantization == "int8"


def test_int8_linear_is_close_to_float_and_the_same_without_the_int8_kernel():
    torch.manual_seed(0)
    linear = torch.nn.Linear(40, 24)
    x = torch.randn(3, 5, 40) * 3 + 0.5
    expected = linear(x).detach()
    for terms, bound in ((1, 1e-2), (2, 1e-4)):
        layer = Int8Linear(linear, input_terms=terms)
        got = layer(x)
        assert got.shape == expected.shape
        assert float((got - expected).norm() / expected.norm()) < bound
        internals.DISABLED.add("int_mm")
        try:
            torch.testing.assert_close(layer(x), got, rtol=0, atol=1e-6)  # exact integers either way
        finally:
            internals.DISABLED.discard("int_mm")


def test_a_quantized_model_runs_every_forward_a_user_makes(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", seed=0)
    model = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path, quantize="int8")
    inputs = {k: torch.from_numpy(v) for k, v in batch_for("masked_lm", model.config).items()}
    reference = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path)
    out = model(**inputs)  # gradients enabled, labels given: the loss still computes
    expected = reference(**inputs)
    assert abs(out.loss.item() - expected.loss.item()) < 0.05
    assert model(input_ids=inputs["input_ids"][:, :1]).logits.shape[:2] == (3, 1)


def test_bad_switch_values_and_saving_are_refused(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "base", seed=0)
    with pytest.raises(ValueError, match="quantize must be None or one of 'int8', got 'int4'"):
        rembert_pt.RemBertModel.from_pretrained(tmp_path, quantize="int4")
    with pytest.raises(TypeError, match="'quantise' \\(did you mean 'quantize'\\?\\)"):
        rembert_pt.RemBertModel.from_pretrained(tmp_path, quantise="int8")
    model = rembert_pt.RemBertModel.from_pretrained(tmp_path, quantize="int8")
    with pytest.raises(ValueError, match="is quantized \\(int8\\) and cannot be saved"):
        model.save_pretrained(tmp_path / "saved")
    assert not (tmp_path / "saved").exists()
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(model)
    with pytest.raises(ValueError, match="to_onnx\\(path, int8=True\\)"):
        model.to_onnx(tmp_path / "model.onnx")


def test_quantized_linears_are_found_in_every_head():
    from rembert_spec.weights import HEADS
    from tests.batches import config_for

    for head in HEADS:
        model = getattr(rembert_pt, HEADS[head].pt_class)(config_for(head))
        assert len(quantized_linears(model)) == 6 * model.config.num_hidden_layers


def test_bf16_path_names_what_this_cpu_does():
    path = bf16_path()
    assert path.startswith(("native bfloat16", "emulated bfloat16"))
    flags = open("/proc/cpuinfo").read()
    assert ("avx512_bf16" in flags or "amx_bf16" in flags) == path.startswith("native")


def test_bf16_inference_stays_close_to_float(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "base", seed=0)
    inputs = {k: torch.from_numpy(v) for k, v in batch_for("base", tiny_config()).items()}
    float_out = rembert_pt.RemBertModel.from_pretrained(tmp_path)(**inputs).last_hidden_state
    bf16_out = rembert_pt.RemBertModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)(**inputs)
    real = inputs["attention_mask"].bool()
    diff = (bf16_out.last_hidden_state.float() - float_out)[real].detach()
    assert float(diff.norm() / float_out[real].detach().norm()) < 0.03
    assert np.isfinite(diff.numpy()).all()
