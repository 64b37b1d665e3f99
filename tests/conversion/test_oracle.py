"""Hugging Face transformers as the oracle: our files load in its models, its files convert with ours, and
PT -> TF -> PT is bit-identical in float32."""

from __future__ import annotations

import numpy as np
import pytest

from conversion import convert
from rembert_spec.weights import get_head
from tests.conftest import tiny_config
from tests.conversion.helpers import make_model, raw_tensors

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")

IDS = np.array([[5, 17, 3, 9, 41, 2, 0], [7, 7, 60, 1, 98, 0, 0]])
MASK = (np.arange(IDS.shape[1]) < np.array([[7], [5]])).astype(np.int64)


def _hf_config(config):
    return transformers.RemBertConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})


def _pt_outputs(model, field):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK))
    return getattr(out, field).numpy()


def _tf_outputs(model, field):
    return getattr(model(input_ids=IDS, attention_mask=MASK, training=False), field).numpy()


@pytest.mark.parametrize("head", ["masked_lm", "base", "sequence_classification", "question_answering"])
def test_pt_tf_pt_is_bit_identical(tmp_path, head):
    src = make_model(tmp_path / "src", head=head)
    convert(src, tmp_path / "tf", to="tf")
    convert(tmp_path / "tf", tmp_path / "pt", to="pt")
    assert (tmp_path / "pt" / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    before, after = raw_tensors(src), raw_tensors(tmp_path / "pt")
    assert list(before) == list(after)
    for key in before:
        assert before[key].dtype == after[key].dtype == np.float32
        assert before[key].tobytes() == after[key].tobytes(), key


@pytest.mark.parametrize("head,field", [("masked_lm", "logits"), ("base", "last_hidden_state")])
def test_our_tf_file_loads_in_hugging_face(tmp_path, head, field):
    src = make_model(tmp_path / "src", head=head)
    convert(src, tmp_path / "tf", to="tf")
    spec = get_head(head)
    tf_model, info = getattr(transformers, spec.tf_class).from_pretrained(tmp_path / "tf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    pt_model = getattr(transformers, spec.pt_class).from_pretrained(src).eval()
    expected = _pt_outputs(pt_model, field)
    np.testing.assert_allclose(_tf_outputs(tf_model, field), expected, atol=1e-5)
    # TFRemBertModel reads the backbone out of the masked-LM file too
    base = transformers.TFRemBertModel.from_pretrained(tmp_path / "tf")
    np.testing.assert_allclose(
        _tf_outputs(base, "last_hidden_state")[MASK == 1],
        _pt_outputs(transformers.RemBertModel.from_pretrained(src).eval(), "last_hidden_state")[MASK == 1],
        atol=1e-5,
    )


def test_hugging_face_tf_file_converts_to_a_pt_file_it_loads(tmp_path):
    config = tiny_config()
    tf_model = transformers.TFRemBertForMaskedLM(_hf_config(config))
    tf_model(input_ids=IDS)
    tf_model.save_pretrained(tmp_path / "hf-tf")
    report = convert(tmp_path / "hf-tf", tmp_path / "pt", to="pt")
    assert report.source_format == "tf_h5" and report.head == "masked_lm" and not report.skipped
    pt_model, info = transformers.RemBertForMaskedLM.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    np.testing.assert_allclose(_pt_outputs(pt_model.eval(), "logits"), _tf_outputs(tf_model, "logits"), atol=1e-5)


def test_hugging_face_bin_and_shards_convert(tmp_path):
    """pytorch_model.bin (pickled by torch) and sharded safetensors, both written by Hugging Face."""
    config = tiny_config()
    torch.manual_seed(0)
    model = transformers.RemBertForMaskedLM(_hf_config(config)).eval()
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    model.save_pretrained(tmp_path / "shards", max_shard_size="5KB")
    assert (tmp_path / "shards" / "model.safetensors.index.json").is_file()
    expected = _pt_outputs(model, "logits")
    for name in ("bin", "shards"):
        report = convert(tmp_path / name, tmp_path / f"{name}-tf", to="tf")
        assert report.head == "masked_lm"
        tf_model = transformers.TFRemBertForMaskedLM.from_pretrained(tmp_path / f"{name}-tf")
        np.testing.assert_allclose(_tf_outputs(tf_model, "logits"), expected, atol=1e-5, err_msg=name)


def test_our_pt_file_loads_in_hugging_face_rembert_model(tmp_path):
    src = make_model(tmp_path / "src", head="masked_lm")
    convert(src, tmp_path / "tf", to="tf")
    convert(tmp_path / "tf", tmp_path / "pt", to="pt", head="base")
    model, info = transformers.RemBertModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert not info["unexpected_keys"]
    expected = _pt_outputs(transformers.RemBertForMaskedLM.from_pretrained(src).rembert.eval(), "last_hidden_state")
    np.testing.assert_allclose(_pt_outputs(model.eval(), "last_hidden_state"), expected, atol=1e-6)
