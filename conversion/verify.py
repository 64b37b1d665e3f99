"""`--verify`: load SRC and DST in PyTorch and in TensorFlow, run one sample batch, compare the outputs.

The reference is the PyTorch model built from SRC; the PyTorch model from DST and the TensorFlow models from SRC
and DST are compared with it, at attended positions (what a model puts at padding positions carries no meaning
and differs between implementations). Rows are per head: `base` is the backbone's last hidden state (what
RemBertModel returns, read from the head model's `hidden_states[-1]`), then the head's own outputs (`logits`, ...)
when every head weight was written (a head weight initialised at load differs from run to run, so it is not
compared). torch and tensorflow are imported here only, and only when verification is asked for.

>>> batch = sample_batch(RemBertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2))
>>> batch["input_ids"].shape, batch["attention_mask"][1].tolist()
((2, 12), [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rembert_spec import RemBertConfig
from rembert_spec.weights import get_head

from .plan import ConversionError

# Max abs difference allowed, relative to max(1, largest reference value), by what the conversion did to values.
TOLERANCES = {"lossless": 1e-4, "float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-4}
_HEAD_FIELDS = {
    "none": ("pooler_output",),
    "lm": ("logits",),
    "labels": ("logits",),
    "choice": ("logits",),
    "span": ("start_logits", "end_logits"),
}
_FRAMEWORKS = {"pt": ("rembert_pt", "torch", "pt_class"), "tf": ("rembert_tf", "tensorflow", "tf_class")}


@dataclass(frozen=True)
class Difference:
    """Max abs difference of one output of one model against the reference."""

    head: str
    output: str
    model: str  # "pt(dst)", "tf(src)", "tf(dst)"
    value: float


@dataclass
class VerifyResult:
    """Every compared output of every model, and the verdict: `ok` when all are within `limit`."""

    rows: list[Difference]
    tolerance: float
    scale: float  # largest reference value, at least 1; the limit is tolerance * scale
    batch_shape: tuple[int, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def max_abs_difference(self) -> float:
        return max((row.value for row in self.rows), default=0.0)

    @property
    def limit(self) -> float:
        return self.tolerance * self.scale

    @property
    def ok(self) -> bool:
        return bool(self.rows) and self.max_abs_difference <= self.limit

    def per_head(self) -> dict[str, float]:
        """{head: max abs difference over its outputs and models}, `base` first."""
        out: dict[str, float] = {}
        for row in self.rows:
            out[row.head] = max(out.get(row.head, 0.0), row.value)
        return out

    def lines(self) -> list[str]:
        models = list(dict.fromkeys(row.model for row in self.rows))
        shape = "x".join(map(str, self.batch_shape))
        header = f"verify: {', '.join(models)} against pt(src), {shape} batch, attended positions"
        lines = [header]
        keys = list(dict.fromkeys((row.head, row.output) for row in self.rows))
        width = max((len(head) + len(output) for head, output in keys), default=0) + 1
        for head, output in keys:
            cells = [f"{r.model} {r.value:<8.2g}" for r in self.rows if (r.head, r.output) == (head, output)]
            lines.append(f"  {head + ' ' + output:<{width}}  " + "  ".join(cells).rstrip())
        verdict = "OK" if self.ok else "ABOVE TOLERANCE"
        lines.append(f"  max abs difference {self.max_abs_difference:.3g} (limit {self.limit:.3g}): {verdict}")
        lines += [f"  note: {note}" for note in self.notes]
        return lines


def sample_batch(config: RemBertConfig, kind: str = "base", batch: int = 2, length: int = 12) -> dict[str, np.ndarray]:
    """A fixed batch: random ids (seed 0), the second row padded from the middle, two segments."""
    length = min(length, config.max_position_embeddings)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, (batch, length), dtype=np.int64)
    mask = np.ones_like(ids)
    types = np.zeros_like(ids)
    half = max(1, length * 2 // 3)
    if batch > 1:
        mask[1, half:] = 0
        ids[1, half:] = config.pad_token_id or 0
    if config.type_vocab_size > 1:
        types[:, half // 2 :] = 1
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if get_head(kind).outputs == "choice":
        inputs = {k: np.stack([v, v[:, ::-1].copy()], axis=1) for k, v in inputs.items()}
    return inputs


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for a block: TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL once
    the process is running. Python exceptions are unaffected (they are raised, not printed)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_framework(framework: str):
    """The backend package (rembert_pt / rembert_tf), or the ImportError saying why it is unavailable."""
    package, dependency, _ = _FRAMEWORKS[framework]
    try:
        if framework == "tf" and dependency not in sys.modules:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            with _native_stderr_silenced():
                importlib.import_module(dependency)
        return importlib.import_module(package)
    except ImportError as e:
        return e


def _to_numpy(value, convert: Callable) -> np.ndarray | tuple[np.ndarray, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(convert(v) for v in value)
    return convert(value)


def _run_pt(model, batch: dict[str, np.ndarray]) -> dict:
    import torch

    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True)
    return {k: _to_numpy(v, lambda t: t.float().numpy()) for k, v in out.items()}


def _run_tf(model, batch: dict[str, np.ndarray]) -> dict:
    import tensorflow as tf

    out = model(**{k: tf.constant(v, tf.int32) for k, v in batch.items()}, output_hidden_states=True, training=False)
    return {k: _to_numpy(v, lambda t: np.asarray(t, np.float32)) for k, v in out.items()}


def _outputs(
    framework: str, module, kind: str, path: Path, config: RemBertConfig | None, batch, complete: bool
) -> dict[tuple[str, str], np.ndarray]:
    """The compared outputs of one model, by (head, output); the model is freed before returning."""
    cls = getattr(module, getattr(get_head(kind), _FRAMEWORKS[framework][2]))
    model = cls.from_pretrained(path, **({"config": config} if config is not None else {}))
    try:
        out = (_run_pt if framework == "pt" else _run_tf)(model, batch)
    finally:
        del model
        gc.collect()
    rows = {("base", "last_hidden_state"): out["hidden_states"][-1]}
    if complete:
        for name in _HEAD_FIELDS.get(get_head(kind).outputs, ()):
            if name in out:
                rows[(kind, name)] = out[name]
    return rows


def _attended(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-token outputs at attended positions only (padding positions carry no meaning); others unchanged."""
    for candidate in (mask, mask.reshape(-1, mask.shape[-1])):
        if array.shape[: candidate.ndim] == candidate.shape:
            return array[candidate.astype(bool)]
    return array


def _max_abs_difference(actual: np.ndarray, expected: np.ndarray, mask: np.ndarray) -> float:
    """max |actual - expected| over attended positions; inf for a shape mismatch or a NaN, so it cannot pass."""
    if actual.shape != expected.shape:
        return float("inf")
    actual, expected = _attended(actual, mask), _attended(expected, mask)
    if not expected.size:
        return 0.0
    value = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
    return value if np.isfinite(value) else float("inf")


def verify(
    src: Path,
    dst: Path,
    config: RemBertConfig,
    kind: str,
    head_complete: bool,
    tolerance: float,
    log: Callable[[str], None] = lambda line: None,
) -> VerifyResult:
    """Compare the models built from `src` (read with `config`) and `dst` (its own config.json)."""
    modules = {fw: _import_framework(fw) for fw in _FRAMEWORKS}
    missing = [fw for fw, module in modules.items() if isinstance(module, Exception)]
    notes = [f"{_FRAMEWORKS[fw][0]} unavailable ({modules[fw]}); not checked" for fw in missing]
    if "pt" in missing:
        raise ConversionError(f"--verify needs PyTorch and rembert_pt for the reference model: {modules['pt']}")
    batch = sample_batch(config, kind)
    candidates = [("pt", "dst", dst, None), ("tf", "src", src, config), ("tf", "dst", dst, None)]
    quiet = logging.getLogger("rembert")
    level, quiet.level = quiet.level, logging.ERROR  # fresh head weights are expected, not news
    try:
        log("verify: loading pt(src)")
        reference = _outputs("pt", modules["pt"], kind, src, config, batch, head_complete)
        rows = []
        for framework, which, path, cfg in candidates:
            if framework in missing:
                continue
            log(f"verify: loading {framework}({which})")
            outputs = _outputs(framework, modules[framework], kind, path, cfg, batch, head_complete)
            for (head, name), expected in reference.items():
                value = _max_abs_difference(outputs[(head, name)], expected, batch["attention_mask"])
                rows.append(Difference(head, name, f"{framework}({which})", value))
    finally:
        quiet.level = level
    attended = [_attended(v, batch["attention_mask"]) for v in reference.values()]
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in attended if v.size])
    return VerifyResult(rows, tolerance, scale, tuple(batch["input_ids"].shape), notes)
