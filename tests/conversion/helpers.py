"""Checkpoints for the conversion tests: tiny random model directories and synthetic Google TF checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import SAFETENSORS, open_checkpoint
from rembert_spec.testing import random_tensor, write_random_checkpoint
from rembert_spec.weights import weight_spec
from tests.conftest import tiny_config

TOKENIZER_CONTENT = {
    "sentencepiece.model": b"\x0a\x07fake-sp",
    "tokenizer.json": b'{"fake": true}\n',
    "tokenizer_config.json": b'{"model_max_length": 40}\n',
    "special_tokens_map.json": b'{"pad_token": "<pad>"}\n',
}


def make_model(
    directory: Path,
    config: RemBertConfig | None = None,
    head: str = "masked_lm",
    fmt: str = SAFETENSORS,
    seed: int = 0,
    tokenizer: bool = False,
    **kwargs,
) -> Path:
    """A model directory with random weights (noise on LayerNorms too, so every tensor is distinct)."""
    config = config or tiny_config()
    write_random_checkpoint(directory, config, head=head, seed=seed, fmt=fmt, **kwargs)
    if tokenizer:
        for name, content in TOKENIZER_CONTENT.items():
            (Path(directory) / name).write_bytes(content)
    return Path(directory)


def raw_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint under its file key, copied out of the file."""
    config = RemBertConfig.from_pretrained(path if Path(path).is_dir() else Path(path).parent)
    with open_checkpoint(path, config) as checkpoint:
        return {key: np.array(checkpoint.reader.read(key)) for key in checkpoint.reader.keys()}


def spec_tensors(path: Path, head: str) -> dict[str, np.ndarray]:
    """A checkpoint's weights by canonical name, in PyTorch's layout, read through the spec."""
    config = RemBertConfig.from_pretrained(path)
    with open_checkpoint(path, config) as checkpoint:
        return {e.name: np.array(checkpoint.read(e)) for e in weight_spec(config, head) if e.name in checkpoint}


# Pretraining-only and optimizer variables a Google checkpoint carries besides the model's weights.
GOOGLE_EXTRAS = {
    "cls/predictions/output_bias": (99,),
    "cls/predictions/transform/dense/kernel": (12, 10),
    "cls/predictions/transform/LayerNorm/gamma": (10,),
    "bert/embeddings/word_embeddings/adam_m": (99, 8),
    "bert/embeddings/word_embeddings/adam_v": (99, 8),
    "bert/encoder/layer_0/attention/self/query/kernel/adam_m": (12, 12),
}


def write_google_checkpoint(directory: Path, config: RemBertConfig, seed: int = 0, extras: bool = True) -> Path:
    """An original-Google-shaped TF checkpoint written by TensorFlow itself (tf.compat.v1 variables + Saver).

    Variables carry the spec's `google_name`, kernels in TF's [in, out] layout; returns the prefix.
    """
    import tensorflow as tf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    values = {}
    for entry in weight_spec(config, "base"):
        array = random_tensor(entry, config, seed)
        values[entry.google_name] = array.T if entry.tf_transpose else array
    if extras:
        rng = np.random.default_rng(seed)
        for name, shape in GOOGLE_EXTRAS.items():
            values[name] = rng.normal(0, 0.02, shape).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
        if extras:
            variables.append(tf.compat.v1.Variable(np.int64(1000), name="global_step"))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            prefix = saver.save(session, str(directory / "model.ckpt"), write_meta_graph=False)
    return Path(prefix)
