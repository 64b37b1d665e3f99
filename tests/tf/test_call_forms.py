"""Every form in which Hugging Face's TF models take their inputs gives the same outputs here: keywords, positional
arguments, a list of inputs in call order, and a dict with Python flags inside; each against Hugging Face's TF
model called the same way (where it accepts the form) and against each other."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import rembert_tf
from rembert_spec.inputs import InputError
from tests.conftest import tiny_config
from tests.tf.common import batch_for, max_abs_difference, tf_class, to_numpy
from tests.tf.test_oracle import their_loss, their_model

FIELDS = {"base": ("last_hidden_state", "pooler_output"), "sequence_classification": ("logits",)}
FLAGS = {"output_attentions": True, "output_hidden_states": True}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """For each head: Hugging Face's TF model with perturbed weights, and ours loaded from its tf_model.h5 with
    padding computed (unpad=False), so that every position compares."""
    pairs = {}
    for head in FIELDS:
        config = tiny_config(num_labels=3)
        theirs = their_model(head, config, seed=2)
        directory = tmp_path_factory.mktemp(head)
        theirs.save_pretrained(directory)
        pairs[head] = (theirs, tf_class(head).from_pretrained(directory, unpad=False))
    return pairs


def outputs(record, fields) -> dict:
    return {name: to_numpy(record[name]) for name in fields}


def forms(batch: dict[str, np.ndarray]) -> dict[str, tuple[tuple, dict]]:
    """(args, kwargs) of each call form, with flags asking for attentions and hidden states where the form can
    carry them."""
    ids, mask, types = (tf.constant(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    return {
        "keywords": ((), {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, **FLAGS}),
        "positional": ((ids, mask, types), FLAGS),
        "list": (([ids, mask, types],), {}),
        "tuple of numpy arrays": (((batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]),), {}),
        "dict with flags": (({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, **FLAGS},), {}),
    }


@pytest.mark.parametrize("head", list(FIELDS))
def test_every_call_form_gives_hugging_faces_outputs(models, head):
    theirs, ours = models[head]
    batch = batch_for(head, ours.config)
    results = {}
    for name, (args, kwargs) in forms(batch).items():
        mine, reference = ours(*args, **kwargs), theirs(*args, **kwargs)
        fields = FIELDS[head] + (("hidden_states", "attentions") if "hidden_states" in reference else ())
        assert max_abs_difference(outputs(mine, fields), outputs(reference, fields)) < 1e-5, name
        results[name] = outputs(mine, FIELDS[head])
    assert "hidden_states" in ours(*forms(batch)["dict with flags"][0]), "flags inside the dict are honoured"
    first, *others = results.values()
    for other in others:
        assert max_abs_difference(other, first) == 0.0


def test_labels_inside_the_dict_give_hugging_faces_loss(models):
    theirs, ours = models["sequence_classification"]
    batch = {k: tf.constant(v) for k, v in batch_for("sequence_classification", ours.config).items()}
    expected = their_loss("sequence_classification", theirs(batch)["loss"])
    assert float(ours(batch).loss) == pytest.approx(float(expected), abs=1e-5)
    assert float(ours({**batch, "return_dict": False})[0]) == pytest.approx(float(expected), abs=1e-5)


def test_python_lists_of_numbers_are_input_ids_not_a_list_of_inputs():
    model = rembert_tf.TFRemBertModel(tiny_config())
    as_list = model([[5, 6, 7], [8, 9, 10]]).last_hidden_state
    assert as_list.shape == (2, 3, 12)
    np.testing.assert_array_equal(as_list, model(input_ids=np.array([[5, 6, 7], [8, 9, 10]])).last_hidden_state)


def test_a_bad_call_form_names_the_problem():
    model = rembert_tf.TFRemBertForSequenceClassification(tiny_config())
    ids = tf.constant([[5, 6, 7]])
    with pytest.raises(InputError, match="takes at most 10 inputs in a list"):
        model([ids] * 11)
    with pytest.raises(InputError, match="attention_mask is given both in the list of inputs and by name"):
        model([ids, tf.ones_like(ids)], attention_mask=tf.ones_like(ids))
    with pytest.raises(TypeError, match="with a dict or list of inputs, pass other arguments by name"):
        model([ids], tf.ones_like(ids))
