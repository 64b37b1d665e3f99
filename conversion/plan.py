"""Deciding what a conversion writes, before a byte is written: the head, its tensors, the dtype, and what is left.

Without a head asked for, the head is the one that wrote the source (`detect_head`) and all of its weights must be
there. With a head asked for (`--head`), the backbone must be there; head weights (and the pooler) the source
lacks are not written (the model initialises them at load), and source weights the head does not use are dropped.
Tensors whose names the spec does not know (optimizer slots, `global_step`, Google's pretraining-only `cls/...`)
are skipped. Every list names tensors as the source file names them.

>>> choose_dtype({np.dtype("float32")}, "tf_h5", None)
(dtype('float32'), None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import SpecCheckpoint
from rembert_spec.fit import Fit, check_fit, layer_ranges, name_list, sentence
from rembert_spec.formats import get_format, writable_format
from rembert_spec.weights import WeightEntry, detect_head, get_head, weight_spec

DTYPES = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
}
# The formats the converter writes, by the --to name: what that framework's save_pretrained writes.
TARGETS = {to: writable_format(framework).name for to, framework in (("pt", "torch"), ("tf", "tf"))}


def target_dtypes(fmt: str) -> tuple[str, ...]:
    """The --dtype choices a target format can hold, in DTYPES order."""
    return tuple(name for name in DTYPES if name in get_format(fmt).dtypes)


def dtype_refusal(to: str, dtype: str | None) -> str | None:
    """Why --to TO cannot take --dtype DTYPE, or None when it can."""
    if dtype is None or dtype not in DTYPES or dtype in target_dtypes(TARGETS[to]):
        return None
    others = " or ".join(t for t, fmt in TARGETS.items() if dtype in target_dtypes(fmt))
    file_name = get_format(TARGETS[to]).file_names[0]
    usable = " or ".join(sorted(target_dtypes(TARGETS[to])))
    return f"--dtype {dtype} needs --to {others}: {file_name} cannot hold {dtype} (use {usable})"


class ConversionError(ValueError):
    """The conversion cannot go ahead as asked; the message says why and names the tensor or file."""


@dataclass
class ConversionPlan:
    """What will be written and what will not, in the spec's order."""

    head: str
    head_detected: bool
    entries: list[WeightEntry]
    dtype: np.dtype
    source_dtypes: set[np.dtype]
    skipped: list[str] = field(default_factory=list)  # not RemBERT weights (optimizer slots, cls/...)
    dropped: list[str] = field(default_factory=list)  # RemBERT weights the head does not use
    initialised_at_load: list[str] = field(default_factory=list)  # head weights the source lacks (--head)
    notes: list[str] = field(default_factory=list)

    @property
    def lossless(self) -> bool:
        """True when no value changes: every source dtype is exactly representable in the output dtype."""
        widening = {DTYPES["float16"], DTYPES["bfloat16"], DTYPES["float32"]}
        return all(d == self.dtype or (self.dtype == DTYPES["float32"] and d in widening) for d in self.source_dtypes)

    @property
    def nbytes(self) -> int:
        """Bytes of weights the plan writes."""
        return sum(math.prod(entry.shape) for entry in self.entries) * self.dtype.itemsize

    @property
    def head_complete(self) -> bool:
        """Every weight of the head is written (so a model loaded from the output has no fresh weights)."""
        return not self.initialised_at_load


def source_name(checkpoint: SpecCheckpoint, entry: WeightEntry) -> str:
    """How the source's format names a weight (its key when present, else what the format would call it)."""
    if entry.name in checkpoint:
        return checkpoint.file_key(entry.name)
    return get_format(checkpoint.format).key(entry) or entry.pt_key


def _required(config: RemBertConfig, head: str, explicit: bool) -> set[str]:
    """Names that must be in the source: all of the head's, or (head asked for) the backbone without pooler."""
    if not explicit:
        return {entry.name for entry in weight_spec(config, head)}
    return {entry.name for entry in weight_spec(config, head, add_pooling_layer=False) if entry.in_backbone}


def _check_fit(checkpoint: SpecCheckpoint, fit: Fit, required: set[str], head: str) -> None:
    """Refuse a source that lacks required tensors, holds encoder layers the config has not (they would be
    dropped) or holds tensors of other shapes; when most of it does not fit, the message says why first."""
    cause = fit.cause()
    headline = (
        sentence(f"{checkpoint.path} does not fit the config: {cause}") + " " if cause else f"{checkpoint.path}: "
    )
    missing = [source_name(checkpoint, entry) for entry in fit.missing if entry.name in required]
    if missing:
        raise ConversionError(f"{headline}missing {len(missing)} tensor(s) of head {head!r}: {name_list(missing)}")
    if fit.extra_layers:
        raise ConversionError(
            f"{headline}converting would drop encoder layer(s) {layer_ranges(fit.extra_layers)}; give --config "
            "the checkpoint's num_hidden_layers"
        )
    wrong = [
        f"{source_name(checkpoint, entry)} is {found}, the config needs {entry.shape}"
        for entry, found in fit.mismatched
    ]
    wrong += [
        f"{source_name(checkpoint, entry)} holds {checkpoint.dtype(entry)}, not floating point"
        for entry in fit.entries
        if entry.name in checkpoint
        and checkpoint.dtype(entry).kind != "f"
        and checkpoint.dtype(entry) != DTYPES["bfloat16"]
    ]
    if wrong:
        why = "" if cause else f"{fit.sizes_sentence()}: " if fit.sizes else ""
        raise ConversionError(f"{headline}{why}tensor(s) do not fit the config: {name_list(wrong)}")


def choose_dtype(source_dtypes: set[np.dtype], fmt: str, asked: str | None) -> tuple[np.dtype, str | None]:
    """The output dtype and, when it differs from what was there without being asked, why."""
    if asked is not None:
        if asked not in target_dtypes(fmt):
            raise ConversionError(f"{fmt} cannot hold {asked}; use {' or '.join(target_dtypes(fmt))}")
        return DTYPES[asked], None
    names = {dtype.name for dtype in source_dtypes}
    if len(names) == 1 and (only := names.pop()) in target_dtypes(fmt):
        return DTYPES[only], None
    found = ", ".join(sorted(d.name for d in source_dtypes)) or "nothing"
    return DTYPES["float32"], f"source holds {found}; writing float32 (pass --dtype to choose)"


def make_plan(
    checkpoint: SpecCheckpoint,
    config: RemBertConfig,
    fmt: str,
    head: str | None = None,
    dtype: str | None = None,
) -> ConversionPlan:
    """Check the source against the spec and decide what to write; raises ConversionError naming the problem."""
    explicit = head is not None
    kind = get_head(head).kind if explicit else detect_head(checkpoint, config)
    spec = weight_spec(config, kind)
    _check_fit(checkpoint, check_fit(checkpoint, spec), _required(config, kind, explicit), kind)
    entries = [entry for entry in spec if entry.name in checkpoint]
    source_dtypes = {checkpoint.dtype(entry) for entry in entries}
    out_dtype, note = choose_dtype(source_dtypes, fmt, dtype)
    used = {entry.name for entry in entries}
    plan = ConversionPlan(
        head=kind,
        head_detected=not explicit,
        entries=entries,
        dtype=out_dtype,
        source_dtypes=source_dtypes,
        skipped=list(checkpoint.unknown_keys),
        dropped=[checkpoint.file_key(name) for name in checkpoint.names() if name not in used],
        initialised_at_load=[entry.pt_key for entry in spec if entry.name not in checkpoint],
    )
    if note:
        plan.notes.append(note)
    return plan


def describe_head(kind: str) -> str:
    """'masked_lm (RemBertForMaskedLM / TFRemBertForMaskedLM)'."""
    head = get_head(kind)
    return f"{kind} ({head.pt_class} / {head.tf_class})"


__all__ = [
    "DTYPES",
    "TARGETS",
    "ConversionError",
    "ConversionPlan",
    "choose_dtype",
    "dtype_refusal",
    "make_plan",
    "source_name",
    "target_dtypes",
]
