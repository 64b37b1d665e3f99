"""tf_model.h5 reading and writing, against Hugging Face's TF models (tf-keras); damaged files: test_damaged_files."""

from __future__ import annotations

import numpy as np
import pytest

from rembert_spec import weight_spec
from rembert_spec.checkpoint import TF_H5, open_checkpoint, write_weights
from rembert_spec.formats.hf_h5 import H5Reader
from rembert_spec.testing import random_tensor
from tests.conftest import tiny_config
from tests.oracle import hf_config, hf_tf_class


def test_hugging_face_reads_our_h5(tmp_path):
    config = tiny_config()
    entries = weight_spec(config, "masked_lm")
    values = {e.name: random_tensor(e, config, seed=1) for e in entries}
    write_weights(tmp_path, TF_H5, entries, lambda e: values[e.name], head="masked_lm")
    config.save_pretrained(tmp_path)
    model = hf_tf_class("masked_lm").from_pretrained(tmp_path)
    weights = {w.name.split("/", 1)[1]: w.numpy() for w in model.weights}
    for e in entries:
        expected = values[e.name].T if e.tf_transpose else values[e.name]
        np.testing.assert_array_equal(weights[e.tf_name], expected)


def test_we_read_hugging_face_h5(tmp_path):
    config = tiny_config()
    model = hf_tf_class("sequence_classification")(hf_config(config))
    model(model.dummy_inputs)
    model.save_pretrained(tmp_path)
    weights = {w.name.split("/", 1)[1]: w.numpy() for w in model.weights}
    with open_checkpoint(tmp_path, config) as checkpoint:
        assert checkpoint.format == TF_H5 and checkpoint.unknown_keys == []
        for e in weight_spec(config, "sequence_classification"):
            np.testing.assert_array_equal(
                checkpoint.read(e), weights[e.tf_name].T if e.tf_transpose else weights[e.tf_name]
            )


def test_large_weight_name_lists_are_chunked_like_keras(tmp_path):
    config = tiny_config(num_hidden_layers=48)
    entries = weight_spec(config, "sequence_classification")
    write_weights(tmp_path, TF_H5, entries, lambda e: np.zeros(e.shape, np.float32), head="sequence_classification")
    import h5py

    with h5py.File(tmp_path / "tf_model.h5") as f:
        assert "weight_names0" in f["rembert"].attrs and "weight_names" not in f["rembert"].attrs
    with H5Reader(tmp_path / "tf_model.h5") as reader:
        assert len(reader.keys()) == len(entries)


def test_h5_refuses_bfloat16(tmp_path):
    config = tiny_config()
    with pytest.raises(ValueError, match="tf_model.h5 cannot hold bfloat16"):
        write_weights(tmp_path, TF_H5, weight_spec(config), lambda e: None, head="base", dtype="bfloat16")
