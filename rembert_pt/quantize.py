"""int8 dynamic quantization of the encoder's linear layers, for CPU inference.

`quantize_model(model, "int8")` (or `from_pretrained(..., quantize="int8")`) replaces every linear layer of the
encoder's transformer layers (attention query, key, value and output; feed-forward in and out) by an `Int8Linear`.
Its weight is stored as two int8 terms with one scale each per output channel: W ~ s (Q_hi + Q_lo / 128), the
second term holding what rounding W to the first term's levels lost. Each call quantizes its input per token
(one scale and zero point per row, 8 bits, asymmetric), multiplies in int8 with exact int32 accumulation, and
rescales. Everything else stays in the model's float dtype: the embeddings and their projection into the
encoder, the pooler, the heads, and the LM head's vocabulary projection (its logits are what a user reads;
quantizing it is not measured safe here).

Why two weight terms: on a full-size model a single int8 weight term moved the last hidden state by 4.9% (relative
L2; 2.0% with two terms); the error of a weight is the same for every token, so it adds up through the 32 layers
where the per-token rounding of inputs averages out. The attention output projection also quantizes its input in
two terms (its input, the heads' concatenated contexts, mixes scales that differ by head): 1.4% in all.

Why the weight terms stay within [-64, 64] (7 bits and a sign), not [-127, 127]: a CPU without VNNI (AVX2 only)
multiplies int8 pairs with an instruction that adds two adjacent products in a saturating 16-bit sum, on inputs
offset to [0, 255]. With weights within 64, two such products stay below 2 * 255 * 64 = 32640 < 2^15, so every x86
kernel is exact; full 8-bit weights come out wrong there. The two terms still hold about 14 bits per weight: the
full-size error is the same as with 8-bit terms (1.44% against 1.43%).

benchmarks/bench_deploy.py measures this and the time; docs/deployment.md has the figures.

Quantized models are for inference: they cannot be trained, saved (`save_pretrained` refuses; quantize when
loading instead) or exported (export the float model with `to_onnx(..., int8=True)`).
"""

from __future__ import annotations

import torch
from torch import nn

from . import internals
from .modeling import RemBertSelfOutput

MODES = ("int8",)
_TINY = torch.finfo(torch.float32).tiny


def check_mode(quantize: str | None) -> None:
    """Refuse an unknown `quantize=` value, naming the argument."""
    if quantize is not None and quantize not in MODES:
        raise ValueError(f"quantize must be None or one of {', '.join(map(repr, MODES))}, got {quantize!r}")


# The largest weight level: see the module docstring (exact on AVX2 kernels). The same as ONNX Runtime's "reduced
# range" for int8 weights, which the ONNX export uses for the same reason.
WEIGHT_LEVELS = 64


def _int8_terms(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x ~ scale * (hi + lo / 128) along `dim`, symmetric, |hi|, |lo| <= 64: (hi, lo, scale, residual scale)."""
    scale = x.abs().amax(dim=dim, keepdim=True).clamp_min(_TINY) / WEIGHT_LEVELS
    hi = torch.round(x / scale).clamp_(-WEIGHT_LEVELS, WEIGHT_LEVELS)
    lo_scale = scale / (2 * WEIGHT_LEVELS)  # what rounding to `scale` lost is within scale / 2
    lo = torch.round((x - hi * scale) / lo_scale).clamp_(-WEIGHT_LEVELS, WEIGHT_LEVELS)
    return hi.to(torch.int8), lo.to(torch.int8), scale.squeeze(dim), lo_scale.squeeze(dim)


class Int8Linear(nn.Module):
    """A frozen `nn.Linear` computed in int8: weights in two int8 terms per output channel, inputs quantized per
    token when called (see the module docstring). `input_terms=2` also quantizes the input in two terms.

    y = x_scale (Q_x - zero) @ (s_hi Q_hi + s_lo Q_lo)^T [+ r_scale Q_r @ (s_hi Q_hi)^T] + b
    """

    def __init__(self, linear: nn.Linear, input_terms: int = 1):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.input_terms = input_terms
        hi, lo, scale, lo_scale = _int8_terms(linear.weight.detach().float(), dim=1)
        # [2 * out, in], used as its transposed view: the int8 kernel is fastest reading the weight that way.
        weight = torch.cat([hi, lo]).contiguous()
        self.register_buffer("weight_int8", weight)
        self.register_buffer("weight_scale", torch.cat([scale, lo_scale]))
        self.register_buffer("weight_sums", weight.sum(dim=1, dtype=torch.int32))  # for the input's zero point
        self.register_buffer("bias", linear.bias.detach().float() if linear.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        low, high = torch.aminmax(rows, dim=1)
        scale = ((high.clamp(min=0.0) - low.clamp(max=0.0)) / 255).clamp_min(_TINY)
        zero = (-128 - torch.round(low.clamp(max=0.0) / scale)).to(torch.int32)  # the level of 0.0
        levels = torch.round(rows / scale[:, None])
        quantized = (levels + zero[:, None]).clamp_(-128, 127)
        product = internals.int8_matmul(quantized.to(torch.int8), self.weight_int8.t())
        product = (product - zero[:, None] * self.weight_sums).float().mul_(self.weight_scale)
        out = self.out_features
        y = (product[:, :out] + product[:, out:]).mul_(scale[:, None])
        if self.input_terms == 2:
            # What rounding the input lost, in [-scale/2, scale/2], as a second int8 term (no zero point).
            residual = rows - (quantized - zero[:, None]) * scale[:, None]
            lo_scale = scale / 254
            lo = torch.round(residual / lo_scale[:, None]).clamp_(-127, 127).to(torch.int8)
            lo_product = internals.int8_matmul(lo, self.weight_int8[:out].t()).float()
            y += lo_product.mul_(self.weight_scale[:out]).mul_(lo_scale[:, None])
        if self.bias is not None:
            y += self.bias
        return y.to(x.dtype).reshape(*x.shape[:-1], out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, input_terms={self.input_terms}"


def quantized_linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, layer) of every float linear layer inside the encoder's transformer layers."""
    found = []
    for layer in model._backbone().encoder.layer:
        for parent in layer.modules():
            for attribute, child in parent.named_children():
                if isinstance(child, nn.Linear):
                    found.append((parent, attribute, child))
    return found


@torch.no_grad()
def quantize_model(model: nn.Module, mode: str = "int8") -> nn.Module:
    """Quantize `model` in place as `mode` says (only "int8": see the module docstring); returns it, in eval mode."""
    check_mode(mode)
    if is_quantized(model):
        raise ValueError(f"{type(model).__name__} is already quantized ({model.quantization})")
    for parent, attribute, linear in quantized_linears(model):
        input_terms = 2 if isinstance(parent, RemBertSelfOutput) else 1
        setattr(parent, attribute, Int8Linear(linear, input_terms).to(linear.weight.device))
    model.quantization = mode
    return model.eval()


def is_quantized(model: nn.Module) -> bool:
    return getattr(model, "quantization", None) is not None


# -- bfloat16 ---------------------------------------------------------------------------------------------


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (/proc/cpuinfo); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_path() -> str:
    """Which bfloat16 matmul path this CPU takes with `torch_dtype=torch.bfloat16`: native (AMX or AVX512-BF16
    instructions, through oneDNN) or emulated (each kernel widens to float32: no faster than float32, often
    slower, with bfloat16's rounding)."""
    flags = cpu_flags()
    if {"amx_bf16", "amx_tile"} <= flags:
        return "native bfloat16 (AMX)"
    if "avx512_bf16" in flags:
        return "native bfloat16 (AVX512-BF16)"
    return "emulated bfloat16 (no AVX512-BF16 or AMX: kernels widen to float32)"
