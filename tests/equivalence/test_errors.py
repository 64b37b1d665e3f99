"""One table of bad input, run through PyTorch and TensorFlow: both refuse it at the entry with the same words.

Each case names the model head, the arguments (numpy; each framework converts them) and the words the error must
contain. The messages come from rembert_spec.inputs, so they are the same in both frameworks by construction;
these tests hold them to it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rembert_pt
from rembert_spec.inputs import InputError
from rembert_spec.weights import HEADS
from tests.conftest import tiny_config
from tests.tf.common import tf_class

IDS = np.array([[5, 6, 7]])
F32 = np.float32
IDS_RANGE = "input_ids must be in [0, 99) (vocab_size=99), got"

CASES = {
    "neither input": ("base", dict(), "pass input_ids or inputs_embeds"),
    "both inputs": ("base", dict(input_ids=IDS, inputs_embeds=np.zeros((1, 3, 8), F32)), "not both"),
    "id too large": (
        "base",
        dict(input_ids=np.array([[1, 99]])),
        f"{IDS_RANGE} 99",
    ),
    "negative id": (
        "base",
        dict(input_ids=np.array([[1, -1]])),
        f"{IDS_RANGE} -1",
    ),
    "token type": (
        "base",
        dict(input_ids=IDS, token_type_ids=np.array([[0, 2, 0]])),
        "token_type_ids must be in [0, 2)",
    ),
    "position": ("base", dict(input_ids=IDS, position_ids=np.array([[0, 1, 40]])), "position_ids must be in [0, 40)"),
    "position shape": (
        "base",
        dict(input_ids=np.ones((2, 3), np.int64), position_ids=np.array([[0, 1, 2, 3]])),
        "position_ids has shape (1, 4) but input_ids needs (2, 3)",
    ),
    "too long": ("base", dict(input_ids=np.ones((1, 41), np.int64)), "longer than max_position_embeddings=40"),
    "mask shape": ("base", dict(input_ids=IDS, attention_mask=np.ones((1, 4))), "attention_mask has shape (1, 4)"),
    "types shape": ("base", dict(input_ids=IDS, token_type_ids=np.zeros((2, 3), np.int64)), "token_type_ids has shape"),
    "float ids": ("base", dict(input_ids=IDS.astype(F32)), "input_ids must hold integer ids"),
    "int16 ids": ("base", dict(input_ids=IDS.astype(np.int16)), "input_ids must be int32 or int64, got int16"),
    "uint8 ids": ("base", dict(input_ids=IDS.astype(np.uint8)), "input_ids must be int32 or int64, got uint8"),
    "int8 token types": (
        "base",
        dict(input_ids=IDS, token_type_ids=np.zeros((1, 3), np.int8)),
        "token_type_ids must be int32 or int64, got int8",
    ),
    "empty batch": ("base", dict(input_ids=np.zeros((0, 3), np.int64)), "input_ids is empty"),
    "empty sequence": ("base", dict(input_ids=np.zeros((2, 0), np.int64)), "input_ids is empty"),
    "rank": ("base", dict(input_ids=np.array([1, 2])), "input_ids must be [batch, length]"),
    "embeds width": ("base", dict(inputs_embeds=np.zeros((1, 3, 5), F32)), "inputs_embeds has shape (1, 3, 5)"),
    "no cross-attention": (
        "base",
        dict(input_ids=IDS, encoder_hidden_states=np.zeros((1, 2, 12), F32)),
        "no cross-attention",
    ),
    "mlm label range": (
        "masked_lm",
        dict(input_ids=IDS, labels=np.array([[-100, 99, 3]])),
        "labels must be in [0, 99)",
    ),
    "mlm label shape": ("masked_lm", dict(input_ids=IDS, labels=np.array([[1, 2]])), "labels has shape (1, 2)"),
    "token label range": (
        "token_classification",
        dict(input_ids=IDS, labels=np.array([[0, 2, -100]])),
        "labels must be in [0, 2) or -100",
    ),
    "class label range": (
        "sequence_classification",
        dict(input_ids=IDS, labels=np.array([5])),
        "labels must be in [0, 2)",
    ),
    "choice label": (
        "multiple_choice",
        dict(input_ids=np.ones((1, 3, 4), np.int64), labels=np.array([3])),
        "labels must be in [0, 3)",
    ),
    "choice rank": ("multiple_choice", dict(input_ids=IDS), "input_ids must be [batch, num_choices, length]"),
}


def pt_call(head: str, config, kwargs):
    model = getattr(rembert_pt, HEADS[head].pt_class)(config)
    return model(**{k: torch.from_numpy(v) for k, v in kwargs.items()})


def tf_call(head: str, config, kwargs):
    return tf_class(head)(config)(**kwargs)


@pytest.mark.parametrize("framework", ["pt", "tf"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_with_the_same_words(case, framework):
    head, kwargs, words = CASES[case]
    config = tiny_config(is_decoder=head == "causal_lm")
    call = pt_call if framework == "pt" else tf_call
    with pytest.raises(InputError) as info:
        call(head, config, kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("case", list(CASES))
def test_both_frameworks_say_exactly_the_same(case):
    head, kwargs, _ = CASES[case]
    config = tiny_config(is_decoder=head == "causal_lm")
    messages = []
    for call in (pt_call, tf_call):
        with pytest.raises(InputError) as info:
            call(head, config, kwargs)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
