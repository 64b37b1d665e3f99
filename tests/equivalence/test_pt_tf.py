"""PyTorch and TensorFlow give the same numbers for the same weights: every head, several configs, eager mode,
tf.function and XLA. Both load one random checkpoint written from the spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rembert_pt
from rembert_spec.checkpoint import SAFETENSORS, TF_H5
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS
from tests.tf.common import batch_for, config_for, max_abs_difference, run_tf, tf_class, to_numpy

ATOL = 1e-5
ALL_HEADS = list(HEADS)

# Odd sizes everywhere; each activation once; both checkpoint formats both frameworks read.
CONFIGS = {
    "gelu": dict(hidden_act="gelu"),
    "gelu_new": dict(
        hidden_act="gelu_new",
        hidden_size=15,
        num_attention_heads=5,
        input_embedding_size=7,
        output_embedding_size=9,
        intermediate_size=11,
        type_vocab_size=3,
    ),
    "relu": dict(hidden_act="relu", num_hidden_layers=3, hidden_size=14, num_attention_heads=2, unpad=False),
    "selu": dict(hidden_act="selu", num_hidden_layers=1, vocab_size=57, layer_norm_eps=1e-6),
}
FORMAT = {"gelu": SAFETENSORS, "gelu_new": TF_H5, "relu": SAFETENSORS, "selu": TF_H5}


def pt_class(head: str):
    return getattr(rembert_pt, HEADS[head].pt_class)


def run_pt(model, inputs, **flags):
    with torch.no_grad():
        return model(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}, **flags)


def both(head: str, directory, **overrides):
    config = config_for(head, **overrides)
    fmt = FORMAT.get(overrides.get("hidden_act"), SAFETENSORS)
    write_random_checkpoint(directory, config, head, seed=11, fmt=fmt, noise=0.02)
    return config, pt_class(head).from_pretrained(directory), tf_class(head).from_pretrained(directory)


def assert_identical(pt_out, tf_out) -> float:
    difference = max_abs_difference(to_numpy(dict(tf_out)), to_numpy(dict(pt_out)))
    assert difference < ATOL, difference
    return difference


FLAGS = dict(output_hidden_states=True, output_attentions=True)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("head", ALL_HEADS)
def test_eager_outputs_and_losses_equal_pytorch(head, name, tmp_path):
    config, pt_model, tf_model = both(head, tmp_path, **CONFIGS[name])
    batch = batch_for(head, config, seed=len(name))
    assert_identical(run_pt(pt_model, batch, **FLAGS), run_tf(tf_model, batch, **FLAGS))
    unlabelled = {k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions")}
    assert_identical(run_pt(pt_model, unlabelled, **FLAGS), run_tf(tf_model, unlabelled, **FLAGS))


@pytest.mark.parametrize("mode", ["graph", "xla"])
@pytest.mark.parametrize("head", ALL_HEADS)
def test_compiled_outputs_and_losses_equal_pytorch(head, mode, tmp_path):
    config, pt_model, tf_model = both(head, tmp_path, **CONFIGS["gelu_new"])
    batch = batch_for(head, config, seed=3)
    assert_identical(run_pt(pt_model, batch, **FLAGS), run_tf(tf_model, batch, mode, **FLAGS))


@pytest.mark.parametrize("head", ["masked_lm", "causal_lm"])
def test_labelled_lm_logits_have_hugging_face_shape_in_every_mode(head, tmp_path):
    config, pt_model, tf_model = both(head, tmp_path)
    batch = batch_for(head, config)
    expected = run_pt(pt_model, batch)
    assert tuple(expected.logits.shape) == (*batch["input_ids"].shape, config.vocab_size)
    for mode in ("eager", "graph", "xla"):
        assert_identical(expected, run_tf(tf_model, batch, mode))


@pytest.mark.parametrize("head", ["masked_lm", "causal_lm"])
def test_sparse_prediction_opt_in_gives_the_labelled_rows_and_the_same_loss(head, tmp_path):
    config, pt_model, tf_model = both(head, tmp_path)
    batch = batch_for(head, config)
    full = run_pt(pt_model, batch)
    for model in (pt_model, tf_model):
        model.config.sparse_prediction = True
    sparse = run_pt(pt_model, batch)
    labels = torch.from_numpy(np.asarray(batch["labels"]))
    counted = (labels[:, 1:] if head == "causal_lm" else labels) != -100
    rows = (full.logits[:, :-1] if head == "causal_lm" else full.logits)[counted]
    assert sparse.logits.shape == rows.shape and torch.allclose(sparse.logits, rows, atol=1e-6)
    assert torch.allclose(sparse.loss, full.loss, atol=1e-6)
    assert_identical(sparse, run_tf(tf_model, batch, "eager"))
    assert_identical(sparse, run_tf(tf_model, batch, "graph"))
    # XLA cannot compile the data-dependent [n_labelled, vocab] shape: there the opt-in gives all logits.
    assert_identical(full, run_tf(tf_model, batch, "xla"))


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_decoder_with_cross_attention_and_cache_equals_pytorch(mode, tmp_path):
    config, pt_model, tf_model = both("causal_lm", tmp_path, add_cross_attention=True, hidden_act="gelu_new")
    batch = batch_for("causal_lm", config, seed=4)
    rng = np.random.default_rng(4)
    batch["encoder_hidden_states"] = rng.normal(size=(3, 5, config.hidden_size)).astype(np.float32)
    batch["encoder_attention_mask"] = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    flags = dict(FLAGS, use_cache=True)
    expected = run_pt(pt_model, batch, **flags)
    assert len(expected.past_key_values[0]) == 4 and len(expected.cross_attentions) == config.num_hidden_layers
    full = run_tf(tf_model, batch, mode, **flags)
    assert_identical(expected, full)

    # One more step on top of the cache, with the mask grown by one position.
    step = {
        "input_ids": rng.integers(1, config.vocab_size, (3, 1)),
        "attention_mask": np.concatenate([batch["attention_mask"], np.ones((3, 1), np.int64)], axis=1),
        "encoder_hidden_states": batch["encoder_hidden_states"],
        "encoder_attention_mask": batch["encoder_attention_mask"],
    }
    with torch.no_grad():
        pt_step = pt_model(
            **{k: torch.from_numpy(v) for k, v in step.items()}, past_key_values=expected.past_key_values
        )
    tf_step = run_tf(tf_model, {**step, "past_key_values": full.past_key_values}, mode)
    assert_identical(pt_step, tf_step)


@pytest.mark.parametrize("problem", ["regression", "multi_label_classification", "single_label_classification"])
def test_sequence_classification_losses_equal_pytorch(problem, tmp_path):
    num_labels = 1 if problem == "regression" else 3
    config, pt_model, tf_model = both("sequence_classification", tmp_path, num_labels=num_labels)
    batch = batch_for("sequence_classification", config)
    if problem == "regression":
        batch["labels"] = np.array([0.5, -1.0, 2.0], np.float32)
    elif problem == "multi_label_classification":
        batch["labels"] = np.array([[1.0, 0, 1], [0, 0, 1], [1, 1, 1]], np.float32)
    assert_identical(run_pt(pt_model, batch), run_tf(tf_model, batch))
    assert_identical(run_pt(pt_model, batch), run_tf(tf_model, batch, "graph"))


def test_inputs_embeds_and_position_ids_equal_pytorch(tmp_path):
    config, pt_model, tf_model = both("base", tmp_path)
    rng = np.random.default_rng(5)
    batch = {
        "inputs_embeds": rng.normal(size=(2, 6, config.input_embedding_size)).astype(np.float32),
        "position_ids": np.array([[3, 4, 5, 6, 7, 8]]),
        "attention_mask": np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
    }
    assert_identical(run_pt(pt_model, batch, **FLAGS), run_tf(tf_model, batch, **FLAGS))


def test_callable_activation_equals_pytorch(tmp_path):
    """A callable hidden_act (each framework's own function) is used by the feed-forward and the LM head."""
    import tensorflow as tf

    config = config_for("masked_lm")
    write_random_checkpoint(tmp_path, config, "masked_lm", seed=2, noise=0.02)
    pt_model = rembert_pt.RemBertForMaskedLM.from_pretrained(tmp_path, config=config.replace(hidden_act=torch.sin))
    tf_model = tf_class("masked_lm").from_pretrained(tmp_path, config=config.replace(hidden_act=tf.sin))
    batch = batch_for("masked_lm", config, seed=2)
    assert_identical(run_pt(pt_model, batch, **FLAGS), run_tf(tf_model, batch, **FLAGS))
    gelu = run_tf(tf_class("masked_lm").from_pretrained(tmp_path), batch)
    assert max_abs_difference(to_numpy(gelu.logits), to_numpy(run_tf(tf_model, batch).logits)) > 1e-3
