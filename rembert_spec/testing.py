"""Random checkpoints written straight from the spec, with no framework: for tests, benchmarks and the demo.

Values follow the spec's initialisation rules, drawn with numpy from a seed, so the same call writes the same
bytes on every machine, and a full-size google/rembert-shaped checkpoint costs only the time to write it.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from .checkpoint import write_weights
from .config import RemBertConfig
from .formats import writable_format
from .weights import WeightEntry, get_head, weight_spec


def random_tensor(entry: WeightEntry, config: RemBertConfig, seed: int, noise: float | None = None) -> np.ndarray:
    """One parameter's random value. The seed mixes with the tensor's name, so values do not depend on order.

    `noise` (default initializer_range) also perturbs LayerNorm weights and biases away from 1 / 0, so that a
    test comparing two implementations exercises every parameter.
    """
    rng = np.random.default_rng([seed, zlib.crc32(entry.name.encode())])
    std = config.initializer_range if noise is None else noise
    if entry.init in ("normal", "embedding"):
        array = rng.normal(0.0, config.initializer_range, entry.shape)
        if entry.init == "embedding" and config.pad_token_id is not None:
            array[config.pad_token_id] = 0.0
    elif entry.init == "ones":
        array = 1.0 + rng.normal(0.0, std, entry.shape) if noise != 0 else np.ones(entry.shape)
    else:
        array = rng.normal(0.0, std, entry.shape) if noise != 0 else np.zeros(entry.shape)
    return array.astype(np.float32)


def write_random_checkpoint(
    directory: str | os.PathLike,
    config: RemBertConfig,
    head: str = "masked_lm",
    seed: int = 0,
    fmt: str = "safetensors",
    dtype: str = "float32",
    noise: float | None = None,
    max_shard_size: int | str = "5GB",
) -> list[Path]:
    """Write config.json and random weights for `head` in a writable format (model.safetensors, tf_model.h5)."""
    directory = Path(directory)
    entries = weight_spec(config, head)
    saved = config.replace()
    pytorch = fmt == writable_format("torch").name
    saved.extra["architectures"] = [get_head(head).pt_class if pytorch else get_head(head).tf_class]
    written = [saved.save_pretrained(directory)]
    written += write_weights(
        directory,
        fmt,
        entries,
        lambda entry: random_tensor(entry, config, seed, noise),
        head=head,
        dtype=dtype,
        max_shard_size=max_shard_size,
    )
    return written
