"""What `from_pretrained` and `save_pretrained` do the same way in every framework, written once.

A backend's `from_pretrained` is: `resolve_load` (which config, which constructor arguments), build the model
its own way, `read_checkpoint` (each tensor the checkpoint has goes to the backend's `assign`), then initialise
`fresh_entries`. Its `save_pretrained` is `save_model_directory` with a function that fetches one tensor.
Frameworks are named "torch" and "tf".

>>> model_class_name("masked_lm", "tf")
'TFRemBertForMaskedLM'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .checkpoint import LoadReport, load_weights, open_checkpoint, write_weights
from .config import RemBertConfig
from .formats import load_order
from .tensor_reader import Access
from .weights import WeightEntry, get_head, weight_spec

FRAMEWORKS = ("torch", "tf")


def _check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")


def model_class_name(head: str, framework: str) -> str:
    """The class that implements `head` in `framework` (what config.json's `architectures` names)."""
    _check_framework(framework)
    spec = get_head(head)
    return spec.pt_class if framework == "torch" else spec.tf_class


# -- the model classes ------------------------------------------------------------------------------------


class RemBertModelMixin:
    """What a RemBERT model knows about itself in any framework: its head, its backbone, its weight spec entries.
    Mixed into `RemBertPreTrainedModel` and `TFRemBertPreTrainedModel`, which name parameters alike."""

    head: ClassVar[str]
    base_model_prefix: ClassVar[str] = "rembert"
    config_class: ClassVar[type] = RemBertConfig
    config: RemBertConfig

    def _backbone(self) -> Any:
        """The RemBertModel inside a head (the model itself for RemBertModel)."""
        return getattr(self, self.base_model_prefix, self)

    @property
    def _has_pooler(self) -> bool:
        return getattr(self._backbone(), "pooler", None) is not None

    def weight_spec(self) -> list[WeightEntry]:
        """This model's parameters as the spec lists them (names in every format, shapes, init)."""
        return weight_spec(self.config, self.head, add_pooling_layer=self._has_pooler)

    def _check_against_spec(self, found: Mapping[str, tuple[int, ...]], entries: list[WeightEntry], tf: bool) -> None:
        """The model's weights (state-dict key -> shape; TensorFlow's layout if `tf`) are the spec's, exactly."""
        expected = {entry.pt_key: entry.tf_shape if tf else entry.shape for entry in entries}
        if dict(found) != expected:
            wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
            raise AssertionError(
                f"{type(self).__name__} weights differ from the weight spec: extra "
                f"{sorted(set(found) - set(expected))}, missing {sorted(set(expected) - set(found))}, "
                f"mis-shaped {wrong}"
            )

    def get_input_embeddings(self) -> Any:
        return self._backbone().embeddings.word_embeddings

    def get_output_embeddings(self) -> Any:
        head = getattr(self, "cls", None)
        return head.predictions.decoder if head is not None else None

    def gradient_checkpointing_disable(self) -> None:
        self._backbone().encoder.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self._backbone().encoder.gradient_checkpointing


# -- from_pretrained --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRequest:
    """What `from_pretrained` builds and reads: the checkpoint path, the config, the constructor's arguments."""

    path: Path
    config: RemBertConfig
    model_kwargs: dict[str, Any]


def resolve_load(
    pretrained_model_path: str | os.PathLike,
    config: RemBertConfig | None,
    config_overrides: dict[str, Any],
    *,
    head: str,
    framework: str,
    add_pooling_layer: bool | None = None,
) -> LoadRequest:
    """Check the arguments of `from_pretrained` and settle the config: `config` if given, else the config.json
    beside the checkpoint (in the directory, or next to a weights file), with `config_overrides` applied.
    `add_pooling_layer` is a constructor argument of the base model only."""
    model_kwargs: dict[str, Any] = {}
    if add_pooling_layer is not None:
        if head != "base":
            raise ValueError(
                f"add_pooling_layer applies to {model_class_name('base', framework)} only; "
                f"{model_class_name(head, framework)} decides its own pooler"
            )
        model_kwargs["add_pooling_layer"] = add_pooling_layer
    path = Path(pretrained_model_path)
    if config is None:
        config = RemBertConfig.from_pretrained(path if path.is_dir() else path.parent, **config_overrides)
    elif config_overrides:
        config = config.replace(**config_overrides)
    return LoadRequest(path, config, model_kwargs)


def read_checkpoint(
    request: LoadRequest,
    entries: list[WeightEntry],
    assign: Callable[[WeightEntry, np.ndarray], None],
    *,
    framework: str,
    model_name: str,
    ignore_mismatched_sizes: bool = False,
    strict: bool = False,
    mmap: bool = True,
    alignment: int = 1,
    dtype: np.dtype | None = None,
) -> LoadReport:
    """Hand every tensor of the checkpoint that `entries` name to `assign(entry, array)`, in the framework's
    layout, and log what was missing, unused or mis-shaped. With `strict`, any of those is an error (raised
    before a tensor is read).

    Arrays the backend may keep as its own memory: with `mmap`, writable copy-on-write views of the file where
    their data starts at a multiple of `alignment` bytes (what the framework uses in place), the others read once
    into memory of their own; without `mmap`, all read into memory of their own. Tensors the backend copies
    anyway (transposed, or cast to `dtype`, the dtype it stores) come as views of the file's map, so the copy is
    the only pass. `report.mapped_files` lists the files whose pages the arrays may keep using."""
    access = Access(writable=True, mapped=mmap, alignment=alignment)
    with open_checkpoint(request.path, request.config, prefer=load_order(framework), access=access) as checkpoint:
        report = load_weights(
            entries, checkpoint, assign, ignore_mismatched_sizes, strict, model_name, framework == "tf", dtype
        )
        report.log(model_name, checkpoint.path)
    return report


def fresh_entries(entries: list[WeightEntry], report: LoadReport) -> list[WeightEntry]:
    """The entries the checkpoint did not fill (missing, or mis-shaped and ignored): the model initialises them."""
    fresh = set(report.missing_keys) | {key for key, _, _ in report.mismatched_keys}
    return [entry for entry in entries if entry.pt_key in fresh]


# -- save_pretrained --------------------------------------------------------------------------------------


def save_model_directory(
    save_directory: str | os.PathLike,
    config: RemBertConfig,
    *,
    head: str,
    framework: str,
    fmt: str,
    entries: list[WeightEntry],
    fetch: Callable[[WeightEntry], np.ndarray],
    dtype: np.dtype,
    max_shard_size: int | str,
) -> list[Path]:
    """Write a model directory in Hugging Face's layout: the weights as `fmt` (`fetch(entry)` returns one tensor
    in PyTorch's layout), then config.json naming the class that wrote it. Returns the files written."""
    directory = Path(save_directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory}: exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    written = write_weights(directory, fmt, entries, fetch, head=head, dtype=dtype, max_shard_size=max_shard_size)
    config = config.replace(extra={**config.extra, "architectures": [model_class_name(head, framework)]})
    return [config.save_pretrained(directory), *written]
