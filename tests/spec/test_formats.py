"""The formats registry: what it lists, how files are recognised and found, and every format's names for the spec."""

from __future__ import annotations

import numpy as np
import pytest

from rembert_spec import CheckpointError, weight_spec
from rembert_spec.checkpoint import find_weights_file, open_checkpoint, write_weights
from rembert_spec.formats import FORMATS, format_of, get_format, load_order, writable_format, writable_formats
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS, all_weight_names
from tests.conftest import tiny_config


def test_load_orders_and_what_each_framework_writes():
    assert load_order("torch") == ("safetensors", "pytorch_bin", "tf_h5")
    assert load_order("tf") == ("tf_h5", "safetensors", "pytorch_bin")
    assert (writable_format("torch").name, writable_format("tf").name) == ("safetensors", "tf_h5")
    assert writable_formats() == ("safetensors", "tf_h5")
    with pytest.raises(ValueError, match="unknown framework 'jax'; known frameworks: torch, tf"):
        load_order("jax")
    with pytest.raises(ValueError, match="unknown checkpoint format 'gguf'; known formats: safetensors, pytorch_bin"):
        get_format("gguf")


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("model.safetensors", "safetensors"),
        ("model-00001-of-00002.safetensors", "safetensors"),
        ("model.safetensors.index.json", "safetensors"),
        ("pytorch_model.bin", "pytorch_bin"),
        ("pytorch_model.bin.index.json", "pytorch_bin"),
        ("finetuned.pt", "pytorch_bin"),
        ("tf_model.h5", "tf_h5"),
        ("model.ckpt-1000.index", "google_tf"),
        ("checkpoint", "google_tf"),
    ],
)
def test_files_are_recognised_by_name(tmp_path, name, fmt):
    assert format_of(tmp_path / name).name == fmt


def test_a_google_prefix_is_recognised_by_its_index_file(tmp_path):
    with pytest.raises(CheckpointError, match="cannot tell the checkpoint format from the file name"):
        format_of(tmp_path / "model.ckpt")
    (tmp_path / "model.ckpt.index").write_bytes(b"")
    assert format_of(tmp_path / "model.ckpt").name == "google_tf"


def test_a_directory_is_read_in_load_order_then_any_registered_format(tmp_path):
    config = tiny_config()
    write_random_checkpoint(tmp_path, config, "masked_lm", fmt="safetensors")
    write_random_checkpoint(tmp_path, config, "masked_lm", fmt="tf_h5")
    assert find_weights_file(tmp_path, load_order("torch")).name == "model.safetensors"
    assert find_weights_file(tmp_path, load_order("tf")).name == "tf_model.h5"
    assert find_weights_file(tmp_path, ["pytorch_bin"]).name == "model.safetensors"  # preferred, not exclusive
    with open_checkpoint(tmp_path, config, prefer=load_order("tf")) as checkpoint:
        assert checkpoint.format == "tf_h5" and checkpoint.unknown_keys == []
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no weights found .looked for pytorch_model.bin, pytorch_model.bin.i"):
        find_weights_file(empty, ["pytorch_bin"])


def test_read_only_formats_are_refused_by_write_weights(tmp_path):
    entries = weight_spec(tiny_config())
    for fmt in ("pytorch_bin", "google_tf", "gguf"):
        with pytest.raises(
            ValueError, match=f"cannot write checkpoint format '{fmt}'; writable formats: safetensors, tf_h5"
        ):
            write_weights(tmp_path, fmt, entries, lambda e: np.zeros(e.shape, np.float32), head="base")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_names_each_weight_of_a_head_once(fmt):
    config = tiny_config(is_decoder=True, add_cross_attention=True, num_hidden_layers=11)
    for head in HEADS:
        names = [FORMATS[fmt].key(entry) for entry in weight_spec(config, head)]
        named = [name for name in names if name is not None]
        assert len(set(named)) == len(named), (fmt, head)
        if fmt != "google_tf":  # Google's checkpoints hold an encoder's backbone only
            assert len(named) == len(names)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_names_written_by_a_format_read_back_to_the_canonical_names(fmt, tmp_path):
    config = tiny_config()
    known = all_weight_names(config)
    name_of = FORMATS[fmt].canonical_names(known)
    scope = "tf_rem_bert_for_masked_lm/" if fmt == "tf_h5" else ""  # tf_model.h5 keys start with the model's scope
    for entry in weight_spec(config, "masked_lm"):
        key = FORMATS[fmt].key(entry)
        if key is not None:
            assert name_of(scope + key) == entry.name
    assert name_of("bert/encoder/layer_0/attention/self/query/kernel/adam_m") is None
    assert name_of("global_step") is None
