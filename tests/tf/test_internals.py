"""rembert_tf.internals: each hook pinned to the private Keras / TensorFlow behaviour it relies on (an upgrade that
moves it fails here), and the model computing the same numbers with every hook switched off."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import rembert_tf
from rembert_spec import switches
from rembert_spec.checkpoint import TF_H5
from rembert_spec.inputs import InputError
from rembert_spec.outputs import MaskedLMOutput
from rembert_spec.testing import write_random_checkpoint
from rembert_tf import internals
from tests.batches import batch_for
from tests.conftest import tiny_config
from tests.process_maps import mapped_file

ROOT = Path(__file__).resolve().parents[2]


def test_hooks_are_the_ones_the_switch_knows():
    assert internals.HOOKS == switches.HOOKS["tf"]
    assert switches.disabled_hooks("tf", "dlpack,malloc") == {"dlpack"}  # malloc is PyTorch's
    with pytest.raises(ValueError, match="rembert_tf has no hook 'malloc'"):
        internals.active("malloc")


# -- input_conversion: Layer._convert_input_args, _allow_non_tensor_positional_args ------------------------------


class _Echo(keras.layers.Layer):
    def call(self, x, flag):
        return x if flag == "keep" else -x


def test_input_conversion_pins_the_keras_layer_attributes():
    plain = _Echo()
    with pytest.raises(ValueError, match="Only input tensors may be passed as positional arguments"):
        plain(tf.ones(2), "keep")
    assert plain._convert_input_args is True and plain._allow_non_tensor_positional_args is False
    skipping = _Echo()
    internals.skip_input_conversion(skipping)
    assert float(skipping(tf.ones(2), "keep")[0]) == 1.0
    labels = tf.constant([0.5], tf.float32)
    mixed = _Echo(dtype="mixed_float16")
    assert mixed(labels, flag="keep").dtype == tf.float16  # what the hook prevents for float labels
    internals.skip_input_conversion(mixed)
    assert mixed(labels, flag="keep").dtype == tf.float32


# -- deferred_variables: StatelessScope, Variable._initializer / _value --------------------------------------------


def test_deferred_variables_pin_keras_lazy_creation():
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    with internals.deferred_variables():
        variable = keras.Variable(initializer="zeros", shape=(2, 3), dtype="float32")
        assert variable._value is None and hasattr(variable, "_initializer")
        assert internals.create_from(variable, value)
    np.testing.assert_array_equal(variable.numpy(), value)


def test_loading_without_deferred_variables_gives_the_same_model(tmp_path, monkeypatch):
    write_random_checkpoint(tmp_path, tiny_config(), "masked_lm", seed=3)
    direct = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"deferred_variables"})
    assigned = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(direct.named_variables(), assigned.named_variables(), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


# -- dlpack: tf.experimental.dlpack over numpy memory ----------------------------------------------------------


def test_dlpack_pins_tensorflow_sharing_numpy_memory(monkeypatch):
    buffer = np.zeros(64 + 16, np.float32)
    offset = (-buffer.ctypes.data % 64) // 4
    value = buffer[offset : offset + 16]  # 64-byte aligned, writable, contiguous
    value[:] = np.arange(16)
    tensor = internals.as_tensor(value)
    value[0] = 42.0
    assert float(tensor[0]) == 42.0  # the tensor is the numpy array's memory
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"dlpack"})
    copied = internals.as_tensor(value)
    value[0] = 7.0
    assert float(copied[0]) == 42.0


def test_variables_start_on_the_checkpoints_pages_and_training_never_writes_the_file(tmp_path, monkeypatch):
    """Our tf_model.h5 is 64-byte aligned, so variables are created over its (copy-on-write) pages without a copy;
    changing them must never reach the file."""
    config = tiny_config()
    write_random_checkpoint(tmp_path, config, "masked_lm", fmt=TF_H5, seed=4)
    before = hashlib.sha256((tmp_path / "tf_model.h5").read_bytes()).hexdigest()
    sources = []
    real = internals.as_tensor

    def watching(value):
        sources.append(value)
        return real(value)

    monkeypatch.setattr(internals, "as_tensor", watching)
    model = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    monkeypatch.setattr(internals, "as_tensor", real)
    embeddings = model.get_input_embeddings().weight
    source = next(v for v in sources if v.shape == tuple(embeddings.shape))
    source[1, 0] = 123.0  # a private copy-on-write page: the file is untouched, the variable sees it
    assert float(embeddings[1, 0]) == 123.0
    copied = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    batch = batch_for("masked_lm", config)
    for variable in model.trainable_variables:
        variable.assign_add(tf.ones_like(variable))
    with tf.GradientTape() as tape:
        loss = model(**batch, training=True).loss
    keras.optimizers.SGD(0.1).apply_gradients(
        zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
    )
    assert hashlib.sha256((tmp_path / "tf_model.h5").read_bytes()).hexdigest() == before
    again = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(again.named_variables(), copied.named_variables(), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_hugging_faces_own_tf_model_h5_reaches_tensorflow_in_one_pass(tmp_path, monkeypatch):
    """Hugging Face's TF save_pretrained leaves most datasets at offsets TensorFlow cannot use in place: each of
    those is read once into aligned memory of its own and then used in place too (issue 18); the aligned ones are
    the file's pages. Nothing is copied by TensorFlow."""
    from transformers import TFRemBertForMaskedLM

    from tests.oracle import hf_config

    theirs = TFRemBertForMaskedLM(hf_config(tiny_config()))
    theirs(theirs.dummy_inputs)
    theirs.save_pretrained(tmp_path)
    path = str(tmp_path / "tf_model.h5")
    sources = []
    real = internals.as_tensor
    monkeypatch.setattr(internals, "as_tensor", lambda value: sources.append(value) or real(value))
    ours = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    monkeypatch.setattr(internals, "as_tensor", real)
    assert len(sources) == len(ours.weight_spec()) and all(internals.adopts(value) for value in sources)
    homes = [mapped_file(value.ctypes.data) for value in sources]
    assert homes.count(None) > len(homes) // 2 and homes.count(path) > 0 and set(homes) == {None, path}
    expected = {v.name.split("/", 1)[1]: v.numpy() for v in theirs.weights}  # without the model's own scope
    for entry, (_, variable) in zip(ours.weight_spec(), ours.named_variables(), strict=True):
        np.testing.assert_array_equal(np.asarray(variable), expected[entry.tf_name], err_msg=entry.name)


# -- xla_context: tensorflow.python control-flow utilities ---------------------------------------------------


def test_xla_context_pins_tensorflows_private_modules(monkeypatch):
    from tensorflow.python.framework import ops  # noqa: F401
    from tensorflow.python.ops import control_flow_util

    assert callable(control_flow_util.GraphOrParentsInXlaContext)
    seen = {}

    def probe(name):
        def run(x):
            seen[name] = internals.in_xla()
            return x

        return run

    assert internals.in_xla() is False
    tf.function(probe("graph"))(tf.ones(1))
    tf.function(probe("xla"), jit_compile=True)(tf.ones(1))
    assert seen == {"graph": False, "xla": True}
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"xla_context"})
    tf.function(probe("graph off"))(tf.ones(1))
    assert seen["graph off"] is True  # switched off, every graph is treated as XLA (safe, static shapes)


# -- save_signature: _default_save_signature ---------------------------------------------------------------


def test_save_signature_pins_the_keras_property(tmp_path, monkeypatch):
    assert any("_default_save_signature" in vars(cls) for cls in keras.Model.__mro__)
    model = rembert_tf.TFRemBertModel(tiny_config())
    tf.saved_model.save(model, str(tmp_path / "on"))
    assert list(tf.saved_model.load(str(tmp_path / "on")).signatures) == ["serving_default"]
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"save_signature"})
    tf.saved_model.save(model, str(tmp_path / "off"))
    assert "serving_default" not in tf.saved_model.load(str(tmp_path / "off")).signatures
    tf.saved_model.save(model, str(tmp_path / "given"), signatures=model.serving_function())
    assert list(tf.saved_model.load(str(tmp_path / "given")).signatures) == ["serving_default"]


# -- error_context: _keras_call_info_injected; keras_tree: optree's "keras" namespace -------------------------------


class _Refuses(keras.layers.Layer):
    def __init__(self, error: type[Exception]):
        super().__init__()
        self.error = error

    def call(self, x):
        raise self.error("input_ids must be in [0, 99)")


def test_error_context_pins_the_attribute_keras_reads():
    class PlainError(ValueError):
        pass

    with pytest.raises(PlainError) as plain:
        _Refuses(PlainError)(tf.ones(1))
    assert "Arguments received" in str(plain.value)  # what Keras adds to an error without the attribute
    assert InputError._keras_call_info_injected is True
    with pytest.raises(InputError) as ours:
        _Refuses(InputError)(tf.ones(1))
    assert str(ours.value) == "input_ids must be in [0, 99)"


def test_keras_tree_pins_the_optree_namespace():
    logits = tf.ones((1, 2))
    record = MaskedLMOutput(logits=logits)
    assert [id(leaf) for leaf in keras.tree.flatten(record)] == [id(logits)]
    rebuilt = keras.tree.map_structure(lambda t: t * 2, record)
    assert isinstance(rebuilt, MaskedLMOutput) and float(rebuilt.logits[0, 0]) == 2.0


# -- everything off --------------------------------------------------------------------------------------------


def numbers(directory: str) -> dict[str, np.ndarray]:
    """What a decoder computes from a checkpoint: logits eager and in a graph, a loss, a gradient, greedy tokens."""
    config = tiny_config(is_decoder=True, initializer_range=0.2)
    batch = batch_for("causal_lm", config)
    model = rembert_tf.TFRemBertForCausalLM.from_pretrained(directory)
    inputs = {k: tf.constant(v) for k, v in batch.items() if k != "labels"}
    graph = tf.function(lambda kwargs: model(**kwargs).logits)(inputs)
    with tf.GradientTape() as tape:
        loss = model(**batch, training=True).loss
    gradient = tape.gradient(loss, model.get_output_embeddings().weight)
    prompts, mask = np.array([[5, 6, 7, 8], [0, 0, 9, 10]]), np.array([[1, 1, 1, 1], [0, 0, 1, 1]])
    tokens = model.generate(prompts, attention_mask=mask, max_new_tokens=6, eos_token_id=[])
    eager = model(**inputs).logits
    # Keras' side: a compiled loss and metrics (labels masked, shifted), and the backbone in a functional model.
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    labels = batch["labels"]
    evaluated = model.evaluate(inputs, labels, verbose=0, return_dict=True)
    ids = keras.Input(shape=(None,), dtype="int64", name="input_ids")
    functional = keras.Model(ids, model.rembert(ids, return_dict=False)[0])  # a tuple: records need keras_tree
    states = functional.predict(inputs["input_ids"], verbose=0)
    keras_side = dict(keras_loss=evaluated["loss"], keras_accuracy=evaluated["accuracy"], functional=states)
    return {
        name: np.asarray(value)
        for name, value in dict(
            eager=eager, graph=graph, loss=loss, gradient=gradient, tokens=tokens, **keras_side
        ).items()
    }


_WITHOUT_HOOKS = """
import sys
import numpy as np
from rembert_tf import internals
from tests.tf.test_internals import numbers

assert internals.DISABLED == set(internals.HOOKS)
np.savez(sys.argv[2], **numbers(sys.argv[1]))
"""


def test_with_every_hook_off_the_model_computes_the_same_numbers(tmp_path):
    """Some hooks act at import, so the run without them is a fresh process."""
    write_random_checkpoint(tmp_path, tiny_config(is_decoder=True, initializer_range=0.2), "causal_lm", fmt=TF_H5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), switches.ENVIRONMENT_VARIABLE: "1"}
    command = [sys.executable, "-c", _WITHOUT_HOOKS, str(tmp_path), str(tmp_path / "off.npz")]
    subprocess.run(command, env=env, check=True, cwd=ROOT)
    on, off = numbers(str(tmp_path)), np.load(tmp_path / "off.npz")
    np.testing.assert_array_equal(off["tokens"], on["tokens"])
    for name in ("eager", "graph", "loss", "gradient", "keras_loss", "keras_accuracy", "functional"):
        np.testing.assert_allclose(off[name], on[name], rtol=0, atol=1e-6, err_msg=name)
