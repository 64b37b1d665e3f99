"""Full google/rembert-sized checks (random weights): `make test-slow`. Too heavy for CI's budget; the same
properties are checked on tiny configs in the regular suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.common import full_size_checkpoint

pytestmark = pytest.mark.slow

LENGTHS = [15, 128, 40, 77]


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.zeros((len(LENGTHS), 128), np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(LENGTHS):
        ids[i, :n] = rng.integers(5, 250000, n)
        mask[i, :n] = 1
    return ids, mask


def test_pytorch_equals_hugging_face_and_tensorflow_at_full_size():
    import transformers

    import rembert_pt
    import rembert_tf

    directory = full_size_checkpoint("base")
    ids, mask = _batch()
    real = mask.astype(bool)
    with torch.inference_mode():
        ours = rembert_pt.RemBertModel.from_pretrained(directory)(torch.from_numpy(ids), torch.from_numpy(mask))
        theirs = transformers.RemBertModel.from_pretrained(directory).eval()(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        )
    ours_pt = ours.last_hidden_state.numpy()
    assert np.abs(ours_pt - theirs.last_hidden_state.numpy())[real].max() < 1e-4
    assert np.abs(ours.pooler_output.numpy() - theirs.pooler_output.numpy()).max() < 1e-4
    ours_tf = rembert_tf.TFRemBertModel.from_pretrained(directory)(input_ids=ids, attention_mask=mask)
    assert np.abs(np.asarray(ours_tf.last_hidden_state) - ours_pt).max() < 1e-4
