"""ONNX export of any PyTorch RemBERT head: `model.to_onnx(path)`, for ONNX Runtime.

The graph is captured by torch.export (torch.onnx's exporter) with dynamic batch and sequence length (and number
of choices for multiple choice). It takes `input_ids`, `attention_mask` and `token_type_ids` (int64) and returns
the head's outputs by name (`logits`, `start_logits`/`end_logits`, or `last_hidden_state` and `pooler_output`),
as eager PyTorch returns them without labels. The padding skip is kept in the graph: the real tokens of the batch
are gathered (ONNX NonZero / GatherND) and projections and feed-forward run on them only, so ONNX Runtime does the
work of 473 tokens, not 1,024, on the mixed batch of docs/performance.md. Out-of-range ids are refused by ONNX
Runtime's own Gather ("indices element out of data bounds"): ONNX has no assertion op to carry our message.

`int8=True` writes the model with the encoder's linear layers quantized by ONNX Runtime's dynamic quantizer
(rembert_spec.onnx_files.quantize_int8). docs/deployment.md measures both.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from rembert_spec.onnx_files import OPSET, quantize_int8, require_onnx, write_onnx

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class _Serving(nn.Module):
    """The model as ONNX sees it: three int64 inputs in, the head's tensors out (a dict, in field order)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.keyword = {"use_cache": False} if model.head in ("base", "causal_lm") else {}

    def forward(self, input_ids, attention_mask, token_type_ids) -> dict[str, torch.Tensor]:
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
            **self.keyword,
        )
        return {name: value for name, value in outputs.items() if isinstance(value, torch.Tensor)}


def example_inputs(model: nn.Module, batch: int = 2, length: int = 8) -> dict[str, torch.Tensor]:
    """A small batch to trace with: `batch` rows of `length` ids (the second row padded), on the model's device."""
    config = model.config
    length = min(length, config.max_position_embeddings)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, config.vocab_size, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1:, length // 2 :] = 0
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    if model.head == "multiple_choice":
        inputs = {name: x[:, None].expand(batch, 2, length).contiguous() for name, x in inputs.items()}
    return {name: x.to(model.device) for name, x in inputs.items()}


def dynamic_shapes(model: nn.Module) -> dict[str, dict[int, torch.export.Dim]]:
    """Batch and sequence length (and choices) free; lengths up to max_position_embeddings."""
    batch = torch.export.Dim("batch")
    length = torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    if model.head == "multiple_choice":
        axes = {0: batch, 1: torch.export.Dim("choices"), 2: length}
    else:
        axes = {0: batch, 1: length}
    return {name: axes for name in INPUT_NAMES}


def output_names(model: nn.Module, inputs: dict[str, torch.Tensor]) -> list[str]:
    with torch.no_grad():
        return list(_Serving(model)(**inputs))


@contextmanager
def _quiet_exporter():
    """torch.onnx prints its progress and warns about optional packages (torchvision) on every export."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(
    model: nn.Module, path: str | os.PathLike, *, opset: int = OPSET, int8: bool = False, verbose: bool = False
) -> Path:
    """Write `model` (any head) as an ONNX model at `path`; see the module docstring. Returns the path.

    `int8=True` quantizes the encoder's linear layers with ONNX Runtime's quantizer. Above 2 GB the weights go to
    an external data file beside `path` (named after it). The file appears complete or not at all.
    """
    require_onnx("onnx", "onnxscript", *(("onnxruntime",) if int8 else ()))
    if getattr(model, "quantization", None) is not None:
        raise ValueError(
            f"this {type(model).__name__} is quantized ({model.quantization}); export the float model with "
            "to_onnx(path, int8=True) for an int8 ONNX model"
        )
    if not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an integer >= 17 (LayerNormalization), got {opset!r}")
    training = model.training
    model.eval()
    try:
        inputs = example_inputs(model)
        names = output_names(model, inputs)
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                _Serving(model),
                (),
                kwargs=inputs,
                input_names=list(INPUT_NAMES),
                output_names=names,
                dynamic_shapes=dynamic_shapes(model),
                opset_version=opset,
                dynamo=True,
                verbose=verbose,
            )
    finally:
        model.train(training)
    if not int8:
        return write_onnx(path, program.save)
    with tempfile.TemporaryDirectory(prefix=".rembert-onnx-") as scratch:
        float_model = Path(scratch) / "float.onnx"
        program.save(float_model)
        program = None  # the float graph's weights: free them before quantizing
        return quantize_int8(float_model, path, _encoder_weight_names(model))


def _encoder_weight_names(model: nn.Module) -> set[str]:
    """The ONNX initializer names of the weights ONNX Runtime computes in int8: the encoder layers' linear layers but
    the attention output projection (the exported module wraps the model as `model`, so its parameters are named
    `model.<name>`). That projection's input mixes the heads, whose scales differ: under ONNX Runtime's single input
    scale per tensor it alone took the full-size model's error from 1.7% to 2.25% (rembert_pt.quantize gives it a
    two-term input instead, which ONNX Runtime's quantizer cannot)."""
    from .modeling import RemBertSelfOutput
    from .quantize import quantized_linears

    chosen = {
        id(linear.weight) for parent, _, linear in quantized_linears(model) if not isinstance(parent, RemBertSelfOutput)
    }
    return {f"model.{name}" for name, param in model.named_parameters() if id(param) in chosen}
