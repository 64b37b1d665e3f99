"""PyTorch's answers to the framework-neutral input rules of rembert_spec.inputs (`TensorFacts`).

Sizes are always known in PyTorch, so every check raises `InputError` at once; only the range of id values
needs the tensor itself. On CPU, eagerly, it is read back to the host and refused with the offending value. Where
reading a value back would stop a graph being captured or wait on a device (torch.compile, torch.export and the
ONNX exporter, torch.jit.trace, accelerators), the range becomes an assertion op instead: no graph break, no
device sync, the same words without the value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rembert_spec import inputs as rules

from . import internals


def tensor_kind(t: torch.Tensor) -> str:
    """A tensor's dtype as a numpy-style kind: b, i, f or c."""
    if t.dtype == torch.bool:
        return "b"
    return "f" if t.is_floating_point() else ("c" if t.is_complex() else "i")


def capturing() -> bool:
    """True while torch.compile, torch.export (the ONNX exporter's first step) or torch.jit.trace records the model:
    a value read back to the host would break the graph (compile), fail (export) or become a constant (trace)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def reads_host(t: torch.Tensor) -> bool:
    """Whether a check may read `t`'s values back to the host: on CPU, eagerly. Elsewhere it would cost a device
    sync or a graph break."""
    return t.device.type == "cpu" and not capturing()


class TorchFacts(rules.TensorFacts):
    """Sizes from `tensor.shape`; id ranges from one min/max reduction on the host, or an assertion op."""

    def dims(self, x: torch.Tensor) -> tuple[int, ...]:
        return tuple(x.shape)

    def kind(self, x: torch.Tensor) -> str:
        return tensor_kind(x)

    def dtype_name(self, x: torch.Tensor) -> str:
        return str(x.dtype).removeprefix("torch.")

    def check_tensor(self, name: str, x: object) -> None:
        if not isinstance(x, torch.Tensor):
            kind = f"{type(x).__module__}.{type(x).__qualname__}".removeprefix("builtins.")
            raise rules.InputError(
                f"{name} must be a torch.Tensor, got {kind}: pass torch.tensor(...), or call the tokenizer with "
                "return_tensors='pt'"
            )

    def check_id_range(self, name: str, ids: torch.Tensor, limit: int, limit_name: str, allow_ignore: bool) -> None:
        if not reads_host(ids):
            inside = (ids >= 0) & (ids < limit)
            if allow_ignore:
                inside |= ids == rules.IGNORE_INDEX
            internals.assert_on_device(inside.all(), rules.unread_range_message(name, limit, limit_name, allow_ignore))
            return
        values = ids[ids != rules.IGNORE_INDEX] if allow_ignore else ids
        if values.numel():
            low, high = torch.aminmax(values)
            rules.check_range(name, int(low), int(high), limit, limit_name, allow_ignore)


FACTS = TorchFacts()


def check_labels(name: str, labels: torch.Tensor, shape: Sequence[int], limit: int, limit_name: str) -> None:
    """Class labels: the expected shape, integers in [0, limit) or -100."""
    rules.check_labels(FACTS, name, labels, tuple(shape), limit, limit_name)
