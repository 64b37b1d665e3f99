"""Training at scale in Keras: `model.fit` under MirroredStrategy over 2 logical CPU devices takes the same steps
as one device on the combined batch (with the model's own loss, and with a loss and metrics given to compile), and
mixed-precision policies train with finite losses.

Logical devices must be configured before TensorFlow initialises its runtime, so the strategy runs in a fresh
Python process (`_mirrored_worker`), which writes what it measured to a JSON file for the assertions here.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3
ROWS = 4  # global batch: 2 rows per replica
LENGTH = 7
LR = 0.5
LOSS_HEADS = [head for head in HEADS if head != "base"]  # fit trains on the model's own loss; the backbone has none
COMPILED_LOSS_HEADS = ["sequence_classification", "token_classification"]  # and on a Keras loss, with metrics


def config_for(head: str):
    return tiny_config(is_decoder=head == "causal_lm", classifier_dropout_prob=0.0)


def training_data(head: str) -> dict[str, np.ndarray]:
    """STEPS batches of ROWS rows in one dict. Every row counts the same number of labels, so any even split
    of a batch between replicas averages to the loss of the whole batch."""
    rng = np.random.default_rng(7)
    n = STEPS * ROWS
    vocab = config_for(head).vocab_size
    ids = rng.integers(1, vocab, (n, LENGTH)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1::2, -2:] = 0  # odd rows padded; even rows instead ignore their last two labels
    data = dict(input_ids=ids, attention_mask=mask)
    if head in ("masked_lm", "causal_lm", "token_classification"):
        labels = rng.integers(0, vocab if head != "token_classification" else 2, (n, LENGTH)).astype(np.int32)
        labels[:, -2:] = -100
        if head == "causal_lm":
            labels[:, 0] = -100  # never predicted: keeps the count per row equal after the shift
        data["labels"] = labels
    elif head in ("sequence_classification", "multiple_choice"):
        if head == "multiple_choice":
            data = {k: np.stack([v, np.roll(v, 1, axis=1)], axis=1) for k, v in data.items()}
        data["labels"] = rng.integers(0, 2, (n,)).astype(np.int32)
    elif head == "question_answering":
        data["start_positions"] = rng.integers(0, LENGTH - 2, (n,)).astype(np.int32)
        data["end_positions"] = rng.integers(0, LENGTH - 2, (n,)).astype(np.int32)
    return data


def _mirrored_worker(checkpoints: str, out_file: str) -> None:
    """Runs in a fresh process: 2 logical CPUs, then for every head fit under MirroredStrategy and on one device."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    import rembert_tf

    def fit(head: str, strategy: tf.distribute.Strategy, compiled_loss: bool = False) -> tuple[dict, dict]:
        with strategy.scope():
            model = getattr(rembert_tf, HEADS[head].tf_class).from_pretrained(Path(checkpoints) / head)
            if compiled_loss:  # a Keras user's loss and metrics, on (x, y) data
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                model.compile(optimizer=keras.optimizers.SGD(LR), loss=loss, metrics=["accuracy"])
            else:  # the model's own loss, labels in the dict; metrics all the same
                qa = {"start_logits": "accuracy", "end_logits": "accuracy"}
                metrics = qa if head == "question_answering" else ["accuracy"]
                model.compile(optimizer=keras.optimizers.SGD(LR), metrics=metrics)
        data = training_data(head)
        if compiled_loss:
            data = ({k: v for k, v in data.items() if k != "labels"}, data["labels"])
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(ROWS)  # STEPS batches
        history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
        logs = {name: values[0] for name, values in history.history.items()}
        return {name: np.asarray(v.numpy()) for name, v in model.named_variables()}, logs

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": mirrored.num_replicas_in_sync}
    for head in LOSS_HEADS:
        initial = {
            name: np.asarray(v.numpy())
            for name, v in getattr(rembert_tf, HEADS[head].tf_class)
            .from_pretrained(Path(checkpoints) / head)
            .named_variables()
        }
        try:
            distributed, distributed_logs = fit(head, mirrored)
        except Exception as error:  # reported to the test, which names the head
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Keras wraps the message in colour codes
            first_line = next((line for line in text.splitlines()[1:] if line.strip()), text)
            results[head] = {"error": f"{type(error).__name__}: {first_line.strip()}"}
            continue
        single, single_logs = fit(head, tf.distribute.get_strategy())
        results[head] = {
            "max_difference": max(float(np.abs(distributed[k] - single[k]).max()) for k in single),
            "moved": max(float(np.abs(single[k] - initial[k]).max()) for k in single),
            "same_names": sorted(distributed) == sorted(single),
            "mirrored_logs": distributed_logs,
            "single_logs": single_logs,
        }
    for head in COMPILED_LOSS_HEADS:
        distributed, distributed_logs = fit(head, mirrored, compiled_loss=True)
        single, single_logs = fit(head, tf.distribute.get_strategy(), compiled_loss=True)
        results[f"{head} compiled loss"] = {
            "max_difference": max(float(np.abs(distributed[k] - single[k]).max()) for k in single),
            "mirrored_logs": distributed_logs,
            "single_logs": single_logs,
        }
    Path(out_file).write_text(json.dumps(results))


@pytest.fixture(scope="module")
def mirrored_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirrored")
    for head in LOSS_HEADS:
        write_random_checkpoint(root / head, config_for(head), head, seed=0, fmt="tf_h5")
    out = root / "results.json"
    code = f"from tests.tf.test_distributed import _mirrored_worker; _mirrored_worker({str(root)!r}, {str(out)!r})"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("head", LOSS_HEADS)
def test_mirrored_fit_equals_one_device_on_the_combined_batch(mirrored_results, head):
    assert mirrored_results["replicas"] == 2
    result = mirrored_results[head]
    assert "error" not in result, result.get("error")
    assert result["same_names"]
    assert result["moved"] > 1e-3, "the steps should change the weights measurably"
    assert result["max_difference"] <= 1e-5, result
    assert math.isfinite(result["single_logs"]["loss"]) and "loss" in result["mirrored_logs"]
    for name, value in result["single_logs"].items():  # the reported loss and metrics: over the whole batch
        assert abs(result["mirrored_logs"][name] - value) <= 1e-5, (name, result)


@pytest.mark.parametrize("head", COMPILED_LOSS_HEADS)
def test_mirrored_fit_with_a_compiled_loss_and_metrics_equals_one_device(mirrored_results, head):
    result = mirrored_results[f"{head} compiled loss"]
    assert result["max_difference"] <= 1e-5, result
    assert set(result["mirrored_logs"]) == {"loss", "accuracy"}
    for name, value in result["single_logs"].items():
        assert abs(result["mirrored_logs"][name] - value) <= 1e-5, (name, result)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("head", ["sequence_classification", "causal_lm"])
def test_mixed_precision_policies_train_with_finite_losses(tmp_path, policy, head):
    import keras
    import tensorflow as tf

    import rembert_tf

    write_random_checkpoint(tmp_path, config_for(head), head, seed=0, fmt="tf_h5")
    model = getattr(rembert_tf, HEADS[head].tf_class).from_pretrained(tmp_path, dtype=policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    dataset = tf.data.Dataset.from_tensor_slices(training_data(head)).batch(ROWS)
    losses = model.fit(dataset, epochs=2, verbose=0, shuffle=False).history["loss"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    half = policy.removeprefix("mixed_")
    logits = model(**{k: v[:2] for k, v in training_data(head).items() if "label" not in k}).logits
    assert logits.dtype == tf.as_dtype(half), "the policy should compute in half precision"
    assert all(v.dtype == "float32" for _, v in model.named_variables()), "variables stay float32"
    if policy == "mixed_float16":  # float16 needs loss scaling, which compile() adds for the model's policy
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
