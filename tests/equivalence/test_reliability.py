"""Bad files and awkward input, through both frameworks' from_pretrained and forward: a clean Python exception that
names the file (never a crash, never code run from a pickle), and finite numbers for legal but awkward input."""

from __future__ import annotations

import json
import logging
import pickle
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import torch

import rembert_pt
import rembert_tf
from rembert_spec import CheckpointError
from rembert_spec.testing import write_random_checkpoint
from tests.conftest import tiny_config

FRAMEWORKS = ["pt", "tf"]


def load(framework: str, directory, head_class: str = "RemBertModel", **kwargs):
    module, prefix = (rembert_pt, "") if framework == "pt" else (rembert_tf, "TF")
    return getattr(module, prefix + head_class).from_pretrained(directory, **kwargs)


@pytest.fixture
def model_dir(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", seed=0)
    return tmp_path


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_truncated_safetensors_names_the_file(model_dir, framework):
    path = model_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load(framework, model_dir)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_truncated_h5_names_the_file(tmp_path, framework):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", fmt="tf_h5")
    path = tmp_path / "tf_model.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="tf_model.h5"):
        load(framework, tmp_path)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    "content, words",
    [
        ("{oops", "not valid JSON"),
        ('{"hidden_size": 10, "num_attention_heads": 3}', "must be divisible"),
        ('{"hidden_act": "swish"}', "hidden_act must be one of"),
    ],
)
def test_bad_config_json_gets_the_configs_own_error(model_dir, framework, content, words):
    (model_dir / "config.json").write_text(content)
    with pytest.raises(ValueError, match=words) as info:
        load(framework, model_dir)
    assert "config.json" in str(info.value)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pickle_that_runs_code_never_runs(tmp_path, framework):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    tiny_config().save_pretrained(tmp_path)
    with zipfile.ZipFile(tmp_path / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"embeddings.word_embeddings.weight": Payload()}, protocol=2))
        archive.writestr("archive/version", "3\n")
    with pytest.raises(CheckpointError, match="refused to load global"):
        load(framework, tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_shard_index_leaving_the_directory_is_refused(model_dir, framework):
    (model_dir / "model.safetensors").rename(model_dir.parent / "elsewhere.safetensors")
    (model_dir / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "../elsewhere.safetensors"}})
    )
    with pytest.raises(CheckpointError, match="refused shard file name"):
        load(framework, model_dir)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_another_configs_checkpoint_names_the_tensor_and_both_shapes(model_dir, framework):
    with pytest.raises(CheckpointError) as info:
        load(framework, model_dir, hidden_size=15, num_attention_heads=3)
    message = str(info.value)
    assert "'embeddings.word_embeddings.weight'" not in message  # that one fits; the first that does not is named
    assert "(12, 8)" in message and "(15, 8)" in message


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_no_weights_is_named(tmp_path, framework):
    tiny_config().save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no weights found"):
        load(framework, tmp_path)


def _run(framework: str, model, inputs: dict):
    if framework == "pt":
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_hidden_states=True)
        return [t.float().numpy() for t in (out.logits, *out.hidden_states)]
    out = model(**inputs, output_hidden_states=True)
    return [tf.cast(t, tf.float32).numpy() for t in (out.logits, *out.hidden_states)]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("unpad", [True, False])
def test_awkward_input_stays_finite(model_dir, framework, dtype, unpad):
    if framework == "pt":
        model = load("pt", model_dir, "RemBertForMaskedLM", torch_dtype=getattr(torch, dtype), unpad=unpad)
    else:
        model = load("tf", model_dir, "RemBertForMaskedLM", dtype=dtype, unpad=unpad)
    empty_row = dict(input_ids=np.array([[5, 6, 7], [8, 9, 10]]), attention_mask=np.array([[1, 1, 1], [0, 0, 0]]))
    one_token = dict(input_ids=np.array([[5]]))
    for inputs in (empty_row, one_token):
        for array in _run(framework, model, inputs):
            assert np.isfinite(array).all()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_add_pooling_layer_is_a_model_argument_not_a_config_field(model_dir, framework):
    model, info = load(framework, model_dir, add_pooling_layer=False, output_loading_info=True)
    assert "pooler.dense.weight" not in info["missing_keys"]
    assert "add_pooling_layer" not in model.config.extra
    with pytest.raises(ValueError, match="applies to"):
        load(framework, model_dir, "RemBertForMaskedLM", add_pooling_layer=False)


# -- a checkpoint that does not fit its config ------------------------------------------------------------------


def _misspell_num_hidden_layers(directory) -> None:
    data = json.loads((directory / "config.json").read_text())
    data["num_hidden_layer"] = data.pop("num_hidden_layers")
    (directory / "config.json").write_text(json.dumps(data))


MISFIT_CAUSE = (
    "the config's num_hidden_layers is 32 but the checkpoint has 2 encoder layers (layers 2-31 are missing); the "
    "config has 'num_hidden_layer', which is no config field: a misspelt num_hidden_layers?"
)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_checkpoint_that_mostly_does_not_fit_is_said_in_one_sentence_first(model_dir, framework, caplog):
    _misspell_num_hidden_layers(model_dir)
    with caplog.at_level(logging.WARNING, logger="rembert"):
        model, info = load(framework, model_dir, "RemBertForMaskedLM", output_loading_info=True)
    assert model.config.num_hidden_layers == 32  # loaded anyway, as Hugging Face does
    (record,) = caplog.records
    first, *rest = record.getMessage().splitlines()
    name = ("" if framework == "pt" else "TF") + "RemBertForMaskedLM"
    assert first == f"{model_dir / 'model.safetensors'} does not fit the config of {name}: {MISFIT_CAUSE}"
    assert len(rest) == 1 and "480 weight(s)" in rest[0] and rest[0].endswith(" and 475 more")
    assert len(record.getMessage()) < 1000  # two lines, not 480 names
    assert len(info["missing_keys"]) == 480


def test_the_missing_weights_are_hugging_faces(model_dir):
    from transformers import RemBertForMaskedLM

    _misspell_num_hidden_layers(model_dir)
    _, ours = rembert_pt.RemBertForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    _, theirs = RemBertForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    assert sorted(ours["missing_keys"]) == sorted(theirs["missing_keys"])
    assert ours["unexpected_keys"] == theirs["unexpected_keys"] == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_strict_makes_any_missing_or_unused_weight_an_error(model_dir, framework):
    load(framework, model_dir, "RemBertForMaskedLM", strict=True)  # the checkpoint's own head: exact
    with pytest.raises(CheckpointError) as info:
        load(framework, model_dir, "RemBertModel", strict=True)  # the LM head is not used, the pooler missing
    message = str(info.value)
    assert message.startswith(f"{model_dir / 'model.safetensors'} does not hold exactly the weights of ")
    assert "6 weight(s) of" in message and "cls.predictions.decoder.weight" in message
    assert "2 weight(s) of" in message and "pooler.dense.weight" in message
    assert message.endswith("(strict=True: pass strict=False to load it anyway)")
    _misspell_num_hidden_layers(model_dir)
    with pytest.raises(CheckpointError) as info:
        load(framework, model_dir, "RemBertForMaskedLM", strict=True)
    assert MISFIT_CAUSE in str(info.value) and " and 475 more." in str(info.value)
