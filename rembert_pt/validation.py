"""PyTorch's answers to the framework-neutral input rules of rembert_spec.inputs (`TensorFacts`).

Sizes are always known in PyTorch, so every check raises `InputError` at once; only the range of id values
needs the tensor itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rembert_spec import inputs as rules


def tensor_kind(t: torch.Tensor) -> str:
    """A tensor's dtype as a numpy-style kind: b, i, f or c."""
    if t.dtype == torch.bool:
        return "b"
    return "f" if t.is_floating_point() else ("c" if t.is_complex() else "i")


class TorchFacts(rules.TensorFacts):
    """Sizes from `tensor.shape`; id ranges from one min/max reduction."""

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
        # Reads the values on the host (`int(...)`): the one check that needs them, kept here so that a
        # compiled or exported model can replace it alone.
        values = ids[ids != rules.IGNORE_INDEX] if allow_ignore else ids
        if values.numel():
            low, high = torch.aminmax(values)
            rules.check_range(name, int(low), int(high), limit, limit_name, allow_ignore)


FACTS = TorchFacts()


def check_labels(name: str, labels: torch.Tensor, shape: Sequence[int], limit: int, limit_name: str) -> None:
    """Class labels: the expected shape, integers in [0, limit) or -100."""
    rules.check_labels(FACTS, name, labels, tuple(shape), limit, limit_name)
