"""What `from_pretrained` and `save_pretrained` do the same way in every framework, written once.

A backend's `from_pretrained` is: `resolve_load` (which config, which constructor arguments), build the model
its own way, `read_checkpoint` (each tensor the checkpoint has goes to the backend's `assign`), then initialise
`fresh_entries`. Its `save_pretrained` is `save_model_directory` with a function that fetches one tensor.
Frameworks are named "torch" and "tf".

>>> model_class_name("masked_lm", "tf")
'TFRemBertForMaskedLM'
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import hub
from .checkpoint import LoadReport, SpecCheckpoint, load_weights, open_checkpoint, write_weights
from .config import CONFIG_NAME, RemBertConfig, as_rembert_config, check_field_names
from .formats import get_format, load_order
from .tensor_reader import Access
from .weights import WeightEntry, get_head, weight_spec

FRAMEWORKS = ("torch", "tf")
logger = logging.getLogger("rembert")

# Arguments Hugging Face's from_pretrained takes that change nothing here, accepted so that code written for it
# runs: every checkpoint format is read whatever its origin (from_tf, from_pt), loading never holds a second copy
# of the weights (low_cpu_mem_usage), RemBERT has no code on the Hub (trust_remote_code), and the attention kernel
# is chosen per call with the same numbers (attn_implementation: "eager" or "sdpa").
ACCEPTED_NO_OPS = frozenset({"from_tf", "from_pt", "low_cpu_mem_usage", "trust_remote_code", "attn_implementation"})


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
    main_input_name: ClassVar[str] = "input_ids"
    supports_gradient_checkpointing: ClassVar[bool] = True
    config: RemBertConfig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every model class takes, as its config, ours or another library's RemBERT config (a
        `transformers.RemBertConfig`): the constructor's body then always sees a RemBertConfig."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            init(self, as_rembert_config(config, cls.__name__), *args, **kwargs)

        cls.__init__ = __init__

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

    def _warn_about_decoder_setting(self) -> None:
        """As Hugging Face warns: a causal LM that is not a decoder attends both ways, a masked LM that is one
        attends to the left only."""
        warn_about_decoder_setting(self.head, self.config, type(self).__name__)

    def gradient_checkpointing_disable(self) -> None:
        self._backbone().encoder.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self._backbone().encoder.gradient_checkpointing


# -- from_pretrained --------------------------------------------------------------------------------------


def warn_about_decoder_setting(head: str, config: RemBertConfig, class_name: str) -> None:
    """Hugging Face's warnings for a causal LM built without is_decoder=True and a masked LM built with it."""
    if head == "causal_lm" and not config.is_decoder:
        logger.warning(
            "If you want to use `%s` as a standalone, add `is_decoder=True.` (without it the model attends to every "
            "position, later ones included)",
            class_name,
        )
    elif head == "masked_lm" and config.is_decoder:
        logger.warning(
            "If you want to use `%s` make sure `config.is_decoder=False` for bi-directional self-attention.",
            class_name,
        )


@dataclass(frozen=True)
class LoadRequest:
    """What `from_pretrained` builds and reads: the checkpoint path (a local directory or file; a file in the Hub
    cache for a repo id), the config, the constructor's arguments and the formats to look for, preferred first."""

    path: Path
    config: RemBertConfig
    model_kwargs: dict[str, Any]
    prefer: tuple[str, ...] = ()


def _preferred_formats(framework: str, use_safetensors: bool | None) -> tuple[str, ...]:
    """The load order, narrowed as Hugging Face's `use_safetensors` does: True only safetensors, False never."""
    order = load_order(framework)
    if use_safetensors is None:
        return order
    return ("safetensors",) if use_safetensors else tuple(name for name in order if name != "safetensors")


def resolve_load(
    pretrained_model_name_or_path: str | os.PathLike,
    config: Any,
    kwargs: dict[str, Any],
    *,
    head: str,
    framework: str,
    add_pooling_layer: bool | None = None,
    use_safetensors: bool | None = None,
    own_arguments: tuple[str, ...] = (),
) -> LoadRequest:
    """Check the arguments of `from_pretrained` and settle the config and the checkpoint.

    `kwargs` holds what the backend's signature did not name: the Hub's options (`revision`, `cache_dir`,
    `local_files_only`, `token`, `subfolder`, ...; see `rembert_spec.hub`), Hugging Face's arguments that change
    nothing here (`ACCEPTED_NO_OPS`), and config fields to override. Anything else is a TypeError naming it.
    The config is `config` if given (ours, or converted from another library's RemBERT config), else the
    config.json beside the checkpoint. `add_pooling_layer` is a constructor argument of the base model only.
    """
    class_name = model_class_name(head, framework)
    options, rest = hub.pop_hub_options(kwargs)
    overrides = {k: v for k, v in rest.items() if k not in ACCEPTED_NO_OPS}
    check_field_names(overrides, f"{class_name}.from_pretrained()", also=own_arguments)
    if rest.get("attn_implementation") not in (None, "eager", "sdpa"):
        raise ValueError(f"attn_implementation must be 'eager' or 'sdpa', got {rest['attn_implementation']!r}")
    model_kwargs: dict[str, Any] = {}
    if add_pooling_layer is not None:
        if head != "base":
            raise ValueError(
                f"add_pooling_layer applies to {model_class_name('base', framework)} only; "
                f"{class_name} decides its own pooler"
            )
        model_kwargs["add_pooling_layer"] = add_pooling_layer
    prefer = _preferred_formats(framework, use_safetensors)
    if config is not None:
        config = as_rembert_config(config, f"{class_name}.from_pretrained(config=...)")
    local = hub.local_path(pretrained_model_name_or_path, options)
    if local is not None:
        path = local
        config_path = (local if local.is_dir() else local.parent) / CONFIG_NAME
        if use_safetensors and local.is_dir():
            names = get_format("safetensors").file_names
            if not any((local / name).is_file() for name in names):
                raise OSError(f"{local}: use_safetensors=True but there is no {' or '.join(names)}")
    else:
        repo_id = str(pretrained_model_name_or_path)
        config_path = hub.hub_file(repo_id, CONFIG_NAME, options) if config is None else None
        file_names = [name for fmt in prefer for name in get_format(fmt).file_names]
        path = hub.hub_weights(repo_id, file_names, options)
    if config is None:
        config = RemBertConfig.from_json_file(config_path, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    return LoadRequest(path, config, model_kwargs, prefer)


def checkpoint_dtype(request: LoadRequest, head: str) -> np.dtype:
    """The dtype the checkpoint stores its weights in (what `dtype="auto"` loads): that of its first spec entry."""
    entries = weight_spec(request.config, head)
    with open_checkpoint(request.path, request.config, prefer=request.prefer) as checkpoint:
        for entry in entries:
            if entry.name in checkpoint:
                return np.dtype(checkpoint.dtype(entry))
    return np.dtype(np.float32)


def open_for_loading(request: LoadRequest, *, framework: str, mmap: bool = True, alignment: int = 1) -> SpecCheckpoint:
    """The checkpoint of `request`, opened as `read_checkpoint` reads it (see there for `mmap` and `alignment`):
    for a backend that starts reading (`SpecCheckpoint.read_ahead`) before it builds the model. Close it (`with`)."""
    access = Access(writable=True, mapped=mmap, alignment=alignment)
    prefer = request.prefer or load_order(framework)
    return open_checkpoint(request.path, request.config, prefer=prefer, access=access)


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
    checkpoint: SpecCheckpoint | None = None,
) -> LoadReport:
    """Hand every tensor of the checkpoint that `entries` name to `assign(entry, array)`, in the framework's
    layout, and log what was missing, unused or mis-shaped. With `strict`, any of those is an error (raised
    before a tensor is read).

    Arrays the backend may keep as its own memory: with `mmap`, writable copy-on-write views of the file where
    their data starts at a multiple of `alignment` bytes (what the framework uses in place), the others read once
    into memory of their own; without `mmap`, all read into memory of their own. Tensors the backend copies
    anyway (transposed, or cast to `dtype`, the dtype it stores) come as views of the file's map, so the copy is
    the only pass. `report.mapped_files` lists the files whose pages the arrays may keep using.

    `checkpoint`: one the caller opened already (`open_for_loading`, with the same `mmap` and `alignment`) and
    closes itself."""
    if checkpoint is None:
        with open_for_loading(request, framework=framework, mmap=mmap, alignment=alignment) as opened:
            return read_checkpoint(
                request,
                entries,
                assign,
                framework=framework,
                model_name=model_name,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
                strict=strict,
                dtype=dtype,
                checkpoint=opened,
            )
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
    fmt: str | None,
    entries: list[WeightEntry],
    fetch: Callable[[WeightEntry], np.ndarray],
    dtype: np.dtype,
    max_shard_size: int | str,
    write: Callable[[Path, list[WeightEntry], Callable[[WeightEntry], np.ndarray]], list[Path]] | None = None,
) -> list[Path]:
    """Write a model directory in Hugging Face's layout: the weights as `fmt` (`fetch(entry)` returns one tensor
    in PyTorch's layout), or through `write(directory, entries, fetch)` for a format only the backend can write,
    then config.json naming the class that wrote it. Returns the files written."""
    directory = Path(save_directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory}: exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    if write is not None:
        written = write(directory, entries, fetch)
    else:
        written = write_weights(directory, fmt, entries, fetch, head=head, dtype=dtype, max_shard_size=max_shard_size)
    config = config.replace(extra={**config.extra, "architectures": [model_class_name(head, framework)]})
    return [config.save_pretrained(directory), *written]


def push_saved_directory(
    directory: str | os.PathLike,
    written: list[Path],
    repo_id: str | None,
    *,
    commit_message: str | None,
    private: bool | None,
    token: str | bool | None,
    create_pr: bool,
) -> None:
    """`save_pretrained(push_to_hub=True)`: upload the files just written to `repo_id` (default: the directory's
    name, as Hugging Face does)."""
    directory = Path(directory)
    hub.push_to_hub(
        directory,
        written,
        repo_id or directory.resolve().name,
        commit_message=commit_message,
        private=private,
        token=token,
        create_pr=create_pr,
    )
