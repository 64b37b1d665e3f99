"""Hugging Face reference models whose activations reach realistic magnitudes, and the activation formulas.

With the tiny configs' initializer_range=0.02 every layer input stays near 0, where formulas that differ elsewhere
agree to a few 1e-6 (gelu and its tanh approximation differ by < 3e-6 there, ~5e-4 on [-4, 4]): an oracle test
at that scale cannot tell them apart. Dense weights of std 0.3 on hidden_size 12 give layer inputs of O(1) and
feed-forward pre-activations up to ~4, which real checkpoints reach; LayerNorm weights and every bias are perturbed
too, so that each parameter counts.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tests.batches import config_for
from tests.oracle import hf_config, hf_pt_class

REALISTIC_STD = 0.3
# Below this, the gelu variants would differ by < 1e-4 at the activations' inputs: the test would prove little.
MIN_ACTIVATION_INPUT = 3.0
ALL_DROPOUT = dict(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3, classifier_dropout_prob=0.3)


def realistic_config(head: str, **overrides):
    return config_for(head, initializer_range=REALISTIC_STD, **overrides)


def realistic_hf_model(head: str, config, seed: int = 0):
    """Their PyTorch model in eval mode, LayerNorm weights and biases moved away from 1 / 0 as well."""
    torch.manual_seed(seed)
    model = hf_pt_class(head)(hf_config(config)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name or name.endswith(".bias"):
                parameter.add_(torch.randn_like(parameter) * 0.2)
    return model


def largest_activation_input(model, batch: dict) -> float:
    """The largest |x| the feed-forward and LM-head activations of a Hugging Face PyTorch model see on `batch`."""
    seen = [0.0]

    def record(module, inputs, output):
        seen.append(float(output.abs().max()))

    hooks = [
        module.register_forward_hook(record)
        for name, module in model.named_modules()
        if name.endswith(("intermediate.dense", "predictions.transform.dense", "predictions.dense"))
    ]
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
    return max(seen)


# -- the formulas, in float64 ------------------------------------------------------------------------------------


def gelu_exact(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) with the Gaussian CDF through erf: Hugging Face's "gelu" (torch's default F.gelu)."""
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """The tanh approximation: Hugging Face's "gelu_new" (torch's F.gelu(approximate="tanh"))."""
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


ACTIVATION_FORMULAS = {"gelu": gelu_exact, "gelu_new": gelu_tanh}
ACTIVATION_POINTS = np.linspace(-6.0, 6.0, 4801)  # every 1/400 over [-6, 6]
