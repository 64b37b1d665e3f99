"""A checkpoint that does not fit its config is told in one short sentence first (rembert_spec.fit), the same for
every format: which layers, which sizes, and a misspelt config key when there is one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import load_weights, open_checkpoint
from rembert_spec.fit import check_fit, layer_ranges, name_list
from rembert_spec.formats.safetensors import write_safetensors
from rembert_spec.tensor_reader import CheckpointError
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import layer_of, weight_spec
from tests.conftest import tiny_config

FORMATS = ["safetensors", "tf_h5"]


def _fit(directory, config: RemBertConfig, head: str = "masked_lm"):
    with open_checkpoint(directory, config) as checkpoint:
        return check_fit(checkpoint, weight_spec(config, head))


def _misspell_layers(directory) -> RemBertConfig:
    """config.json with `num_hidden_layer` for `num_hidden_layers`: the model falls back to 32 layers."""
    data = json.loads((directory / "config.json").read_text())
    data["num_hidden_layer"] = data.pop("num_hidden_layers")
    (directory / "config.json").write_text(json.dumps(data))
    return RemBertConfig.from_pretrained(directory)


def test_name_lists_and_layer_ranges():
    assert name_list(["a", "b"]) == "a, b"
    assert name_list([f"n{i}" for i in range(10)]).count(",") == 9  # ten are shown whole
    assert name_list([f"n{i}" for i in range(480)]) == "n0, n1, n2, n3, n4 and 475 more"
    assert layer_ranges([5, 2, 3, 4, 9, 11, 12]) == "2-5, 9, 11-12"
    assert layer_ranges([7]) == "7"
    assert [layer_of(name) for name in ("encoder.layer.12.output.dense.bias", "pooler.dense.weight")] == [12, None]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_misspelt_num_hidden_layers_is_named(tmp_path, fmt):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", fmt=fmt)
    config = _misspell_layers(tmp_path)
    assert config.num_hidden_layers == 32  # the default, as in Hugging Face
    fit = _fit(tmp_path, config)
    assert fit.missing_layers == list(range(2, 32)) and fit.checkpoint_layers == 2
    assert fit.cause() == (
        "the config's num_hidden_layers is 32 but the checkpoint has 2 encoder layers (layers 2-31 are missing); "
        "the config has 'num_hidden_layer', which is no config field: a misspelt num_hidden_layers?"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_layers_beyond_the_configs_are_found_in_every_format(tmp_path, fmt):
    write_random_checkpoint(tmp_path, tiny_config(num_hidden_layers=5), "base", fmt=fmt)
    fit = _fit(tmp_path, tiny_config(num_hidden_layers=2), "base")
    assert fit.extra_layers == [2, 3, 4] and fit.checkpoint_layers == 5 and not fit.missing
    assert fit.cause() == (
        "the config's num_hidden_layers is 2 but the checkpoint has 5 encoder layers (its layers 2-4 are not used)"
    )
    fit = _fit(tmp_path, tiny_config(num_hidden_layers=4), "base")
    assert fit.cause().endswith("(its layer 4 is not used)")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "changed, sentence",
    [
        (dict(hidden_size=24), "the config's hidden_size is 24 but the checkpoint's is 12"),
        (dict(intermediate_size=30), "the config's intermediate_size is 30 but the checkpoint's is 20"),
        (dict(vocab_size=120), "the config's vocab_size is 120 but the checkpoint's is 99"),
        (
            dict(input_embedding_size=16, output_embedding_size=12),
            "the config's input_embedding_size is 16 but the checkpoint's is 8; "
            "the config's output_embedding_size is 12 but the checkpoint's is 10",
        ),
    ],
)
def test_sizes_are_read_back_from_the_shapes(tmp_path, fmt, changed, sentence):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", fmt=fmt)
    fit = _fit(tmp_path, tiny_config(**changed))
    assert fit.sizes_sentence() == sentence


def test_a_few_missing_head_weights_are_no_misfit(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(num_hidden_layers=1), "base")
    fit = _fit(tmp_path, tiny_config(num_hidden_layers=1), "masked_lm")  # the LM head: 6 of 29 tensors
    assert len(fit.missing) == 6 and fit.cause() is None


def test_a_checkpoint_of_other_names_is_said_to_be_one(tmp_path):
    config = tiny_config()
    plan = [(f"bert.{e.name}", e.shape, np.float32) for e in weight_spec(config, "base")]
    write_safetensors(tmp_path / "model.safetensors", plan, lambda name: np.zeros(dict(p[:2] for p in plan)[name]))
    fit = _fit(tmp_path, config, "base")
    assert fit.cause() == (
        f"{len(plan)} of the {len(plan)} tensors the model expects are missing or mis-shaped, and it holds names "
        "such as 'bert.embeddings.word_embeddings.weight': is it a RemBERT checkpoint?"
    )


def test_load_weights_refuses_a_mis_shaped_checkpoint_before_reading_anything(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm")
    config = tiny_config(hidden_size=24)
    assigned = []
    with open_checkpoint(tmp_path, config) as checkpoint, pytest.raises(CheckpointError) as info:
        load_weights(weight_spec(config, "masked_lm"), checkpoint, lambda e, a: assigned.append(e))
    assert assigned == []
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'model.safetensors'}: the config's hidden_size is 24 but the checkpoint's")
    assert "(12, 8) in the checkpoint but the model expects (24, 8)" in message and "more tensor(s) differ" in message


def test_strict_refuses_before_reading_anything(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(), "base")
    config = tiny_config()
    assigned = []
    with open_checkpoint(tmp_path, config) as checkpoint, pytest.raises(CheckpointError) as info:
        load_weights(weight_spec(config, "masked_lm"), checkpoint, lambda e, a: assigned.append(e), strict=True)
    assert assigned == []
    assert "6 weight(s) of the model not in the checkpoint" in str(info.value) and "strict=True" in str(info.value)
