"""`pipeline()`: Hugging Face-style task pipelines running a TensorFlow / Keras RemBERT.

This module only runs the model; what a task does with its inputs and outputs (windows over long contexts, span
search, entity grouping, pooling, batching) is written once, in `rembert_tasks`, and shared with rembert_pt, so
both give the same results.

>>> from rembert_tf import pipeline
>>> qa = pipeline("question-answering", model="path/to/rembert-qa")  # doctest: +SKIP
>>> qa(question="Wo wohnt sie?", context="Sie wohnt in Berlin.")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from rembert_spec.weights import HEADS
from rembert_tasks.base import Pipeline
from rembert_tasks.factory import build_pipeline


def _numpy(tensor: tf.Tensor) -> np.ndarray:
    array = tensor.numpy()
    if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
        array = array.astype(np.float32)  # bfloat16 / float16 scores are read in float32
    return array


class _KerasRunner:
    """Runs a model on numpy batches in a tf.function traced once per input layout (sizes left unknown)."""

    framework = "tf"

    def __init__(self, model: Any):
        self.model = model
        self._functions: dict[tuple, Any] = {}

    def _function(self, names: tuple[str, ...], output_hidden_states: bool) -> Any:
        key = (names, output_hidden_states)
        if key not in self._functions:
            model = self.model

            def run(*tensors: tf.Tensor) -> dict[str, Any]:
                inputs = dict(zip(names, tensors, strict=True))
                outputs = model(inputs, output_hidden_states=output_hidden_states, return_dict=True, training=False)
                return {
                    name: value for name, value in outputs.items() if name == "hidden_states" or tf.is_tensor(value)
                }

            signature = [tf.TensorSpec([None, None], tf.int32, name=name) for name in names]
            self._functions[key] = tf.function(run, input_signature=signature)
        return self._functions[key]

    def __call__(self, inputs: Mapping[str, np.ndarray], output_hidden_states: bool = False) -> dict[str, Any]:
        names = tuple(inputs)
        function = self._function(names, output_hidden_states)
        outputs = function(*(tf.constant(np.asarray(inputs[name], dtype=np.int32)) for name in names))
        results: dict[str, Any] = {}
        for name, value in outputs.items():
            results[name] = tuple(_numpy(layer) for layer in value) if name == "hidden_states" else _numpy(value)
        return results


class _KerasBackend:
    framework = "tf"

    def __init__(self, dtype: Any):
        self.dtype = dtype

    def model_class(self, head: str) -> type:
        import rembert_tf  # the package's exports (this module is imported while the package loads)

        return getattr(rembert_tf, HEADS[head].tf_class)

    def load(self, cls: type, path: str | os.PathLike, **kwargs: Any) -> tuple[Any, dict[str, list]]:
        if self.dtype is not None:
            kwargs.setdefault("dtype", self.dtype)
        model, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
        return model, info

    def runner(self, model: Any) -> _KerasRunner:
        return _KerasRunner(model)


def pipeline(
    task: str,
    model: str | os.PathLike | Any = None,
    tokenizer: Any = None,
    *,
    dtype: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    batch_size: int = 8,
    progress_bar: bool | None = None,
    **kwargs: Any,
) -> Pipeline:
    """A pipeline for `task` ("fill-mask", "text-classification" / "sentiment-analysis",
    "token-classification" / "ner", "question-answering", "feature-extraction", "sentence-embeddings").

    `model` is a model directory (any checkpoint format; loaded with the task's model class, `model_kwargs`
    passed to from_pretrained) or a loaded TFRemBert model; `tokenizer` a tokenizer or its directory (default: the
    model's directory); `dtype` a Keras dtype policy for loading. Other keyword arguments are the task's call
    arguments (top_k, aggregation_strategy, ...), used as defaults for every call. `batch_size` rows run together,
    longest first; `progress_bar` None shows one for lists of more than 256 inputs.
    """
    return build_pipeline(
        task,
        model,
        tokenizer,
        _KerasBackend(dtype),
        model_kwargs=model_kwargs,
        batch_size=batch_size,
        progress_bar=progress_bar,
        **kwargs,
    )
