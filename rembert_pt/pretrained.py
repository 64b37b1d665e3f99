"""What every PyTorch RemBERT model shares: building, initialising, loading and saving through the weight spec."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import torch
from torch import nn

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import SAFETENSORS
from rembert_spec.pretrained import (
    RemBertModelMixin,
    fresh_entries,
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
        if not isinstance(config, RemBertConfig):
            raise TypeError(f"{type(self).__name__} needs a RemBertConfig, got {type(config).__name__}")
        self.config = config
        self._backbone_of_head = _backbone_of_head

    # -- the spec ------------------------------------------------------------------------------------------

    def _parameters_by_key(self) -> dict[str, nn.Parameter]:
        return dict(self.named_parameters())

    def post_init(self) -> None:
        """Called at the end of a model's __init__: check the modules against the spec, then initialise."""
        if self._backbone_of_head:
            return  # a head's backbone: the head checks and initialises everything once
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
        pretrained_model_path: str | os.PathLike,
        *,
        config: RemBertConfig | None = None,
        torch_dtype: torch.dtype | None = None,
        output_loading_info: bool = False,
        ignore_mismatched_sizes: bool = False,
        add_pooling_layer: bool | None = None,
        quantize: str | None = None,
        **config_overrides: Any,
    ):
        """Load a model directory: config.json plus model.safetensors (or shards), pytorch_model.bin or
        tf_model.h5, written for any head. Weights the checkpoint lacks are initialised and reported.

        `config_overrides` change config fields (e.g. num_labels=5, is_decoder=True); `add_pooling_layer`
        (RemBertModel only) builds the backbone with or without its pooler. `quantize="int8"` returns the model
        with the encoder's linear layers in int8, for CPU inference (rembert_pt.quantize, docs/deployment.md).
        """
        from .quantize import check_mode, quantize_model

        check_mode(quantize)
        request = resolve_load(
            pretrained_model_path,
            config,
            config_overrides,
            head=cls.head,
            framework="torch",
            add_pooling_layer=add_pooling_layer,
        )
        dtype = torch_dtype or torch.get_default_dtype()
        # Build without memory or random draws; every parameter is then either read or initialised once.
        with torch.device("meta"):
            model = cls(request.config, **request.model_kwargs)
        model = model.to_empty(device="cpu").to(dtype)
        params = model._parameters_by_key()
        entries = model.weight_spec()

        def assign(entry: WeightEntry, array: np.ndarray) -> None:
            param = params[entry.pt_key]
            tensor = from_numpy(array)
            adoptable = array.flags.writeable and array.flags.c_contiguous and tensor.dtype == param.dtype
            internals.fill(param, tensor, adoptable)

        with torch.no_grad():
            report = read_checkpoint(
                request,
                entries,
                assign,
                framework="torch",
                model_name=cls.__name__,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
            )
        model.init_weights(fresh_entries(entries, report))
        model.eval()
        if quantize is not None:
            quantize_model(model, quantize)
        return (model, report.as_dict()) if output_loading_info else model

    # -- saving --------------------------------------------------------------------------------------------

    def save_pretrained(
        self, save_directory: str | os.PathLike, max_shard_size: int | str = "5GB", **_: Any
    ) -> list[Path]:
        """Write config.json and model.safetensors (sharded above max_shard_size) in Hugging Face's layout."""
        if getattr(self, "quantization", None) is not None:
            raise ValueError(
                f"this {type(self).__name__} is quantized ({self.quantization}) and cannot be saved: save the float "
                "model, and quantize when loading it (from_pretrained(..., quantize=...))"
            )
        params = self._parameters_by_key()
        dtype = next(iter(params.values())).dtype
        return save_model_directory(
            save_directory,
            self.config,
            head=self.head,
            framework="torch",
            fmt=SAFETENSORS,
            entries=self.weight_spec(),
            fetch=lambda entry: to_numpy(params[entry.pt_key]),
            dtype=to_numpy(torch.zeros((), dtype=dtype)).dtype,
            max_shard_size=max_shard_size,
        )

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

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each layer's activations in backward instead of storing them (less memory, more time)."""
        self._backbone().encoder.gradient_checkpointing = True

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self, only_trainable: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)
