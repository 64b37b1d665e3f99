"""Keras serialization and export, the way a Keras user writes them: `.keras` files read back by
`keras.models.load_model` with nothing but `import rembert_tf`, `.weights.h5`, checkpoint callbacks in `fit`,
`model.export` / `ExportArchive` reloaded by plain TensorFlow, TFLite with builtin ops only, and the backbone as a
layer of a functional model."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import rembert_tf
from rembert_spec.weights import HEADS
from tests.conftest import tiny_config
from tests.tf.common import batch_for, config_for, max_abs_difference, tf_class, to_numpy

SERVING_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def inputs_of(head: str, config, **kwargs) -> dict[str, np.ndarray]:
    """A padded batch's inputs as the serving signature takes them (int32)."""
    return {k: v.astype(np.int32) for k, v in batch_for(head, config, **kwargs).items() if k in SERVING_INPUTS}


def scce() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# -- .keras and .weights.h5 -----------------------------------------------------------------------------------


def test_every_model_class_is_registered_with_keras():
    for head in HEADS:
        model_class = tf_class(head)
        assert keras.saving.get_registered_object(f"rembert_tf>{model_class.__name__}") is model_class
        assert keras.saving.get_registered_name(model_class) == f"rembert_tf>{model_class.__name__}"


@pytest.mark.parametrize("head", ["base", "masked_lm", "multiple_choice", "question_answering"])
def test_keras_file_reloads_with_only_import_rembert_tf(head, tmp_path):
    """No custom_objects: the classes are registered when rembert_tf is imported. The config, the dtype policy and
    every output come back."""
    config = config_for(head)
    dtype = "mixed_bfloat16" if head == "question_answering" else None
    kwargs = {"add_pooling_layer": False} if head == "base" else {}
    model = tf_class(head)(config, dtype=dtype, **kwargs)
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    assert type(again) is type(model) and again.config == model.config
    assert again.dtype_policy.name == model.dtype_policy.name and again.weight_spec() == model.weight_spec()
    features = {k: v for k, v in batch_for(head, config).items() if k not in ("labels",)}
    assert max_abs_difference(to_numpy(dict(again(features))), to_numpy(dict(model(features)))) == 0.0


def test_get_config_round_trips_the_rembert_config():
    config = tiny_config(num_labels=4, problem_type="single_label_classification", hidden_act="gelu_new")
    model = rembert_tf.TFRemBertModel(config, add_pooling_layer=False, name="encoder")
    again = rembert_tf.TFRemBertModel.from_config(model.get_config())
    assert again.config == config and again.config.to_dict() == config.to_dict()
    assert again.name == "encoder" and again.pooler is None
    serialized = keras.saving.serialize_keras_object(model)
    assert serialized["registered_name"] == "rembert_tf>TFRemBertModel"


def test_a_trained_model_reloads_with_its_optimizer_and_compiled_loss(tmp_path):
    head = "sequence_classification"
    config = config_for(head, classifier_dropout_prob=0.0)
    features = batch_for(head, config, batch=4)
    x, y = {k: v for k, v in features.items() if k != "labels"}, features["labels"]
    model = tf_class(head)(config)
    model.compile(keras.optimizers.Adam(1e-2), loss=scce(), metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "trained.keras")
    again = keras.models.load_model(tmp_path / "trained.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    # Training can resume where it stopped: the optimizer's state and the compiled loss come back.
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations) == 1
    for a, b in zip(again.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert isinstance(again.loss, keras.losses.SparseCategoricalCrossentropy) and again.loss.get_config()["from_logits"]


def test_keras_weights_file_round_trip(tmp_path):
    config = tiny_config()
    model = rembert_tf.TFRemBertForMaskedLM(config)
    model.save_weights(tmp_path / "model.weights.h5")
    again = rembert_tf.TFRemBertForMaskedLM(config)
    again.load_weights(tmp_path / "model.weights.h5")
    for (name, a), (_, b) in zip(model.named_variables(), again.named_variables(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name


def test_model_checkpoint_and_early_stopping_in_fit(tmp_path):
    head = "sequence_classification"
    config = config_for(head)
    features = batch_for(head, config, batch=4)
    x, y = {k: v for k, v in features.items() if k != "labels"}, features["labels"]
    model = tf_class(head)(config)
    model.compile(keras.optimizers.Adam(1e-2), loss=scce(), metrics=["accuracy"])
    callbacks = [
        keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor="val_loss", save_best_only=True),
        keras.callbacks.ModelCheckpoint(tmp_path / "epoch{epoch}.weights.h5", save_weights_only=True),
        # No epoch improves the loss by 10, so training stops after `patience` + 1 epochs.
        keras.callbacks.EarlyStopping(monitor="val_accuracy", min_delta=10.0, patience=1),
    ]
    history = model.fit(x, y, validation_data=(x, y), epochs=6, callbacks=callbacks, verbose=0).history
    assert len(history["loss"]) == 2 and set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "epoch1.weights.h5", "epoch2.weights.h5"]
    best = keras.models.load_model(tmp_path / "best.keras")
    assert float(best.evaluate(x, y, verbose=0, return_dict=True)["loss"]) == pytest.approx(min(history["val_loss"]))


# -- export ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["base", "sequence_classification", "multiple_choice", "question_answering"])
def test_export_after_a_call_serves_identical_outputs(head, tmp_path):
    config = config_for(head)
    model = tf_class(head)(config)
    model(inputs_of(head, config))  # a model that has been called exports as well as a fresh one
    model.export(tmp_path / "exported", verbose=False)
    artifact = tf.saved_model.load(str(tmp_path / "exported"))
    assert set(artifact.signatures) == {"serve", "serving_default"}
    # The documented signature: three int32 inputs by name, every size unknown.
    _, specs = artifact.signatures["serving_default"].structured_input_signature
    rank = 3 if head == "multiple_choice" else 2
    assert specs == {name: tf.TensorSpec([None] * rank, tf.int32, name) for name in SERVING_INPUTS}
    for batch, length in ((3, 9), (4, 5)):  # one trace serves every batch and length
        inputs = inputs_of(head, config, batch=batch, length=length, seed=length)
        expected = {k: v for k, v in to_numpy(dict(model(inputs))).items()}
        served = {k: v.numpy() for k, v in artifact.serve(**inputs).items()}
        assert max_abs_difference(served, expected) < 1e-6
        by_signature = artifact.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
        assert max_abs_difference({k: v.numpy() for k, v in by_signature.items()}, expected) < 1e-6


def test_export_archive_with_an_explicit_signature(tmp_path):
    config = tiny_config(num_labels=3)
    model = rembert_tf.TFRemBertForSequenceClassification(config)

    def classify(input_ids: tf.Tensor, attention_mask: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "classify",
        classify,
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, "input_ids"),
            tf.TensorSpec([None, None], tf.int32, "attention_mask"),
        ],
    )
    archive.write_out(str(tmp_path), verbose=False)
    artifact = tf.saved_model.load(str(tmp_path))  # keep it: its functions hold its variables weakly
    inputs = inputs_of("sequence_classification", config)
    expected = classify(inputs["input_ids"], inputs["attention_mask"])
    served = artifact.classify(tf.constant(inputs["input_ids"]), tf.constant(inputs["attention_mask"]))
    assert np.abs(served.numpy() - expected.numpy()).max() < 1e-6


@pytest.mark.parametrize("head", ["masked_lm", "multiple_choice", "question_answering"])
def test_saved_model_reloads_in_plain_tensorflow(head, tmp_path):
    config = config_for(head)
    model = tf_class(head)(config)
    tf.saved_model.save(model, str(tmp_path), signatures={"serving_default": model.serving_function()})
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    for length in (9, 5):  # one trace serves every length
        inputs = inputs_of(head, config, seed=length, length=length)
        exported = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
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


@pytest.mark.parametrize("head", ["base", "sequence_classification"])
def test_tflite_with_builtin_ops_only(head, tmp_path):
    """`export(format="litert")` converts with TFLite's builtin ops only (conversion fails if any other op is
    needed); the interpreter gives the model's numbers, with padding, at two batch shapes."""
    config = config_for(head)
    model = tf_class(head)(config)
    model.export(tmp_path / "model.tflite", format="litert", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to the ai_edge_litert package
        interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "model.tflite"))
    run = interpreter.get_signature_runner("serving_default")
    assert set(interpreter.get_signature_list()["serving_default"]["inputs"]) == set(SERVING_INPUTS)
    for batch, length in ((3, 9), (2, 6)):
        inputs = inputs_of(head, config, batch=batch, length=length, seed=length)
        expected = {k: v for k, v in to_numpy(dict(model(inputs))).items()}
        assert max_abs_difference(run(**inputs), expected) < 1e-5


# -- the backbone inside a user's functional model ----------------------------------------------------------


def test_backbone_as_a_layer_of_a_functional_model(tmp_path):
    config = tiny_config()
    keras.utils.set_random_seed(0)
    backbone = rembert_tf.TFRemBertModel(config)
    input_ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
    attention_mask = keras.Input(shape=(None,), dtype="int32", name="attention_mask")
    encoded = backbone({"input_ids": input_ids, "attention_mask": attention_mask})
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(encoded["pooler_output"])
    logits = keras.layers.Dense(2, name="logits")(hidden)
    model = keras.Model({"input_ids": input_ids, "attention_mask": attention_mask}, logits)
    assert model.count_params() == backbone.num_parameters() + (12 * 16 + 16) + (16 * 2 + 2)

    features = batch_for("sequence_classification", config.replace(num_labels=2), batch=6)
    x = {k: features[k].astype(np.int32) for k in ("input_ids", "attention_mask")}
    model.compile(keras.optimizers.Adam(1e-2), loss=scce(), metrics=["accuracy"])
    history = model.fit(x, features["labels"], epochs=2, verbose=0).history
    assert history["loss"][-1] < history["loss"][0], history
    expected = model.predict(x, verbose=0)
    pooled = backbone(x).pooler_output
    np.testing.assert_allclose(model.get_layer("logits")(model.get_layer("hidden")(pooled)), expected, atol=1e-6)

    model.save(tmp_path / "functional.keras")
    again = keras.models.load_model(tmp_path / "functional.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), expected)
