"""Keras workflows: compile / fit / evaluate / predict with the model's own loss, SavedModel export read back by
plain TensorFlow, mixed precision, and bad token ids caught inside compiled functions."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import rembert_tf
from rembert_spec.inputs import InputError
from rembert_spec.testing import write_random_checkpoint
from tests.conftest import tiny_config
from tests.tf.common import batch_for, config_for, max_abs_difference, tf_class, to_numpy

LABEL_NAMES = ("labels", "start_positions", "end_positions")


def dataset(head: str, config, size: int = 8, batch: int = 4, seed: int = 0) -> tf.data.Dataset:
    features = batch_for(head, config, seed=seed, batch=size)
    return tf.data.Dataset.from_tensor_slices(features).batch(batch)


def without_labels(features: dict) -> dict:
    return {k: v for k, v in features.items() if k not in LABEL_NAMES}


@pytest.mark.parametrize(
    "head, jit_compile",
    [("sequence_classification", False), ("masked_lm", False), ("masked_lm", True), ("question_answering", False)],
)
def test_fit_trains_on_the_models_own_loss(head, jit_compile):
    keras.utils.set_random_seed(0)
    config = config_for(head)
    model = tf_class(head)(config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=jit_compile)
    history = model.fit(dataset(head, config), epochs=5, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_evaluate_and_predict():
    config = tiny_config(num_labels=3)
    model = rembert_tf.TFRemBertForTokenClassification(config)
    model.compile(optimizer="adam")
    data = dataset("token_classification", config, size=8, batch=4)
    evaluated = model.evaluate(data, verbose=0)
    by_batch = [float(model(batch).loss) for batch in data]
    assert abs(evaluated - np.mean(by_batch)) < 1e-5
    predicted = model.predict(data.map(without_labels), verbose=0)
    assert isinstance(predicted, dict) and predicted["logits"].shape == (8, 9, 3)
    expected = np.concatenate([model(without_labels(batch)).logits.numpy() for batch in data])
    assert np.abs(predicted["logits"] - expected).max() < 1e-5


def test_fit_without_labels_or_loss_says_what_to_do():
    config = tiny_config()
    model = rembert_tf.TFRemBertForSequenceClassification(config)
    model.compile(optimizer="adam")
    with pytest.raises(InputError, match="put the labels in the dict of inputs"):
        model.fit(dataset("sequence_classification", config).map(without_labels), epochs=1, verbose=0)


def test_keras_weights_file_round_trip(tmp_path):
    config = tiny_config()
    model = rembert_tf.TFRemBertForMaskedLM(config)
    model.save_weights(tmp_path / "model.weights.h5")
    again = rembert_tf.TFRemBertForMaskedLM(config)
    again.load_weights(tmp_path / "model.weights.h5")
    for (name, a), (_, b) in zip(model.named_variables(), again.named_variables(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name


@pytest.mark.parametrize("model_class", [rembert_tf.TFRemBertModel, rembert_tf.TFRemBertForQuestionAnswering])
def test_keras_format_round_trip(model_class, tmp_path):
    config = tiny_config()
    kwargs = {"add_pooling_layer": False} if model_class is rembert_tf.TFRemBertModel else {}
    model = model_class(config, dtype="mixed_bfloat16", **kwargs)
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras", custom_objects={model_class.__name__: model_class})
    assert type(again) is model_class and again.dtype_policy.name == "mixed_bfloat16"
    assert again.weight_spec() == model.weight_spec() and again.config == model.config
    for (name, a), (_, b) in zip(model.named_variables(), again.named_variables(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name


@pytest.mark.parametrize("head", ["masked_lm", "multiple_choice", "question_answering"])
def test_saved_model_reloads_in_plain_tensorflow(head, tmp_path):
    config = config_for(head)
    model = tf_class(head)(config)
    tf.saved_model.save(model, str(tmp_path), signatures={"serving_default": model.serving_function()})
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    for length in (9, 5):  # one trace serves every length
        features = batch_for(head, config, seed=length, length=length)
        inputs = {k: tf.constant(features[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
        exported = {k: v.numpy() for k, v in serve(**inputs).items()}
        expected = {k: v for k, v in to_numpy(dict(model(**inputs))).items()}
        assert max_abs_difference(exported, expected) < 1e-5


def test_saved_model_default_signature(tmp_path):
    config = tiny_config()
    model = rembert_tf.TFRemBertModel(config)
    tf.saved_model.save(model, str(tmp_path))
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    ids = tf.constant([[5, 6, 7, 0]], tf.int32)
    out = serve(input_ids=ids, attention_mask=tf.constant([[1, 1, 1, 0]]), token_type_ids=tf.zeros_like(ids))
    expected = model(ids, attention_mask=[[1, 1, 1, 0]])
    assert np.abs(out["last_hidden_state"].numpy() - expected.last_hidden_state.numpy()).max() < 1e-5


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_runs_and_stays_finite(policy, tmp_path):
    config = tiny_config()
    write_random_checkpoint(tmp_path, config, "masked_lm")
    reference = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.rembert.encoder.layer[0].attention.self.query.dtype_policy.name == policy
    assert model.rembert.encoder.layer[0].attention.self.query.weight.dtype == "float32"
    features = batch_for("masked_lm", config)
    out = model(**features)
    assert out.logits.dtype == policy.removeprefix("mixed_") and out.loss.dtype == tf.float32
    expected = reference(**features)
    assert np.abs(out.logits.numpy().astype(np.float32) - expected.logits.numpy()).max() < 0.05
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(dataset("masked_lm", config), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(v.numpy())) for v in model.trainable_variables)


def test_token_id_out_of_range_is_a_clear_error_eager_and_compiled():
    config = tiny_config()
    model = rembert_tf.TFRemBertForMaskedLM(config)
    bad = np.array([[5, 6, config.vocab_size]])
    with pytest.raises(InputError, match=r"input_ids must be in \[0, 99\) \(vocab_size=99\), got 99"):
        model(bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_ids must be in \[0, 99\) \(vocab_size=99\)"):
        tf.function(lambda ids: model(ids).logits)(tf.constant(bad))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_ids must be in \[0, 99\)"):
        model.predict({"input_ids": bad}, verbose=0)
