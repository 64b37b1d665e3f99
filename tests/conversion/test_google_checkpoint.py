"""Original Google TF checkpoints (`bert/...` variables, optimizer slots, `cls/...`) written by TensorFlow itself,
converted, and compared with the tensors and with Hugging Face's own `load_tf_weights_in_rembert`."""

from __future__ import annotations

import numpy as np
import pytest

from conversion import ConversionError, convert
from conversion.cli import main
from rembert_spec.testing import random_tensor
from rembert_spec.weights import weight_spec
from tests.conftest import tiny_config
from tests.conversion.helpers import GOOGLE_EXTRAS, raw_tensors, spec_tensors, write_google_checkpoint

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def google(tmp_path_factory):
    """(prefix, config path, config) of a synthetic Google checkpoint with pretraining and optimizer extras."""
    directory = tmp_path_factory.mktemp("google")
    config = tiny_config()
    prefix = write_google_checkpoint(directory / "rembert", config)
    config_path = directory / "rembert_config.json"
    config.to_json_file(config_path)
    return prefix, config_path, config


def test_google_to_pt_equals_the_tensors(google, tmp_path):
    prefix, config_path, config = google
    report = convert(prefix, tmp_path / "pt", to="pt", config=config_path)
    assert report.source_format == "google_tf"
    assert report.head == "base" and report.head_detected
    written = raw_tensors(tmp_path / "pt")
    entries = weight_spec(config, "base")
    assert list(written) == [e.pt_key for e in entries]
    for entry in entries:
        np.testing.assert_array_equal(written[entry.pt_key], random_tensor(entry, config, 0), err_msg=entry.pt_key)


def test_skipped_variables_are_listed(google, tmp_path, capsys):
    prefix, config_path, _ = google
    assert main([str(prefix), str(tmp_path / "pt"), "--to", "pt", "--config", str(config_path)]) == 0
    report = convert(prefix, tmp_path / "pt2", to="pt", config=config_path)
    assert sorted(report.skipped) == sorted([*GOOGLE_EXTRAS, "global_step"])
    assert not report.dropped and not report.initialised_at_load
    out = capsys.readouterr().out
    assert "skipped 7 tensor(s) that are not model weights" in out
    for name in ["global_step", *GOOGLE_EXTRAS]:
        assert name in out


def test_matches_hugging_face_load_tf_weights_in_rembert(google, tmp_path):
    transformers = pytest.importorskip("transformers")
    from transformers.models.rembert.modeling_rembert import load_tf_weights_in_rembert

    prefix, config_path, config = google
    convert(prefix, tmp_path / "pt", to="pt", config=config_path)
    hf_config = transformers.RemBertConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
    model = load_tf_weights_in_rembert(transformers.RemBertModel(hf_config), hf_config, str(prefix))
    expected = {k: v.detach().numpy() for k, v in model.state_dict().items() if k != "embeddings.position_ids"}
    written = raw_tensors(tmp_path / "pt")
    assert sorted(written) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)


def test_google_to_tf_loads_in_hugging_face(google, tmp_path):
    transformers = pytest.importorskip("transformers")
    prefix, config_path, config = google
    convert(prefix, tmp_path / "tf", to="tf", config=config_path)
    tf_model = transformers.TFRemBertModel.from_pretrained(tmp_path / "tf")
    pt_model = transformers.RemBertModel.from_pretrained(
        convert(prefix, tmp_path / "pt", to="pt", config=config_path).dst
    )
    ids = np.array([[5, 17, 3, 9, 41, 0]])
    import torch

    expected = pt_model(input_ids=torch.tensor(ids)).last_hidden_state.detach().numpy()
    got = tf_model(input_ids=ids).last_hidden_state.numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_checkpoint_directory_is_accepted(google, tmp_path):
    prefix, config_path, _ = google
    report = convert(prefix.parent, tmp_path / "pt", to="pt", config=config_path)
    assert report.source_format == "google_tf" and report.tensors == len(weight_spec(tiny_config(), "base"))


def test_config_is_required(google, tmp_path, capsys):
    prefix, _, _ = google
    assert main([str(prefix), str(tmp_path / "pt"), "--to", "pt"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--config" in err
    assert not (tmp_path / "pt").exists()


def test_head_from_google_checkpoint(google, tmp_path):
    """--head masked_lm: Google's LM head is not in the spec's names, so it is initialised at load."""
    prefix, config_path, config = google
    report = convert(prefix, tmp_path / "mlm", to="pt", config=config_path, head="masked_lm")
    assert sorted(report.dropped) == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
    lm_head = [e.pt_key for e in weight_spec(config, "masked_lm") if not e.in_backbone]
    assert report.initialised_at_load == lm_head
    assert set(spec_tensors(tmp_path / "mlm", "masked_lm")) == {
        e.name for e in weight_spec(config, "masked_lm") if e.in_backbone
    }


def test_missing_variable_is_named(tmp_path):
    config = tiny_config(num_hidden_layers=3)  # the checkpoint has 2 layers
    prefix = write_google_checkpoint(tmp_path / "g", tiny_config(), extras=False)
    with pytest.raises(ConversionError, match="bert/encoder/layer_2/attention/self/query/kernel"):
        convert(prefix, tmp_path / "pt", to="pt", config=config)
    assert not (tmp_path / "pt").exists()
