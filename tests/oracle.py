"""Hugging Face transformers 4.x as the test oracle (never imported by the library)."""

from __future__ import annotations

import transformers

from rembert_spec import RemBertConfig
from rembert_spec.weights import HEADS


def hf_config(config: RemBertConfig) -> transformers.RemBertConfig:
    return transformers.RemBertConfig(**config.to_dict())


def hf_pt_class(head: str):
    return getattr(transformers, HEADS[head].pt_class)


def hf_tf_class(head: str):
    return getattr(transformers, HEADS[head].tf_class)
