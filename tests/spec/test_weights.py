"""The weight spec against the oracle's TF names and against its own rules."""

from __future__ import annotations

import re

import pytest

from rembert_spec import weight_spec
from rembert_spec.weights import HEADS, all_weight_names
from tests.conftest import tiny_config
from tests.oracle import hf_config, hf_tf_class


@pytest.mark.parametrize("head", list(HEADS))
def test_tf_names_and_layouts_equal_hugging_face(head):
    config = tiny_config(is_decoder=True, add_cross_attention=True)
    model = hf_tf_class(head)(hf_config(config))
    model(model.dummy_inputs)
    theirs = {w.name.split("/", 1)[1]: tuple(w.shape) for w in model.weights}
    ours = {e.tf_name: e.tf_shape for e in weight_spec(config, head)}
    assert ours == theirs
    # Keras numbers a second model of a class in one process (tf_rem_bert_model_1): compare without it.
    assert {re.sub(r"_\d+$", "", w.name.split("/", 1)[0]) for w in model.weights} == {HEADS[head].tf_scope}


def test_google_names_follow_the_original_checkpoint():
    config = tiny_config()
    names = {e.name: e.google_name for e in weight_spec(config, "base")}
    assert names["embeddings.word_embeddings.weight"] == "bert/embeddings/word_embeddings"
    assert names["embeddings.LayerNorm.weight"] == "bert/embeddings/LayerNorm/gamma"
    assert names["encoder.embedding_hidden_mapping_in.weight"] == "bert/encoder/embedding_hidden_mapping_in/kernel"
    assert names["encoder.layer.1.attention.self.query.bias"] == "bert/encoder/layer_1/attention/self/query/bias"
    assert names["encoder.layer.0.output.LayerNorm.bias"] == "bert/encoder/layer_0/output/LayerNorm/beta"
    assert names["pooler.dense.weight"] == "bert/pooler/dense/kernel"
    heads = weight_spec(config, "masked_lm")
    assert all(e.google_name is None for e in heads if not e.in_backbone)


def test_only_dense_kernels_are_transposed():
    entries = weight_spec(tiny_config(), "masked_lm")
    transposed = {e.name for e in entries if e.tf_transpose}
    assert "cls.predictions.decoder.weight" not in transposed
    assert "cls.predictions.dense.weight" in transposed
    assert all(e.name.endswith(".weight") and len(e.shape) == 2 for e in entries if e.tf_transpose)
    assert not any("embeddings" in n and "mapping" not in n for n in transposed)


def test_head_sizes_follow_the_config():
    config = tiny_config(num_labels=5)
    assert weight_spec(config, "sequence_classification")[-2].shape == (5, 12)
    assert weight_spec(config, "multiple_choice")[-2].shape == (1, 12)
    assert weight_spec(config, "token_classification")[-2].shape == (5, 12)
    assert weight_spec(config, "base", add_pooling_layer=False)[-1].name.startswith("encoder.")
    assert "pooler.dense.weight" in all_weight_names(config)


def test_unknown_head_is_named():
    with pytest.raises(ValueError, match="unknown head 'regression'"):
        weight_spec(tiny_config(), "regression")
