"""What every PyTorch RemBERT model shares: building, initialising, loading and saving through the weight spec."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import torch
from torch import nn

from rembert_spec import RemBertConfig, mapped_files
from rembert_spec.atomic import atomic_write
from rembert_spec.checkpoint import SAFETENSORS
from rembert_spec.formats.safetensors import parse_size
from rembert_spec.formats.torch_bin import PT_BIN_INDEX_NAME, PT_BIN_NAME
from rembert_spec.pretrained import (
    LoadRequest,
    RemBertModelMixin,
    checkpoint_dtype,
    fresh_entries,
    push_saved_directory,
    read_checkpoint,
    resolve_load,
    save_model_directory,
)
from rembert_spec.weights import WeightEntry

from . import internals
from .layers import Embedding, Linear

_NUMPY_DTYPES = {torch.bfloat16: np.dtype(ml_dtypes.bfloat16)}


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy view of a tensor (bfloat16 included, which numpy only knows through ml_dtypes)."""
    tensor = tensor.detach().cpu()
    if tensor.dtype in _NUMPY_DTYPES:
        return tensor.view(torch.int16).numpy().view(_NUMPY_DTYPES[tensor.dtype])
    return tensor.numpy()


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """A tensor over a numpy array without copying; read-only arrays (memory maps) are shared, never written."""
    if array.dtype == np.dtype(ml_dtypes.bfloat16):
        return from_numpy(array.view(np.int16)).view(torch.bfloat16)
    if not array.flags.writeable:
        # torch warns on read-only buffers because it could write them; we only ever read from them.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array)


class RemBertPreTrainedModel(RemBertModelMixin, nn.Module):
    """Base of every RemBERT model: config handling, spec-driven init, from_pretrained / save_pretrained."""

    def __init__(self, config: RemBertConfig, *, _backbone_of_head: bool = False):
        """`_backbone_of_head` is passed by a head to the RemBertModel it builds inside itself: the head then checks
        and initialises every parameter once, its backbone's included."""
        super().__init__()
        self.config = config
        self._backbone_of_head = _backbone_of_head

    # -- the spec ------------------------------------------------------------------------------------------

    def _parameters_by_key(self) -> dict[str, nn.Parameter]:
        return dict(self.named_parameters())

    def post_init(self) -> None:
        """Called at the end of a model's __init__: check the modules against the spec, then initialise."""
        if self._backbone_of_head:
            return  # a head's backbone: the head checks and initialises everything once
        self._warn_about_decoder_setting()
        entries = self.weight_spec()
        params = self._parameters_by_key()
        self._check_against_spec({key: tuple(param.shape) for key, param in params.items()}, entries, tf=False)
        if next(iter(params.values())).device.type != "meta":
            self.init_weights(entries)

    @torch.no_grad()
    def init_weights(self, entries: list[WeightEntry] | None = None) -> None:
        """Draw fresh values as the spec says: normal(0, initializer_range), zero biases, LayerNorm 1/0,
        and the padding row of the word embeddings zero."""
        params = self._parameters_by_key()
        std = self.config.initializer_range
        for entry in self.weight_spec() if entries is None else entries:
            param = params[entry.pt_key]
            if entry.init in ("normal", "embedding"):
                param.normal_(0.0, std)
                if entry.init == "embedding" and self.config.pad_token_id is not None:
                    param[self.config.pad_token_id].zero_()
            elif entry.init == "zeros":
                param.zero_()
            else:
                param.fill_(1.0)

    # -- loading -------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        config: RemBertConfig | None = None,
        dtype: torch.dtype | str | None = None,
        torch_dtype: torch.dtype | str | None = None,
        device_map: str | int | torch.device | dict[str, Any] | None = None,
        device: str | int | torch.device | None = None,
        output_loading_info: bool = False,
        ignore_mismatched_sizes: bool = False,
        add_pooling_layer: bool | None = None,
        use_safetensors: bool | None = None,
        strict: bool = False,
        mmap: bool = True,
        quantize: str | None = None,
        **kwargs: Any,
    ):
        """Load a model directory (config.json plus model.safetensors or shards, pytorch_model.bin or tf_model.h5,
        written for any head) or a Hugging Face Hub repo ("google/rembert"; `revision=`, `cache_dir=`,
        `local_files_only=`, `token=`, `subfolder=`). Weights the checkpoint lacks are initialised and reported.

        `dtype` (or its older name `torch_dtype`): a floating torch.dtype, its name ("bfloat16"), or "auto" for the
        checkpoint's own. `device_map` / `device`: "cpu", "cuda", "cuda:1", an index, a torch.device, or "auto"
        (the first GPU if there is one); the weights are written straight there. Other keyword arguments override
        config fields (num_labels=5, is_decoder=True); an unknown one is a TypeError. `add_pooling_layer`
        (RemBertModel only) builds the backbone with or without its pooler. `strict=True` makes any weight
        the checkpoint lacks, holds unused or holds in another shape an error (raised before anything is read).
        `quantize="int8"` returns the model with the encoder's linear layers in int8, for CPU inference
        (rembert_pt.quantize, docs/deployment.md).

        With `mmap` (the default) the parameters loaded on the CPU are the checkpoint's copy-on-write pages, no copy
        (see `rembert_spec.mapped_files` for what happens if the file is then rewritten in place); `mmap=False`
        reads them once into memory of the model's own.
        """
        from .quantize import check_mode, quantize_model

        check_mode(quantize)
        mapped_files.warn_about_changed_files()
        request = resolve_load(
            pretrained_model_name_or_path,
            config,
            kwargs,
            head=cls.head,
            framework="torch",
            add_pooling_layer=add_pooling_layer,
            use_safetensors=use_safetensors,
            own_arguments=_FROM_PRETRAINED_ARGUMENTS,
        )
        dtype = _load_dtype(dtype, torch_dtype, request, cls.head)
        target = _load_device(device_map, device)
        # Build without memory or random draws, then give every parameter its memory on the target device; each
        # is then either read or initialised once.
        with torch.device("meta"):
            model = cls(request.config, **request.model_kwargs)
        model = model.to(dtype).to_empty(device=target)
        params = model._parameters_by_key()
        entries = model.weight_spec()
        on_cpu = target.type == "cpu"

        adopted = []

        def assign(entry: WeightEntry, array: np.ndarray) -> None:
            param = params[entry.pt_key]
            tensor = from_numpy(array)
            adoptable = on_cpu and array.flags.writeable and array.flags.c_contiguous and tensor.dtype == param.dtype
            if internals.fill(param, tensor, adoptable):
                adopted.append(entry)

        with torch.no_grad():
            report = read_checkpoint(
                request,
                entries,
                assign,
                framework="torch",
                model_name=cls.__name__,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
                strict=strict,
                mmap=mmap,
                dtype=to_numpy(torch.zeros((), dtype=dtype)).dtype,
            )
        if adopted:
            mapped_files.keep(model, cls.__name__, report.mapped_files)
        model.init_weights(fresh_entries(entries, report))
        model.eval()
        if quantize is not None:
            quantize_model(model, quantize)
        return (model, report.as_dict()) if output_loading_info else model

    # -- saving --------------------------------------------------------------------------------------------

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        is_main_process: bool = True,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        safe_serialization: bool = True,
        max_shard_size: int | str = "5GB",
        push_to_hub: bool = False,
        repo_id: str | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        create_pr: bool = False,
    ) -> list[Path]:
        """Write config.json and model.safetensors (sharded above max_shard_size) in Hugging Face's layout, or
        pytorch_model.bin (a plain state dict, `torch.load(weights_only=True)` reads it) with
        `safe_serialization=False`. `state_dict` saves those tensors instead of the model's own (same keys);
        a process that is not the main one (`is_main_process=False`) writes nothing. `push_to_hub=True` then
        uploads the files to `repo_id` (default: the directory's name) with huggingface_hub."""
        if getattr(self, "quantization", None) is not None:
            raise ValueError(
                f"this {type(self).__name__} is quantized ({self.quantization}) and cannot be saved: save the float "
                "model, and quantize when loading it (from_pretrained(..., quantize=...))"
            )
        if not is_main_process:
            return []
        if state_dict is None:
            mapped_files.check_before_save(self)
        tensors = _tensors_to_save(self, state_dict)
        dtype = next(iter(tensors.values())).dtype
        written = save_model_directory(
            save_directory,
            self.config,
            head=self.head,
            framework="torch",
            fmt=SAFETENSORS,
            entries=self.weight_spec(),
            fetch=lambda entry: to_numpy(tensors[entry.pt_key]),
            dtype=to_numpy(torch.zeros((), dtype=dtype)).dtype,
            max_shard_size=max_shard_size,
            write=None if safe_serialization else _pytorch_bin_writer(tensors, max_shard_size),
        )
        if push_to_hub:
            push_saved_directory(
                save_directory,
                written,
                repo_id,
                commit_message=commit_message,
                private=private,
                token=token,
                create_pr=create_pr,
            )
        return written

    # -- deployment ----------------------------------------------------------------------------------------

    def to_onnx(
        self, path: str | os.PathLike, *, opset: int | None = None, int8: bool = False, verbose: bool = False
    ) -> Path:
        """Export as an ONNX model at `path` (dynamic batch and length; inputs input_ids, attention_mask and
        token_type_ids; the head's outputs by name). `int8=True` quantizes the encoder's linear layers with ONNX
        Runtime. Needs `pip install "rembert[onnx]"`; see rembert_pt.export and docs/deployment.md."""
        from .export import OPSET, export_onnx

        return export_onnx(self, path, opset=OPSET if opset is None else opset, int8=int8, verbose=verbose)

    # -- embeddings ----------------------------------------------------------------------------------------

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self._backbone().embeddings.word_embeddings = embeddings

    def set_output_embeddings(self, decoder: nn.Linear) -> None:
        self.cls.predictions.decoder = decoder

    @torch.no_grad()
    def resize_token_embeddings(self, new_num_tokens: int) -> nn.Embedding:
        """Grow or shrink the vocabulary: input embeddings and (not tied) the LM decoder; new rows are drawn
        as at initialisation, kept rows are unchanged. Updates config.vocab_size."""
        if not isinstance(new_num_tokens, int) or new_num_tokens <= 0:
            raise ValueError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        old = self.get_input_embeddings()
        keep = min(old.num_embeddings, new_num_tokens)
        pad = (
            self.config.pad_token_id
            if self.config.pad_token_id is not None and self.config.pad_token_id < keep
            else None
        )
        new = Embedding(
            new_num_tokens, old.embedding_dim, padding_idx=pad, device=old.weight.device, dtype=old.weight.dtype
        )
        new.weight.normal_(0.0, self.config.initializer_range)
        new.weight[:keep] = old.weight[:keep]
        self.set_input_embeddings(new)
        decoder = self.get_output_embeddings()
        if decoder is not None:
            resized = Linear(
                decoder.in_features, new_num_tokens, device=decoder.weight.device, dtype=decoder.weight.dtype
            )
            resized.weight.normal_(0.0, self.config.initializer_range)
            resized.bias.zero_()
            resized.weight[:keep] = decoder.weight[:keep]
            resized.bias[:keep] = decoder.bias[:keep]
            self.set_output_embeddings(resized)
        self.config = self.config.replace(vocab_size=new_num_tokens)
        for module in self.modules():
            if isinstance(module, RemBertPreTrainedModel):
                module.config = self.config
        return new

    # -- training conveniences ------------------------------------------------------------------------------

    def train(self, mode: bool = True):
        """As nn.Module.train; training mode also lets freed activations go back to the OS (rembert_pt.internals)."""
        if mode:
            internals.return_large_frees_to_the_os()
        return super().train(mode)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each layer's activations in backward instead of storing them (less memory, more time).
        `gradient_checkpointing_kwargs` go to torch.utils.checkpoint.checkpoint (default: use_reentrant=False)."""
        kwargs = dict(gradient_checkpointing_kwargs or {})
        unknown = sorted(set(kwargs) - _CHECKPOINT_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"gradient_checkpointing_kwargs: unexpected {', '.join(map(repr, unknown))}; "
                f"torch.utils.checkpoint.checkpoint takes {', '.join(sorted(_CHECKPOINT_ARGUMENTS))}"
            )
        encoder = self._backbone().encoder
        encoder.checkpoint_kwargs = {"use_reentrant": False, **kwargs}
        encoder.gradient_checkpointing = True

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self, only_trainable: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)


# -- from_pretrained's arguments ------------------------------------------------------------------------------

_FROM_PRETRAINED_ARGUMENTS = (
    "config",
    "dtype",
    "torch_dtype",
    "device_map",
    "device",
    "output_loading_info",
    "ignore_mismatched_sizes",
    "add_pooling_layer",
    "use_safetensors",
    "strict",
    "mmap",
    "quantize",
)
# What torch.utils.checkpoint.checkpoint takes besides the function and its inputs.
_CHECKPOINT_ARGUMENTS = frozenset(
    {"use_reentrant", "preserve_rng_state", "determinism_check", "debug", "context_fn", "early_stop"}
)


def _load_dtype(dtype: Any, torch_dtype: Any, request: LoadRequest, head: str) -> torch.dtype:
    """The dtype to load in: a floating torch.dtype, its name, or "auto" (the checkpoint's); default torch's."""
    if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
        raise ValueError(
            f"dtype={dtype!r} and torch_dtype={torch_dtype!r} differ; pass one (torch_dtype is its older name)"
        )
    value = dtype if dtype is not None else torch_dtype
    if value is None:
        return torch.get_default_dtype()
    if value == "auto":
        value = checkpoint_dtype(request, head).name
        if value not in ("float16", "bfloat16", "float32", "float64"):
            return torch.get_default_dtype()
    if isinstance(value, str):
        value = getattr(torch, value.removeprefix("torch."), value)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(
            f"dtype must be a floating torch.dtype (torch.bfloat16), its name ('bfloat16') or 'auto', got {value!r}"
        )
    return value


def _load_device(device_map: Any, device: Any) -> torch.device:
    """The one device the weights go to, checked to exist here. A device map places the whole model: "auto" is the
    first GPU when there is one, else the CPU; {"": device} names it."""
    if device_map is not None and device is not None:
        raise ValueError("pass device_map= or device=, not both")
    where = device_map if device_map is not None else device
    if where is None:
        return torch.device("cpu")
    if isinstance(where, Mapping):
        if set(where) != {""}:
            raise ValueError(
                f"device_map {dict(where)!r}: rembert_pt places the whole model on one device; pass a device "
                '("cuda:0"), {"": device} or "auto"'
            )
        where = where[""]
    if where == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        index = isinstance(where, int) and not isinstance(where, bool)
        target = torch.device("cuda", where) if index else torch.device(where)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {where!r} is not a device (expected e.g. 'cpu', 'cuda', 'cuda:0', 'auto')") from None
    _check_available(target)
    return target


def _check_available(target: torch.device) -> None:
    if target.type == "cpu":
        return
    if target.type == "meta":
        raise ValueError("from_pretrained cannot load weights onto the meta device")
    backend = getattr(torch, target.type, None)
    available = getattr(backend, "is_available", None)
    if target.type == "mps":
        available = torch.backends.mps.is_available
    if available is None or not available():
        raise ValueError(f"device {str(target)!r} is not available on this machine (torch {torch.__version__})")
    count = getattr(backend, "device_count", None)
    if target.index is not None and count is not None and target.index >= count():
        raise ValueError(f"device {str(target)!r} is not available: this machine has {count()} {target.type} device(s)")


# -- save_pretrained's tensors and pytorch_model.bin -------------------------------------------------------


def _tensors_to_save(model: RemBertPreTrainedModel, state_dict: Mapping[str, torch.Tensor] | None) -> dict:
    params = model._parameters_by_key()
    if state_dict is None:
        return params
    given = dict(state_dict)
    missing, extra = sorted(set(params) - set(given)), sorted(set(given) - set(params))
    if missing or extra:
        raise ValueError(f"state_dict does not match {type(model).__name__}: missing {missing}, unexpected {extra}")
    for key, tensor in given.items():
        if tuple(tensor.shape) != tuple(params[key].shape):
            shapes = f"{tuple(tensor.shape)}, the model's {tuple(params[key].shape)}"
            raise ValueError(f"state_dict[{key!r}] has shape {shapes}")
    return given


def _pytorch_bin_writer(
    tensors: Mapping[str, torch.Tensor], max_shard_size: int | str
) -> Callable[[Path, list[WeightEntry], Callable], list[Path]]:
    """Writes pytorch_model.bin as Hugging Face does: a plain state dict (tensors only, so that
    `torch.load(weights_only=True)` reads it), in shards plus pytorch_model.bin.index.json above max_shard_size.
    Each file appears only when complete."""
    limit = parse_size(max_shard_size)

    def write(directory: Path, entries: list[WeightEntry], fetch: Callable) -> list[Path]:
        shards: list[dict[str, torch.Tensor]] = [{}]
        size = 0
        for entry in entries:
            tensor = tensors[entry.pt_key].detach().to("cpu").contiguous()
            nbytes = tensor.numel() * tensor.element_size()
            if shards[-1] and size + nbytes > limit:
                shards.append({})
                size = 0
            shards[-1][entry.pt_key] = tensor
            size += nbytes
        if len(shards) == 1:
            return [_save_state(directory / PT_BIN_NAME, shards[0])]
        stem, suffix = PT_BIN_NAME.rsplit(".", 1)
        names = [f"{stem}-{i + 1:05d}-of-{len(shards):05d}.{suffix}" for i in range(len(shards))]
        written = [_save_state(directory / name, shard) for name, shard in zip(names, shards, strict=True)]
        total = sum(t.numel() * t.element_size() for shard in shards for t in shard.values())
        index = {
            "metadata": {"total_size": total},
            "weight_map": {key: name for name, shard in zip(names, shards, strict=True) for key in shard},
        }
        with atomic_write(directory / PT_BIN_INDEX_NAME) as tmp:
            tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return [*written, directory / PT_BIN_INDEX_NAME]

    return write


def _save_state(path: Path, state: dict[str, torch.Tensor]) -> Path:
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    return path
