"""Task names and the one `build_pipeline` both frameworks' `pipeline()` call: resolve the task, load or check the
model and the tokenizer, warn when the model's head was not trained, and build the task's pipeline."""

from __future__ import annotations

import os
import warnings
from typing import Any, Protocol

from .base import ModelRunner, Pipeline
from .feature_extraction import FeatureExtractionPipeline, SentenceEmbeddingPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline

TASKS: dict[str, type[Pipeline]] = {
    cls.task: cls
    for cls in (
        FillMaskPipeline,
        TextClassificationPipeline,
        TokenClassificationPipeline,
        QuestionAnsweringPipeline,
        FeatureExtractionPipeline,
        SentenceEmbeddingPipeline,
    )
}
# Other names Hugging Face's pipeline() takes for the same tasks.
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}
# Tasks that read hidden states, which any head's backbone gives.
_ANY_HEAD = ("feature-extraction", "sentence-embeddings")


class Backend(Protocol):
    """What a framework gives build_pipeline: its model classes, loading, and a runner around a model."""

    framework: str

    def model_class(self, head: str) -> type: ...

    def load(self, cls: type, path: str | os.PathLike, **kwargs: Any) -> tuple[Any, dict[str, list]]: ...

    def runner(self, model: Any) -> ModelRunner: ...


def resolve_task(task: Any) -> str:
    """The task's canonical name; an unknown task is an error listing the known ones."""
    if not isinstance(task, str):
        raise ValueError(f"task must be a string, got {type(task).__name__}")
    name = ALIASES.get(task, task)
    if name not in TASKS:
        known = sorted(TASKS) + sorted(ALIASES)
        raise KeyError(f"unknown task {task!r}; known tasks: {', '.join(known)}")
    return name


def load_tokenizer(source: str | os.PathLike) -> Any:
    try:
        from rembert_tokenize import RemBertTokenizerFast
    except ImportError as error:
        raise ImportError(
            f"pipelines need the tokenizers to load one from {source}: pip install 'rembert[tokenize]' ({error})"
        ) from None
    return RemBertTokenizerFast.from_pretrained(source)


def build_pipeline(
    task: str,
    model: Any,
    tokenizer: Any,
    backend: Backend,
    *,
    model_kwargs: dict[str, Any] | None = None,
    **pipeline_kwargs: Any,
) -> Pipeline:
    """A task pipeline over `model` (a directory, or a loaded model of this backend) and `tokenizer` (a directory,
    a loaded tokenizer, or None to load it from the model's directory)."""
    name = resolve_task(task)
    pipeline_class = TASKS[name]
    head = pipeline_class.heads[0]
    if model is None:
        raise ValueError(f"{name}: pass model=, a model directory or a loaded {backend.framework} RemBERT model")
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise ValueError(f"{name}: model_kwargs must be a dict of from_pretrained arguments, got {model_kwargs!r}")
    if isinstance(model, (str, os.PathLike)):
        cls = backend.model_class(head)
        load_kwargs = dict(model_kwargs or {})
        if head == "base":
            load_kwargs.setdefault("add_pooling_layer", False)  # hidden states only: no pooler to initialise
        loaded, info = backend.load(cls, model, **load_kwargs)
        fresh = list(info["missing_keys"]) + [key for key, *_ in info["mismatched_keys"]]
        if fresh:
            warnings.warn(
                f"{name}: {model} holds no trained weights for {cls.__name__}; these were newly initialised: "
                f"{', '.join(fresh)}. Its {name} results mean nothing until the model is fine-tuned for the task.",
                UserWarning,
                stacklevel=3,
            )
        if tokenizer is None:
            tokenizer = model
    else:
        if model_kwargs:
            raise ValueError(f"{name}: model_kwargs apply when loading from a directory, not to a loaded model")
        model_head = getattr(model, "head", None)
        if model_head is None or not hasattr(model, "config"):
            raise TypeError(f"{name}: model must be a model directory or a RemBERT model, got {type(model).__name__}")
        if name not in _ANY_HEAD and model_head not in pipeline_class.heads:
            expected = backend.model_class(head).__name__
            raise ValueError(
                f"{name} needs a {expected}, got a {type(model).__name__}; load the checkpoint with "
                f"{expected}.from_pretrained (or pass its directory as model=)"
            )
        if tokenizer is None:
            raise ValueError(f"{name}: with a loaded model, pass tokenizer= (a tokenizer or its directory)")
        loaded = model
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    return pipeline_class(loaded, tokenizer, backend.runner(loaded), task=name, **pipeline_kwargs)
