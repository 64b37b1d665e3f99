"""Code written for Hugging Face transformers' TF RemBERT runs unchanged on rembert_tf, with the same results:
loading arguments, Hub repo ids, dtypes, saving, config objects, decoder warnings, padding and gradients.
Each test writes the call as a Hugging Face user does and, where transformers has the behaviour, compares."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
import transformers
from transformers.testing_utils import CaptureLogger

from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS
from rembert_tf import (
    TFRemBertForCausalLM,
    TFRemBertForMaskedLM,
    TFRemBertForSequenceClassification,
    TFRemBertModel,
)
from tests.conftest import tiny_config
from tests.hub_cache import add_repo, files_of
from tests.tf.common import run_tf, tf_class

IDS = np.array([[5, 17, 42, 8, 33, 61, 9], [5, 33, 8, 61, 70, 0, 0], [0, 0, 5, 9, 9, 8, 70]])
MASK = (IDS != 0).astype(np.int32)


def checkpoint(tmp_path, head: str = "masked_lm", name: str = "model", fmt: str = "tf_h5", **fields):
    directory = tmp_path / name
    write_random_checkpoint(directory, tiny_config(**fields), head, seed=3, fmt=fmt, noise=0.02)
    return directory


def hidden_state_gradients(model, compiled: bool) -> list[np.ndarray]:
    weights = tf.random.stateless_normal((*IDS.shape, 12), seed=(0, 1))

    def run():
        with tf.GradientTape() as tape:
            out = model(tf.constant(IDS), attention_mask=tf.constant(MASK), output_hidden_states=True)
            loss = tf.reduce_sum(out.last_hidden_state * tf.cast(MASK, tf.float32)[..., None] * weights)
        return tape.gradient(loss, list(out.hidden_states))

    gradients = tf.function(run, jit_compile=True)() if compiled else run()
    return [g.numpy() for g in gradients]


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_hidden_states_with_padding_get_the_gradients_hugging_face_gives(mode, tmp_path):
    directory = checkpoint(tmp_path, "base")
    ours = hidden_state_gradients(TFRemBertModel.from_pretrained(directory), compiled=mode == "xla")
    theirs = hidden_state_gradients(transformers.TFRemBertModel.from_pretrained(directory), compiled=False)
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_cached_steps_give_the_full_forwards_values_at_every_position(mode, tmp_path):
    model = TFRemBertForCausalLM.from_pretrained(checkpoint(tmp_path, "causal_lm", is_decoder=True))
    run = model if mode == "eager" else tf.function(model, jit_compile=True, reduce_retracing=True)
    full = run(tf.constant(IDS), attention_mask=tf.constant(MASK), output_hidden_states=True)
    step = run(tf.constant(IDS[:, :3]), attention_mask=tf.constant(MASK[:, :3]), use_cache=True)
    logits = [step.logits]
    for t in range(3, IDS.shape[1]):
        step = run(
            tf.constant(IDS[:, t : t + 1]),
            attention_mask=tf.constant(MASK[:, : t + 1]),
            past_key_values=step.past_key_values,
            use_cache=True,
        )
        logits.append(step.logits)
    np.testing.assert_allclose(tf.concat(logits, 1), full.logits, atol=1e-5)
    assert np.all(full.hidden_states[-1].numpy()[MASK == 0] == 0)


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("head", ["sequence_classification", "masked_lm", "causal_lm", "token_classification"])
def test_padding_positions_a_head_reads_hold_hugging_faces_values(head, mode, tmp_path):
    """As in PyTorch: the pooled first position on left padding, labelled padding, and a left-padded causal LM's
    first prediction are computed as Hugging Face computes them, so the losses and logits agree."""
    directory = checkpoint(tmp_path, head, is_decoder=head == "causal_lm")
    labels = {
        "sequence_classification": np.array([1, 0, 1]),
        "masked_lm": np.where(MASK == 1, -100, IDS + 1),
        "causal_lm": np.where(IDS == 0, -100, IDS),
        "token_classification": np.where(MASK == 1, 1, 0),
    }[head]
    batch = {"input_ids": IDS, "attention_mask": MASK, "labels": labels}
    ours = run_tf(tf_class(head).from_pretrained(directory), batch, mode)
    theirs = getattr(transformers, HEADS[head].tf_class).from_pretrained(directory)(batch)
    # Hugging Face's TF losses are per-example vectors for some heads; ours are means, as in PyTorch.
    np.testing.assert_allclose(ours.loss, np.mean(theirs.loss), atol=1e-5)
    if head == "sequence_classification":
        np.testing.assert_allclose(ours.logits, theirs.logits, atol=1e-5)


def test_an_unknown_keyword_argument_is_a_type_error(tmp_path):
    directory = checkpoint(tmp_path)
    with pytest.raises(TypeError, match=r"'num_lables' \(did you mean 'num_labels'\?\)"):
        TFRemBertForSequenceClassification.from_pretrained(directory, num_lables=3)
    model = TFRemBertForSequenceClassification.from_pretrained(directory, num_labels=3, from_pt=True)
    assert model.config.num_labels == 3
    with pytest.raises(TypeError, match="safe_serialisation"):
        model.save_pretrained(tmp_path / "typo", safe_serialisation=True)


@pytest.mark.parametrize(
    "dtype, stored, variables, computes",
    [
        ("bfloat16", "float32", "bfloat16", "bfloat16"),
        (tf.float16, "float32", "float16", "float16"),
        ("mixed_bfloat16", "float32", "float32", "bfloat16"),
        (keras.DTypePolicy("mixed_float16"), "float32", "float32", "float16"),
        ("auto", "float32", "float32", "float32"),
        ("auto", "bfloat16", "bfloat16", "bfloat16"),
    ],
)
def test_dtype_arguments(dtype, stored, variables, computes, tmp_path):
    directory = tmp_path / "model"
    write_random_checkpoint(directory, tiny_config(), "masked_lm", seed=3, fmt="safetensors", dtype=stored)
    model = TFRemBertForMaskedLM.from_pretrained(directory, dtype=dtype)
    assert {v.dtype for _, v in model.named_variables()} == {variables}
    assert model(IDS).logits.dtype == computes
    reference = TFRemBertForMaskedLM.from_pretrained(directory)
    np.testing.assert_allclose(tf.cast(model(IDS).logits, tf.float32), reference(IDS).logits, atol=5e-2)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "bfloat17", tf.int32])
def test_dtypes_keras_cannot_build_are_a_clear_error(dtype, tmp_path):
    with pytest.raises(ValueError, match="dtype must be a Keras floating dtype or policy"):
        TFRemBertModel.from_pretrained(checkpoint(tmp_path), dtype=dtype)


def test_a_hub_repo_id_loads_what_hugging_face_loads_from_the_same_cache(tmp_path):
    cache = tmp_path / "cache"
    add_repo(cache, "google/rembert", files_of(checkpoint(tmp_path, "masked_lm", "v0")))
    add_repo(cache, "google/rembert", files_of(checkpoint(tmp_path, "masked_lm", "v1", hidden_act="relu")), "v1")
    for options in ({}, {"revision": "v1"}, {"local_files_only": True}):
        ours = TFRemBertForMaskedLM.from_pretrained("google/rembert", cache_dir=cache, **options)
        theirs = transformers.TFRemBertForMaskedLM.from_pretrained("google/rembert", cache_dir=cache, **options)
        np.testing.assert_allclose(ours(IDS).logits, theirs(IDS).logits, atol=1e-5)
    nested = {f"tf/{name}": path for name, path in files_of(checkpoint(tmp_path, "base", "sub")).items()}
    add_repo(cache, "org/nested", nested)
    ours = TFRemBertModel.from_pretrained("org/nested", subfolder="tf", cache_dir=cache)
    # transformers 4.57's TF classes do not find a Hub subfolder's config.json; they read the same files locally.
    theirs = transformers.TFRemBertModel.from_pretrained(tmp_path / "sub")
    np.testing.assert_allclose(ours(IDS).pooler_output, theirs(IDS).pooler_output, atol=1e-5)
    with pytest.raises(OSError, match="org/missing.*nothing.*cache"):
        TFRemBertModel.from_pretrained("org/missing", cache_dir=cache)


def test_push_to_hub_offline_is_a_clear_error_after_saving(tmp_path):
    model = TFRemBertForMaskedLM.from_pretrained(checkpoint(tmp_path))
    with pytest.raises(OSError, match="offline mode"):
        model.save_pretrained(tmp_path / "pushed", push_to_hub=True)
    assert TFRemBertForMaskedLM.from_pretrained(tmp_path / "pushed") is not None


def test_a_transformers_config_object_builds_our_models(tmp_path):
    fields = {k: v for k, v in tiny_config().to_dict().items() if k not in ("id2label", "label2id", "num_labels")}
    hf_config = transformers.RemBertConfig(**fields, num_labels=4)
    model = TFRemBertForSequenceClassification(hf_config)
    assert model.config.num_labels == 4 and model(IDS).logits.shape == (3, 4)
    directory = checkpoint(tmp_path, "sequence_classification", num_labels=4)
    ours = TFRemBertForSequenceClassification.from_pretrained(directory, config=hf_config)
    theirs = transformers.TFRemBertForSequenceClassification.from_pretrained(directory, config=hf_config)
    np.testing.assert_allclose(ours(IDS).logits, theirs(IDS).logits, atol=1e-5)


def test_a_causal_lm_without_is_decoder_warns_as_hugging_face_does(tmp_path, caplog):
    directory = checkpoint(tmp_path)
    their_logger = transformers.logging.get_logger("transformers.models.rembert.modeling_tf_rembert")
    with CaptureLogger(their_logger) as theirs:
        transformers.TFRemBertForCausalLM.from_pretrained(directory)
    with caplog.at_level(logging.WARNING, logger="rembert"):
        TFRemBertForCausalLM.from_pretrained(directory)
        ours = [r.getMessage() for r in caplog.records if r.name == "rembert"]
        assert len(ours) == 1 and theirs.out.strip() in ours[0]
        caplog.clear()
        TFRemBertForCausalLM.from_pretrained(directory, is_decoder=True)
        assert [r for r in caplog.records if r.name == "rembert"] == []
