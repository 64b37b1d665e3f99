"""TensorFlow inference: TFRemBertModel inside tf.function on 8 sequences of 15-128 tokens padded to 128,
ours vs Hugging Face's TF model (tf-keras), full google/rembert size, random weights.

Prints both times, the ratio (target <= 0.6x) and the max abs difference at real positions (<= 1e-4).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks.bench_pt_inference import LENGTHS, best_time  # noqa: E402
from benchmarks.common import full_size_checkpoint, ratio_line  # noqa: E402


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.zeros((len(LENGTHS), 128), np.int32)
    mask = np.zeros_like(ids)
    for i, n in enumerate(LENGTHS):
        ids[i, :n] = rng.integers(5, 250000, n)
        mask[i, :n] = 1
    return ids, mask


def main() -> None:
    import tensorflow as tf
    import transformers

    import rembert_tf

    directory = full_size_checkpoint("base", fmt="tf_h5")
    ids, mask = batch()
    ours = rembert_tf.TFRemBertModel.from_pretrained(directory)
    theirs = transformers.TFRemBertModel.from_pretrained(directory)
    run_ours = tf.function(lambda i, m: ours(input_ids=i, attention_mask=m).last_hidden_state)
    run_theirs = tf.function(lambda i, m: theirs(input_ids=i, attention_mask=m).last_hidden_state)
    a, b = run_ours(ids, mask).numpy(), run_theirs(ids, mask).numpy()  # trace + warm-up
    t_ours = best_time(lambda: run_ours(ids, mask).numpy())
    t_theirs = best_time(lambda: run_theirs(ids, mask).numpy())
    diff = float(np.abs(a - b)[mask.astype(bool)].max())
    print(ratio_line("TF inference, tf.function (8 x 15-128)", t_ours, t_theirs, "s", "<= 0.60x"))
    print(f"max abs difference at real positions: {diff:.2e} (limit 1e-4)")
    assert diff <= 1e-4, "outputs differ from the reference"


if __name__ == "__main__":
    main()
