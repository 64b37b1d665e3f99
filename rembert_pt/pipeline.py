"""`pipeline()`: Hugging Face-style task pipelines running a PyTorch RemBERT.

This module only runs the model; what a task does with its inputs and outputs (windows over long contexts, span
search, entity grouping, pooling, batching) is written once, in `rembert_tasks`, and shared with rembert_tf.

>>> from rembert_pt import pipeline
>>> unmasker = pipeline("fill-mask", model="path/to/rembert")  # doctest: +SKIP
>>> unmasker("Paris est la [MASK] de la France.")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rembert_spec.weights import HEADS
from rembert_tasks.base import Pipeline
from rembert_tasks.factory import build_pipeline


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype != torch.float32:
        tensor = tensor.float()  # bfloat16 / float16 scores are read in float32, as Hugging Face does
    return tensor.cpu().numpy()


class _TorchRunner:
    """Runs a model on numpy batches under inference mode, on its device."""

    framework = "pt"

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()  # dropout off (a classifier head has some)

    def __call__(self, inputs: Mapping[str, np.ndarray], output_hidden_states: bool = False) -> dict[str, Any]:
        device = next(self.model.parameters()).device
        tensors = {name: torch.from_numpy(np.ascontiguousarray(array)).to(device) for name, array in inputs.items()}
        with torch.inference_mode():
            outputs = self.model(**tensors, output_hidden_states=output_hidden_states, return_dict=True)
        results: dict[str, Any] = {}
        for name, value in outputs.items():
            if name == "hidden_states":
                results[name] = tuple(_numpy(layer) for layer in value)
            elif isinstance(value, torch.Tensor):
                results[name] = _numpy(value)
        return results


class _TorchBackend:
    framework = "pt"

    def __init__(self, device: Any, torch_dtype: torch.dtype | None):
        self.device = _device(device)
        self.torch_dtype = torch_dtype

    def model_class(self, head: str) -> type:
        import rembert_pt  # the package's exports (this module is imported while the package loads)

        return getattr(rembert_pt, HEADS[head].pt_class)

    def load(self, cls: type, path: str | os.PathLike, **kwargs: Any) -> tuple[Any, dict[str, list]]:
        if self.torch_dtype is not None:
            kwargs.setdefault("torch_dtype", self.torch_dtype)
        model, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
        return model, info

    def runner(self, model: Any) -> _TorchRunner:
        if self.device is not None:
            model.to(self.device)
        return _TorchRunner(model)


def _device(device: Any) -> torch.device | None:
    """Hugging Face's spellings: None (leave the model where it is), -1 (CPU), a GPU index, a name or a device."""
    if device is None:
        return None
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device("cpu") if device < 0 else torch.device("cuda", device)
    if isinstance(device, (str, torch.device)):
        return torch.device(device)
    raise ValueError(f"device must be None, an index, a name like 'cpu' or 'cuda:0', or a torch.device; got {device!r}")


def pipeline(
    task: str,
    model: str | os.PathLike | torch.nn.Module | None = None,
    tokenizer: Any = None,
    *,
    device: int | str | torch.device | None = None,
    torch_dtype: torch.dtype | None = None,
    model_kwargs: dict[str, Any] | None = None,
    batch_size: int = 8,
    progress_bar: bool | None = None,
    **kwargs: Any,
) -> Pipeline:
    """A pipeline for `task` ("fill-mask", "text-classification" / "sentiment-analysis",
    "token-classification" / "ner", "question-answering", "feature-extraction", "sentence-embeddings").

    `model` is a model directory (any checkpoint format; loaded with the task's model class, `model_kwargs`
    passed to from_pretrained) or a loaded RemBERT model; `tokenizer` a tokenizer or its directory (default: the
    model's directory); the model is put in eval mode. Other keyword arguments are the task's call arguments
    (top_k, aggregation_strategy, ...), used as defaults for every call. `batch_size` rows run together, longest
    first; `progress_bar` None shows one for lists of more than 256 inputs.
    """
    return build_pipeline(
        task,
        model,
        tokenizer,
        _TorchBackend(device, torch_dtype),
        model_kwargs=model_kwargs,
        batch_size=batch_size,
        progress_bar=progress_bar,
        **kwargs,
    )
