"""TensorFlow family: behaviour users rely on, checked against the model itself where no oracle applies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import rembert_tf
from rembert_spec import CheckpointError
from rembert_spec.checkpoint import TF_H5
from rembert_spec.inputs import InputError
from rembert_spec.outputs import MaskedLMOutput
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS, weight_spec
from tests.conftest import tiny_config
from tests.tf.common import batch_for, config_for, max_abs_difference, tf_class, to_numpy


def decoding_inputs(config, with_cross_attention: bool, left_padding: bool):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.vocab_size, (2, 8))
    mask = np.ones_like(ids)
    if left_padding:
        mask[1, :2] = 0
    extra = {}
    if with_cross_attention:
        extra = dict(
            encoder_hidden_states=rng.normal(size=(2, 5, config.hidden_size)).astype(np.float32),
            encoder_attention_mask=np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        )
    return ids, mask, extra


@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("with_cross_attention, left_padding", [(False, False), (True, True)])
def test_cached_decoding_equals_full_forward(with_cross_attention, left_padding, mode):
    config = tiny_config(is_decoder=True, add_cross_attention=with_cross_attention)
    tf.random.set_seed(0)
    model = rembert_tf.TFRemBertForCausalLM(config)
    ids, mask, extra = decoding_inputs(config, with_cross_attention, left_padding)
    step = model if mode == "eager" else tf.function(model, reduce_retracing=True)
    full = model(ids, attention_mask=mask, **extra).logits.numpy()
    out = step(tf.constant(ids[:, :3]), attention_mask=tf.constant(mask[:, :3]), use_cache=True, **extra)
    pieces, past = [out.logits], out.past_key_values
    for t in range(3, 8):
        out = step(
            tf.constant(ids[:, t : t + 1]),
            attention_mask=tf.constant(mask[:, : t + 1]),
            past_key_values=past,
            use_cache=True,
            **extra,
        )
        pieces.append(out.logits)
        past = out.past_key_values
    cached = np.concatenate([p.numpy() for p in pieces], axis=1)
    real = mask.astype(bool)
    assert np.abs(cached[real] - full[real]).max() < 1e-5
    assert len(past) == config.num_hidden_layers and len(past[0]) == (4 if with_cross_attention else 2)
    assert past[0][0].shape == (2, config.num_attention_heads, 8, config.head_size)
    if left_padding:  # the cache holds zeros for padding keys and values, as PyTorch's does
        assert np.all(past[0][0].numpy()[1, :, :2] == 0)


def test_logits_to_keep_keeps_the_last_positions():
    model = rembert_tf.TFRemBertForCausalLM(tiny_config(is_decoder=True))
    ids = np.array([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])
    full = model(ids).logits.numpy()
    last = model(ids, logits_to_keep=1).logits.numpy()
    assert last.shape == (2, 1, 99) and np.abs(last - full[:, -1:]).max() < 1e-6


def test_variables_are_named_by_the_spec_and_nothing_else():
    config = tiny_config(is_decoder=True, add_cross_attention=True)
    model = rembert_tf.TFRemBertForCausalLM(config)
    entries = weight_spec(config, "causal_lm")
    named = dict(model.named_variables())
    assert list(named) == [e.pt_key for e in entries]
    assert {k: tuple(v.shape) for k, v in named.items()} == {e.pt_key: e.tf_shape for e in entries}
    # Nothing else holds state: no seed variables, no duplicates.
    assert len(model.variables) == len(model.trainable_variables) == len(entries)
    assert model.num_parameters() == sum(int(np.prod(e.shape)) for e in entries)
    # Built at construction, backbone included: Keras never needs to trace the model to create state.
    assert all(layer.built for layer in model._flatten_layers())


@pytest.mark.parametrize("source_head", ["masked_lm", "base"])
@pytest.mark.parametrize("target_head", list(HEADS))
def test_any_head_loads_into_any_head(source_head, target_head, tmp_path):
    config = tiny_config(is_decoder=target_head == "causal_lm")
    write_random_checkpoint(tmp_path, config, source_head, seed=3)
    model, info = tf_class(target_head).from_pretrained(tmp_path, output_loading_info=True)
    written = {e.name: e for e in weight_spec(config, source_head)}
    target = {e.name: e for e in model.weight_spec()}
    assert info["missing_keys"] == [e.pt_key for n, e in target.items() if n not in written]
    prefix = HEADS[target_head].base_prefix
    assert info["unexpected_keys"] == [
        prefix + n if e.in_backbone else n for n, e in written.items() if n not in target
    ]


def test_new_head_weights_are_initialised_and_shared_ones_loaded(tmp_path):
    config = tiny_config(num_labels=4)
    write_random_checkpoint(tmp_path, config, "masked_lm", seed=5)
    mlm = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    clf = rembert_tf.TFRemBertForTokenClassification.from_pretrained(tmp_path)
    shared = (m.rembert.encoder.layer[1].output_.dense.weight.numpy() for m in (clf, mlm))
    assert np.array_equal(*shared)
    assert clf.classifier.weight.shape == (config.hidden_size, 4)  # TF layout: [in, out]
    assert np.all(clf.classifier.bias.numpy() == 0) and 0.005 < clf.classifier.weight.numpy().std() < 0.05


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    write_random_checkpoint(tmp_path, tiny_config(num_labels=3), "sequence_classification")
    with pytest.raises(CheckpointError) as info:
        rembert_tf.TFRemBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    message = str(info.value)
    assert "'classifier.weight'" in message and "(3, 12)" in message and "(5, 12)" in message
    model, report = rembert_tf.TFRemBertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert ("classifier.weight", (3, 12), (5, 12)) in report["mismatched_keys"]
    assert model.classifier.weight.shape == (12, 5)


@pytest.mark.parametrize("head", list(HEADS))
def test_save_load_round_trip_is_exact(head, tmp_path):
    config = tiny_config(is_decoder=head == "causal_lm")
    model = tf_class(head)(config)
    written = model.save_pretrained(tmp_path)
    assert sorted(p.name for p in written) == ["config.json", "tf_model.h5"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == [HEADS[head].tf_class] and saved["model_type"] == "rembert"
    again = tf_class(head).from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.named_variables(), again.named_variables(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name


def test_sharded_safetensors_save_and_load(tmp_path):
    model = rembert_tf.TFRemBertForMaskedLM(tiny_config())
    written = model.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="4KB")
    names = sorted(p.name for p in written)
    assert "model.safetensors.index.json" in names and len([n for n in names if n.startswith("model-0")]) > 2
    again = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.named_variables(), again.named_variables(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name


def test_bfloat16_save_and_load(tmp_path):
    model = rembert_tf.TFRemBertModel(tiny_config(), dtype="bfloat16")
    model.save_pretrained(tmp_path)  # tf_model.h5 has no bfloat16: written as float32, exactly
    again = rembert_tf.TFRemBertModel.from_pretrained(tmp_path, dtype="bfloat16")
    for (name, a), (_, b) in zip(model.named_variables(), again.named_variables(), strict=True):
        assert b.dtype == "bfloat16" and np.array_equal(a.numpy(), b.numpy()), name
    out = again(np.array([[5, 6, 7]]))
    assert out.last_hidden_state.dtype == tf.bfloat16


def test_initialisation_follows_the_spec():
    config = tiny_config(vocab_size=400, initializer_range=0.05)
    model = rembert_tf.TFRemBertForMaskedLM(config)
    emb = model.get_input_embeddings().weight.numpy()
    assert np.all(emb[config.pad_token_id] == 0)
    assert 0.045 < emb[1:].std() < 0.055
    ln = model.rembert.encoder.layer[0].output_.LayerNorm
    assert np.all(ln.weight.numpy() == 1) and np.all(ln.bias.numpy() == 0)
    assert np.all(model.get_output_embeddings().bias.numpy() == 0)


def test_resize_token_embeddings_grows_input_and_decoder():
    model = rembert_tf.TFRemBertForMaskedLM(tiny_config())
    old_in = model.get_input_embeddings().weight.numpy()
    old_out = model.get_output_embeddings().weight.numpy()
    model.resize_token_embeddings(120)
    assert model.config.vocab_size == 120 and model.rembert.config.vocab_size == 120
    assert np.array_equal(model.get_input_embeddings().weight.numpy()[:99], old_in)
    assert np.array_equal(model.get_output_embeddings().weight.numpy()[:99], old_out)
    assert model(np.array([[119, 3]])).logits.shape == (1, 2, 120)
    assert {k: tuple(v.shape) for k, v in model.named_variables()} == {
        e.pt_key: e.tf_shape for e in model.weight_spec()
    }
    assert len(model.trainable_variables) == len(model.weight_spec())


def test_return_dict_false_gives_the_tuple_of_present_fields():
    config = tiny_config()
    model = rembert_tf.TFRemBertForTokenClassification(config)
    batch = batch_for("token_classification", config)
    as_dict = model(**batch)
    as_tuple = model(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    assert np.array_equal(as_tuple[0].numpy(), as_dict.loss.numpy())
    assert as_dict[0] is as_dict.loss and as_dict.hidden_states is None


def test_inputs_as_a_dict_numpy_or_tensors_give_the_same_outputs():
    config = tiny_config()
    model = rembert_tf.TFRemBertForMaskedLM(config)
    batch = batch_for("masked_lm", config)
    as_numpy = model(**batch)
    as_dict = model(batch)
    as_tensors = model({k: tf.constant(v, tf.int32) for k, v in batch.items()})
    as_lists = model(**{k: v.tolist() for k, v in batch.items()})
    assert isinstance(as_dict, MaskedLMOutput)
    for other in (as_dict, as_tensors, as_lists):
        assert max_abs_difference(to_numpy(dict(other)), to_numpy(dict(as_numpy))) == 0
    with pytest.raises(InputError, match="takes no input named 'label'"):
        model({"input_ids": batch["input_ids"], "label": batch["labels"]})
    with pytest.raises(InputError, match="labels is given both"):
        model({"input_ids": batch["input_ids"], "labels": batch["labels"]}, labels=batch["labels"])


def test_padding_positions_are_zero_unless_unpad_is_off():
    config = tiny_config()
    model = rembert_tf.TFRemBertModel(config)
    batch = batch_for("base", config)
    real = batch["attention_mask"].astype(bool)
    skipped = model(**batch, output_hidden_states=True, output_attentions=True)
    computed = model(**batch, output_hidden_states=True, output_attentions=True, unpad=False)
    for a, b in zip(skipped.hidden_states, computed.hidden_states, strict=True):
        assert np.all(a.numpy()[~real] == 0) and np.abs(a.numpy()[real] - b.numpy()[real]).max() < 1e-6
    assert np.all(np.swapaxes(skipped.attentions[0].numpy(), 1, 2)[~real] == 0)
    assert np.abs(skipped.pooler_output.numpy() - computed.pooler_output.numpy()).max() < 1e-6


def test_dropout_acts_in_training_only():
    config = tiny_config(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    model = rembert_tf.TFRemBertForSequenceClassification(config)
    batch = batch_for("sequence_classification", config)
    inference = [model(**batch).logits.numpy() for _ in range(2)]
    training = [model(**batch, training=True).logits.numpy() for _ in range(2)]
    assert np.array_equal(*inference) and not np.array_equal(*training)


def test_every_weight_gets_a_gradient():
    config = tiny_config(is_decoder=True, add_cross_attention=True)
    model = rembert_tf.TFRemBertForCausalLM(config)
    batch = batch_for("causal_lm", config)
    batch["encoder_hidden_states"] = np.ones((3, 4, config.hidden_size), np.float32)
    with tf.GradientTape() as tape:
        loss = model(**batch, training=True).loss
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)


@pytest.mark.parametrize(
    "inputs, words",
    [
        (dict(input_ids=[[1, 99]]), "input_ids must be in [0, 99) (vocab_size=99), got] [99]"),
        (dict(input_ids=[[-4, 2]]), "input_ids must be in [0, 99) (vocab_size=99), got] [-4]"),
        (dict(input_ids=[[1, 2]], token_type_ids=[[0, 5]]), "token_type_ids must be in [0, 2)"),
        (dict(input_ids=[[1, 2]], attention_mask=[[1, 1, 1]]), "attention_mask has shape] [1 3] [but input_ids needs"),
        (dict(input_ids=[[1] * 41]), "longer than max_position_embeddings=40"),
    ],
)
def test_bad_values_inside_tf_function_raise_with_the_same_words(inputs, words):
    """With unknown sizes the checks are graph assertions, run before the ids are looked up."""
    model = rembert_tf.TFRemBertModel(tiny_config())
    spec = tf.TensorSpec([None, None], tf.int32)
    serve = tf.function(
        lambda input_ids, attention_mask, token_type_ids: (
            model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        ),
        input_signature=[spec, spec, spec],
    )
    ids = np.array(inputs["input_ids"], np.int32)
    args = [ids, inputs.get("attention_mask", np.ones_like(ids)), inputs.get("token_type_ids", np.zeros_like(ids))]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        serve(*[tf.constant(a, tf.int32) for a in args])
    assert words in str(info.value)


def test_bad_labels_inside_tf_function_raise_with_the_same_words():
    """Eager mode is tests/equivalence/test_errors.py."""
    model = rembert_tf.TFRemBertForTokenClassification(tiny_config())
    ids = np.array([[1, 2, 3]])
    compiled = tf.function(lambda ids, labels: model(ids, labels=labels).loss)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be in \[0, 2\) or -100"):
        compiled(tf.constant(ids), tf.constant([[0, 7, -100]]))


def test_hugging_face_layout_h5_written_by_the_spec_loads(tmp_path):
    config = tiny_config()
    write_random_checkpoint(tmp_path, config, "question_answering", fmt=TF_H5, noise=0.02)
    model, info = rembert_tf.TFRemBertForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    out = model(**batch_for("question_answering", config))
    assert np.isfinite(out.loss.numpy()) and out.start_logits.shape == (3, 9)


@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("head", ["sequence_classification", "masked_lm", "question_answering"])
def test_gradient_checkpointing_gives_the_same_gradients(head, mode):
    config = config_for(head, classifier_dropout_prob=0.0)
    model = tf_class(head)(config)
    batch = batch_for(head, config)

    def gradients():
        with tf.GradientTape() as tape:
            loss = model(**batch, training=True).loss
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]

    run = gradients if mode == "eager" else tf.function(gradients)
    plain = run()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    run = gradients if mode == "eager" else tf.function(gradients)
    for a, b in zip(plain, run(), strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-6, rtol=0)


def test_gradient_checkpointing_refuses_dropout():
    model = rembert_tf.TFRemBertModel(tiny_config(hidden_dropout_prob=0.1))
    with pytest.raises(ValueError, match="needs hidden_dropout_prob=0"):
        model.gradient_checkpointing_enable()
