"""Keras workflows, written the way a Keras user writes them: compile with a loss and metrics or with the model's own
loss, fit on (x, y) data or on labels inside the dict of inputs, predict, evaluate; mixed precision; bad token ids
caught inside compiled functions. Numbers are checked against a numpy computation on the model's own predictions."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import rembert_tf
from rembert_spec.inputs import LABEL_NAMES, InputError
from rembert_spec.outputs import OUTPUT_FOR_HEAD, PREDICTIONS
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS
from rembert_tf.call_inputs import parameter_names
from tests.conftest import tiny_config
from tests.tf.common import batch_for, config_for, tf_class

LABEL_HEADS = [head for head in HEADS if head != "base"]


def scce() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def split(head: str, features: dict) -> tuple[dict, np.ndarray | dict]:
    """(x, y) as a Keras user writes them: the inputs, and the labels (QA: a dict by label name)."""
    names = LABEL_NAMES[head]
    x = {k: v for k, v in features.items() if k not in names}
    y = features[names[0]] if len(names) == 1 else {name: features[name] for name in names}
    return x, y


def dataset(head: str, config, size: int = 8, batch: int = 4, seed: int = 0) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(batch_for(head, config, seed=seed, batch=size)).batch(batch)


def without_labels(features: dict) -> dict:
    return {k: v for k, v in features.items() if k not in ("labels", "start_positions", "end_positions")}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def counted_pairs(head: str, logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits rows, labels) that Hugging Face's loss counts, by hand: -100 skipped, a causal LM shifted, QA
    positions clamped to the length and the length skipped."""
    if head == "causal_lm":
        logits, labels = logits[:, :-1], labels[:, 1:]
    if head == "question_answering":
        labels = np.clip(labels, 0, logits.shape[-1])
        keep = labels != logits.shape[-1]
    else:
        keep = labels != -100
    return logits[keep], labels[keep]


def cross_entropy(head: str, logits: np.ndarray, labels: np.ndarray) -> float:
    rows, labels = counted_pairs(head, logits, labels)
    return float(-log_softmax(rows)[np.arange(len(labels)), labels].mean())


def accuracy(head: str, logits: np.ndarray, labels: np.ndarray) -> float:
    rows, labels = counted_pairs(head, logits, labels)
    return float((rows.argmax(-1) == labels).mean())


def compile_with_user_loss(model, head: str, optimizer="sgd", **kwargs) -> None:
    if head == "question_answering":  # two outputs: a loss and metrics for each, HF's loss is their mean
        model.compile(
            optimizer,
            loss={"start_logits": scce(), "end_logits": scce()},
            loss_weights={"start_logits": 0.5, "end_logits": 0.5},
            metrics={"start_logits": ["accuracy"], "end_logits": ["accuracy"]},
            **kwargs,
        )
    else:
        model.compile(optimizer, loss=scce(), metrics=["accuracy"], **kwargs)


def test_label_and_prediction_names_are_the_calls_and_the_records():
    for head in HEADS:
        assert set(LABEL_NAMES[head]) <= set(parameter_names(tf_class(head).call))
        assert set(PREDICTIONS[head]) <= set(OUTPUT_FOR_HEAD[head].fields)


# -- a loss and metrics given to compile ----------------------------------------------------------------------


@pytest.mark.parametrize("head", LABEL_HEADS)
def test_a_compiled_loss_and_metrics_see_the_predictions(head):
    """evaluate(x, y) = Keras' loss and accuracy on predict(x), computed here by hand; positions the model's loss
    skips are skipped. The compiled SparseCategoricalCrossentropy is then Hugging Face's loss, as the model's own."""
    config = config_for(head)
    model = tf_class(head)(config)
    features = batch_for(head, config, batch=4)
    x, y = split(head, features)
    compile_with_user_loss(model, head)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    predicted = model.predict(x, verbose=0)
    if head == "question_answering":
        assert set(predicted) == {"start_logits", "end_logits"}
        for output, label in (("start_logits", "start_positions"), ("end_logits", "end_positions")):
            assert result[f"{output}_loss"] == pytest.approx(cross_entropy(head, predicted[output], y[label]), abs=1e-5)
            assert result[f"{output}_accuracy"] == pytest.approx(accuracy(head, predicted[output], y[label]), abs=1e-6)
        expected_loss = (result["start_logits_loss"] + result["end_logits_loss"]) / 2
    else:
        assert isinstance(predicted, np.ndarray)
        expected_loss = cross_entropy(head, predicted, y)
        assert result["accuracy"] == pytest.approx(accuracy(head, predicted, y), abs=1e-6)
        # The model's own loss is the same number (QA differs at padding: its own loss computes padding positions).
        assert float(model(features).loss) == pytest.approx(result["loss"], abs=1e-5)
    assert result["loss"] == pytest.approx(expected_loss, abs=1e-5)


@pytest.mark.parametrize("problem", ["regression", "multi_label_classification"])
def test_float_labels_take_a_compiled_loss_as_they_are(problem):
    """Regression and multi-label labels are floats and every value counts: Keras' MSE / binary cross-entropy on
    the logits is the model's own loss."""
    head = "sequence_classification"
    config = config_for(head, num_labels=1 if problem == "regression" else 3, problem_type=problem)
    model = tf_class(head)(config)
    x, _ = split(head, batch_for(head, config, batch=4))
    rng = np.random.default_rng(0)
    if problem == "regression":
        y, loss = rng.normal(size=4).astype(np.float32), "mse"
    else:
        y, loss = rng.integers(0, 2, (4, 3)).astype(np.float32), keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(loss=loss)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(float(model({**x, "labels": y}).loss), abs=1e-5)


CONVENTIONS = [  # (name, loss given to compile, how the data is given); test_fit_takes_hugging_faces_steps has more
    ("labels in x, own loss", False, "dict"),
    ("arrays fit(x, y), own loss", False, "arrays xy"),
    ("dataset (x, y, sample_weight), compiled loss", True, "dataset xyw"),
    ("list of inputs in call order, arrays, compiled loss", True, "list xy"),
]


def test_every_label_convention_takes_the_same_steps():
    """Token classification (labels of -100 in the batch), two SGD steps from the same weights: the model's own
    loss and a compiled SparseCategoricalCrossentropy, labels in the dict or as y, datasets or arrays, all move the
    weights the same way, and the metrics see the same predictions."""
    head = "token_classification"
    config = config_for(head, classifier_dropout_prob=0.0)
    features = batch_for(head, config, batch=4)
    x, y = split(head, features)
    keras.utils.set_random_seed(0)
    model = tf_class(head)(config)
    initial = model.get_weights()
    results = {}
    for name, compiled_loss, form in CONVENTIONS:  # the own-loss ones first: compile(loss=None) keeps a loss given
        model.set_weights(initial)
        kwargs = {"loss": scce()} if compiled_loss else {}
        model.compile(keras.optimizers.SGD(0.5), metrics=["accuracy"], **kwargs)
        fit = dict(epochs=1, verbose=0, shuffle=False)
        if form == "dict":
            history = model.fit(tf.data.Dataset.from_tensor_slices(features).batch(2), **fit)
        elif form == "dataset xyw":
            weights = np.ones(len(y), np.float32)
            history = model.fit(tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(2), **fit)
        elif form == "list xy":
            inputs = [x["input_ids"], x["attention_mask"], x["token_type_ids"]]
            history = model.fit(inputs, y, batch_size=2, **fit)
        else:
            history = model.fit(x, y, batch_size=2, **fit)
        results[name] = (model.get_weights(), history.history)
    reference, reference_history = results[CONVENTIONS[0][0]]
    assert max(np.abs(a - b).max() for a, b in zip(reference, initial, strict=True)) > 1e-3, "the steps move weights"
    for name, (weights, history) in results.items():
        assert max(np.abs(a - b).max() for a, b in zip(weights, reference, strict=True)) < 1e-5, name
        assert history["loss"] == pytest.approx(reference_history["loss"], abs=1e-5), name
        assert history["accuracy"] == pytest.approx(reference_history["accuracy"], abs=1e-6), name


def test_fit_takes_hugging_faces_steps(tmp_path):
    """Hugging Face's TF model (the oracle, on tf-keras) and ours, from the same weights, fit two SGD steps on the
    same token-classification batches (labels of -100 included): Hugging Face's with its own loss and the labels in
    the dict; ours with its own loss on (x, y) data, and with a compiled SparseCategoricalCrossentropy and the labels
    in the dict. The same losses, the same weights."""
    import tf_keras

    from tests.tf.test_oracle import their_model

    head = "token_classification"
    config = config_for(head, classifier_dropout_prob=0.0)
    theirs = their_model(head, config)
    theirs.save_pretrained(tmp_path / "before")
    own_loss = tf_class(head).from_pretrained(tmp_path / "before")
    compiled = tf_class(head).from_pretrained(tmp_path / "before")
    features = {k: v.astype(np.int32) for k, v in batch_for(head, config, batch=4).items()}
    theirs.compile(optimizer=tf_keras.optimizers.SGD(0.5))
    own_loss.compile(optimizer=keras.optimizers.SGD(0.5))
    compiled.compile(optimizer=keras.optimizers.SGD(0.5), loss=scce())
    with_labels = tf.data.Dataset.from_tensor_slices(features).batch(2)
    expected = theirs.fit(with_labels, epochs=1, verbose=0, shuffle=False).history["loss"]
    losses = {
        "own loss, (x, y)": own_loss.fit(*split(head, features), batch_size=2, verbose=0, shuffle=False),
        "compiled loss, labels in the dict": compiled.fit(with_labels, epochs=1, verbose=0, shuffle=False),
    }
    for name, history in losses.items():
        assert history.history["loss"] == pytest.approx(expected, abs=1e-5), name
    theirs.save_pretrained(tmp_path / "after")
    stepped = dict(tf_class(head).from_pretrained(tmp_path / "after").named_variables())
    for model in (own_loss, compiled):
        for name, variable in model.named_variables():
            np.testing.assert_allclose(variable.numpy(), stepped[name].numpy(), atol=1e-6, err_msg=name)


def test_metrics_update_during_fit_and_evaluate():
    """With a learning rate of 0 the weights stay, so fit's epoch accuracy is the accuracy of predict over every
    batch (-100 skipped), by hand; evaluate with the model's own loss reports the same."""
    head = "token_classification"
    config = config_for(head, classifier_dropout_prob=0.0)
    model = tf_class(head)(config)
    features = batch_for(head, config, batch=6, seed=1)
    data = tf.data.Dataset.from_tensor_slices(features).batch(2)
    model.compile(
        keras.optimizers.SGD(0.0), metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(from_logits=True)]
    )
    history = model.fit(data, epochs=2, verbose=0).history
    logits = model.predict(data, verbose=0)
    expected = accuracy(head, logits, features["labels"])
    assert history["accuracy"] == pytest.approx([expected, expected], abs=1e-6)
    evaluated = model.evaluate(data, verbose=0, return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(expected, abs=1e-6)
    # The cross-entropy metric over the counted positions of all batches is the loss over the whole set.
    assert evaluated["sparse_categorical_crossentropy"] == pytest.approx(
        cross_entropy(head, logits, features["labels"]), abs=1e-5
    )


def test_sample_weight_weighs_a_compiled_loss_and_weighted_metrics():
    head = "sequence_classification"
    config = config_for(head, num_labels=3)
    model = tf_class(head)(config)
    x, y = split(head, batch_for(head, config, batch=6))
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.0, 1.0])
    model.compile("sgd", loss=scce(), weighted_metrics=["accuracy"])
    result = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    logits = model.predict(x, verbose=0)
    losses = -log_softmax(logits)[np.arange(len(y)), y]
    assert result["loss"] == pytest.approx((losses * weights).sum() / len(y), abs=1e-5)  # Keras: sum / batch size
    assert result["accuracy"] == pytest.approx(((logits.argmax(-1) == y) * weights).sum() / weights.sum(), abs=1e-6)


def test_the_models_own_loss_refuses_sample_weights_and_labels_given_twice():
    head = "sequence_classification"
    config = config_for(head)
    model = tf_class(head)(config)
    features = batch_for(head, config, batch=4)
    x, y = split(head, features)
    model.compile("sgd")
    with pytest.raises(InputError, match=r"sample_weight \(or class_weight\) weighs a loss given to compile\(\)"):
        model.fit(x, y, sample_weight=np.ones(4), verbose=0)
    with pytest.raises(InputError, match="labels are given twice"):
        model.fit(features, y, verbose=0)
    with pytest.raises(InputError, match=r"computed no loss: pass labels \(fit\(x, y\), or 'labels' in the dict"):
        model.fit(dataset(head, config).map(without_labels), epochs=1, verbose=0)


# -- the model's own loss --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head, jit_compile",
    [("masked_lm", False), ("masked_lm", True), ("question_answering", False)],
)
def test_fit_trains_on_the_models_own_loss(head, jit_compile):
    keras.utils.set_random_seed(0)
    config = config_for(head)
    model = tf_class(head)(config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=jit_compile)
    history = model.fit(dataset(head, config), epochs=3, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses


@pytest.mark.parametrize("head", ["question_answering", "masked_lm"])
def test_own_loss_with_metrics_per_output(head):
    """Labels in the dict and no compiled loss: metrics still get the labels, per output for QA; a masked LM
    whose head ran only at labelled positions is scored on those rows."""
    config = config_for(head)
    model = tf_class(head)(config)
    features = batch_for(head, config, batch=4)
    x, y = split(head, features)
    metrics = {"start_logits": "accuracy", "end_logits": "accuracy"} if head == "question_answering" else ["accuracy"]
    model.compile("sgd", metrics=metrics)
    result = model.evaluate(features, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(float(model(features).loss), abs=1e-5)
    predicted = model.predict(x, verbose=0)
    if head == "question_answering":
        for output, label in (("start_logits", "start_positions"), ("end_logits", "end_positions")):
            # With the positions given, padding is computed (as the loss needs), so predict may differ there.
            with_positions = model(features)[output].numpy()
            assert result[f"{output}_accuracy"] == pytest.approx(accuracy(head, with_positions, y[label]), abs=1e-6)
        assert set(predicted) == {"start_logits", "end_logits"}
    else:
        assert result["accuracy"] == pytest.approx(accuracy(head, predicted, y), abs=1e-6)


def test_predict_returns_the_logits_or_a_dict():
    config = tiny_config(num_labels=3)
    data = dataset("token_classification", config, size=8, batch=4)
    model = rembert_tf.TFRemBertForTokenClassification(config)
    predicted = model.predict(data, verbose=0)  # labels in the dict are left out
    assert isinstance(predicted, np.ndarray) and predicted.shape == (8, 9, 3)
    expected = np.concatenate([model(without_labels(batch)).logits.numpy() for batch in data])
    assert np.abs(predicted - expected).max() < 1e-5
    backbone = rembert_tf.TFRemBertModel(config)
    outputs = backbone.predict(data.map(without_labels), verbose=0)
    assert set(outputs) == {"last_hidden_state", "pooler_output"} and outputs["pooler_output"].shape == (8, 12)
    asked_for_more = rembert_tf.TFRemBertForTokenClassification(config.replace(output_hidden_states=True))
    outputs = asked_for_more.predict(data, verbose=0)
    assert set(outputs) == {"logits", "hidden_states"} and len(outputs["hidden_states"]) == 3


# -- Keras idioms around the model --------------------------------------------------------------------------


def test_freezing_the_backbone_trains_only_the_head():
    head = "sequence_classification"
    config = config_for(head)
    model = tf_class(head)(config)
    model.rembert.trainable = False
    assert [w.path.split("/")[-2:] for w in model.trainable_weights] == [
        ["classifier", "weight"],
        ["classifier", "bias"],
    ]
    model.compile(keras.optimizers.Adam(1e-2), loss=scce())
    before = {name: v.numpy().copy() for name, v in model.named_variables()}
    model.fit(*split(head, batch_for(head, config, batch=4)), epochs=2, verbose=0)
    changed = {name for name, v in model.named_variables() if not np.array_equal(v.numpy(), before[name])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_jit_compile_and_steps_per_execution_take_the_same_steps():
    """XLA (static shapes: padding computed, then zeroed) running two steps per execution gives the steps, losses
    and metrics of the plain graph."""
    head = "token_classification"
    config = config_for(head, classifier_dropout_prob=0.0)
    x, y = split(head, batch_for(head, config, batch=4))
    model = tf_class(head)(config)
    initial = model.get_weights()
    runs = {}
    for options in ({}, {"jit_compile": True, "steps_per_execution": 2}):
        model.set_weights(initial)
        compile_with_user_loss(model, head, optimizer=keras.optimizers.SGD(0.5), **options)
        history = model.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False).history
        runs[str(options)] = (model.get_weights(), history)
    (reference, reference_history), *others = runs.values()
    for weights, history in others:
        assert max(np.abs(a - b).max() for a, b in zip(weights, reference, strict=True)) < 1e-5
        for key in ("loss", "accuracy"):
            assert history[key] == pytest.approx(reference_history[key], abs=1e-5)


def test_summary_and_trainable_weights_count_the_pytorch_parameters(capsys):
    import rembert_pt

    for head in HEADS:
        config = config_for(head)
        model = tf_class(head)(config)
        pytorch = getattr(rembert_pt, HEADS[head].pt_class)(config)
        count = sum(p.numel() for p in pytorch.parameters())
        assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == count, head
        assert len(model.trainable_weights) == len(list(pytorch.parameters())), head
        model.summary()
        assert f"Trainable params: {count:,}" in capsys.readouterr().out, head


# -- mixed precision and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_global_policy_runs_through_fit(policy, tmp_path):
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
    # Through fit with a compiled loss and metrics on (x, y) (float16: with the loss scaling compile adds).
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=scce(), metrics=["accuracy"])
    history = model.fit(*split("masked_lm", batch_for("masked_lm", config, batch=8)), batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"])) and len(history.history["accuracy"]) == 2
    assert all(np.all(np.isfinite(v.numpy())) for v in model.trainable_variables)
    assert model.predict(without_labels(features), verbose=0).dtype == policy.removeprefix("mixed_")


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
