"""A small classifier fine-tuned in the test run, to measure how often int8 changes a prediction.

The task (which half of the vocabulary a sequence mostly draws from) is learnt to near-perfect accuracy in a few
seconds, so a changed prediction comes from quantization, not from a model that was guessing anyway.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rembert_pt import RemBertForSequenceClassification
from rembert_spec import RemBertConfig

CONFIG = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    input_embedding_size=16,
    output_embedding_size=16,
    intermediate_size=64,
    max_position_embeddings=32,
    num_labels=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    classifier_dropout_prob=0.0,
)


def examples(n: int, seed: int) -> dict[str, np.ndarray]:
    """Padded batches of 6-16 ids; label 1 when more of them are >= 50. Ties are redrawn."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, 16), np.int64)
    mask = np.zeros_like(ids)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        while True:
            length = int(rng.integers(6, 17))
            row = rng.integers(1, 99, length)
            high = int((row >= 50).sum())
            if 2 * high != length:
                break
        ids[i, :length], mask[i, :length], labels[i] = row, 1, int(2 * high > length)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids), "labels": labels}


def fine_tune(directory: Path, steps: int = 150) -> float:
    """Train from random weights, save to `directory`; returns the held-out accuracy of the float model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steps this small only wait for each other across threads on a busy machine
    try:
        return _fine_tune(directory, steps)
    finally:
        torch.set_num_threads(threads)


def _fine_tune(directory: Path, steps: int) -> float:
    torch.manual_seed(0)
    model = RemBertForSequenceClassification(RemBertConfig(**CONFIG)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = {k: torch.from_numpy(v) for k, v in examples(steps * 32, seed=1).items()}
    for step in range(steps):
        batch = {k: v[step * 32 : (step + 1) * 32] for k, v in data.items()}
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval().save_pretrained(directory)
    held_out = held_out_inputs()
    with torch.no_grad():
        predicted = model(**{k: torch.from_numpy(v) for k, v in held_out.items()}).logits.argmax(-1).numpy()
    return float((predicted == examples(len(predicted), seed=2)["labels"]).mean())


def held_out_inputs(n: int = 500) -> dict[str, np.ndarray]:
    data = examples(n, seed=2)
    data.pop("labels")
    return data
