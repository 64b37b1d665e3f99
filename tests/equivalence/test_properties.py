"""Property test: random small configs and random inputs give the same outputs in PyTorch and TensorFlow."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rembert_pt
import rembert_tf
from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import SAFETENSORS
from rembert_spec.testing import write_random_checkpoint


@st.composite
def configs_and_batches(draw):
    heads = draw(st.integers(1, 4))
    config = RemBertConfig(
        vocab_size=draw(st.integers(5, 60)),
        hidden_size=heads * draw(st.integers(1, 6)),
        num_hidden_layers=draw(st.integers(1, 3)),
        num_attention_heads=heads,
        input_embedding_size=draw(st.integers(1, 9)),
        output_embedding_size=draw(st.integers(1, 9)),
        intermediate_size=draw(st.integers(1, 17)),
        max_position_embeddings=16,
        type_vocab_size=draw(st.integers(1, 3)),
        hidden_act=draw(st.sampled_from(["gelu", "gelu_new", "relu", "selu"])),
        is_decoder=draw(st.booleans()),
        unpad=draw(st.booleans()),
        pad_token_id=0,
    )
    batch, length = draw(st.integers(1, 3)), draw(st.integers(1, 16))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = rng.integers(0, config.vocab_size, (batch, length))
    mask = (rng.random((batch, length)) < 0.8).astype(np.int64)
    types = rng.integers(0, config.type_vocab_size, (batch, length))
    return config, dict(input_ids=ids, attention_mask=mask, token_type_ids=types)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=configs_and_batches(), seed=st.integers(0, 1000))
def test_random_configs_give_the_same_outputs(case, seed, tmp_path_factory):
    config, batch = case
    directory = tmp_path_factory.mktemp("random")
    write_random_checkpoint(directory, config, "masked_lm", seed=seed, fmt=SAFETENSORS, noise=0.05)
    pt_model = rembert_pt.RemBertForMaskedLM.from_pretrained(directory)
    tf_model = rembert_tf.TFRemBertForMaskedLM.from_pretrained(directory)
    with torch.no_grad():
        ours = pt_model(**{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True)
    theirs = tf_model(**batch, output_hidden_states=True)
    np.testing.assert_allclose(np.asarray(theirs.logits), ours.logits.numpy(), atol=1e-5, rtol=0)
    for a, b in zip(theirs.hidden_states, ours.hidden_states, strict=True):
        np.testing.assert_allclose(np.asarray(a), b.numpy(), atol=1e-5, rtol=0)
