"""A decoder's length limit counts its cached positions: new tokens that would run past max_position_embeddings
after a cache are refused at the entry, in both frameworks with the same words; up to the limit they run."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

import rembert_pt
import rembert_tf
from rembert_spec.inputs import InputError
from tests.conftest import tiny_config

CONFIG = tiny_config(is_decoder=True, max_position_embeddings=12)
WORDS = "sequence of 3 tokens after 10 cached positions is longer than max_position_embeddings=12"


def _run_pt(past_length: int, new: int):
    model = rembert_pt.RemBertForCausalLM(CONFIG).eval()
    ids = torch.arange(1, past_length + new + 1)[None]
    with torch.no_grad():
        past = model(ids[:, :past_length], use_cache=True).past_key_values
        return model(ids[:, past_length:], past_key_values=past, use_cache=True).logits


def _run_tf(past_length: int, new: int):
    model = rembert_tf.TFRemBertForCausalLM(CONFIG)
    ids = tf.range(1, past_length + new + 1)[None]
    past = model(ids[:, :past_length], use_cache=True).past_key_values
    return model(ids[:, past_length:], past_key_values=past, use_cache=True).logits


@pytest.mark.parametrize("run", [_run_pt, _run_tf], ids=["pt", "tf"])
def test_cached_positions_count_toward_the_limit(run):
    assert tuple(run(10, 2).shape) == (1, 2, CONFIG.vocab_size)  # exactly up to the limit
    with pytest.raises(InputError) as refused:
        run(10, 3)
    assert str(refused.value) == WORDS
    assert np.isfinite(np.asarray(run(11, 1))).all()
