"""How a checkpoint fits the model its config describes, said once for PyTorch, TensorFlow and the converter.

`check_fit` compares a checkpoint with the spec entries a model (or a conversion) expects, from the file's index
alone (names and shapes, no tensor is read): what is missing, what has another shape, which encoder layers are
missing or left over. When most of the checkpoint does not fit (more than a quarter of the expected tensors
missing or mis-shaped, or whole encoder layers missing or unused), `Fit.cause` says why in one short sentence,
naming the config's field and the checkpoint's value: a `config.json` whose `num_hidden_layers` is misspelt
builds a 32-layer model around a 2-layer checkpoint, and that is the first thing the user should read.

>>> name_list([f"w{i}" for i in range(12)])
'w0, w1, w2, w3, w4 and 7 more'
>>> layer_ranges([2, 3, 4, 7])
'2-4, 7'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from .config import RemBertConfig
from .formats import get_format
from .weights import WeightEntry, all_weight_names, layer_of, weight_spec

if TYPE_CHECKING:
    from .checkpoint import SpecCheckpoint

SHOWN = 5  # names a message lists of a long list before "and N more"; reports keep every name
WHOLE = 10  # lists up to this long are shown whole
MOSTLY = 0.25  # more than this share of the expected tensors missing or mis-shaped: the checkpoint does not fit

# Config fields that size tensors; a checkpoint's value for each is read back from the shapes it holds.
SIZE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "input_embedding_size",
    "output_embedding_size",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_labels",
)


def name_list(names: Iterable[str]) -> str:
    """The names, or for a long list the first few and how many more: a message stays one short line."""
    names = list(names)
    if len(names) <= WHOLE:
        return ", ".join(names)
    return f"{', '.join(names[:SHOWN])} and {len(names) - SHOWN} more"


def sentence(text: str) -> str:
    """`text` ended as a sentence (a question keeps its question mark)."""
    return text if text.endswith(("?", ".")) else text + "."


def layer_ranges(layers: Iterable[int]) -> str:
    """Layer numbers as runs: [2, 3, 4, 7] -> '2-4, 7'."""
    runs: list[list[int]] = []
    for layer in sorted(set(layers)):
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


@dataclass
class Fit:
    """What a checkpoint holds against what the model expects, by canonical name; `cause` says why it does not fit."""

    config: RemBertConfig
    entries: list[WeightEntry]  # what the model expects
    missing: list[WeightEntry] = field(default_factory=list)
    mismatched: list[tuple[WeightEntry, tuple[int, ...]]] = field(default_factory=list)  # entry, shape in the file
    missing_layers: list[int] = field(default_factory=list)  # encoder layers of which the checkpoint has nothing
    extra_layers: list[int] = field(default_factory=list)  # encoder layers the checkpoint has beyond the config's
    checkpoint_layers: int = 0  # how many encoder layers the checkpoint holds (any tensor of them)
    sizes: dict[str, tuple[int, list[int]]] = field(default_factory=dict)  # field -> (config's, checkpoint's)
    unknown_keys: list[str] = field(default_factory=list)  # names in the file that are no weight of the spec

    @property
    def mostly_misfit(self) -> bool:
        """Most of the checkpoint does not fit: whole layers missing or unused, or over a quarter of it wrong."""
        wrong = len(self.missing) + len(self.mismatched)
        return bool(self.missing_layers or self.extra_layers or wrong > MOSTLY * len(self.entries))

    def cause(self) -> str | None:
        """One short sentence, why the checkpoint does not fit the config; None when it mostly does."""
        if not self.mostly_misfit:
            return None
        causes = []
        if self.checkpoint_layers == 0:
            causes.append(self._mostly_missing())
        elif self.missing_layers or self.extra_layers:
            count = self.checkpoint_layers
            if self.missing_layers:
                what = _layers_phrase(self.missing_layers, "missing")
            else:
                what = "its " + _layers_phrase(self.extra_layers, "not used")
            causes.append(
                f"the config's num_hidden_layers is {self.config.num_hidden_layers} but the checkpoint has {count} "
                f"encoder layer{'s' if count != 1 else ''} ({what})"
            )
        if self.sizes:
            causes.append(self.sizes_sentence())
        if not causes:
            causes.append(self._mostly_missing())
        return "; ".join(causes) + self._typo_hint()

    def _mostly_missing(self) -> str:
        wrong = len(self.missing) + len(self.mismatched)
        sentence = f"{wrong} of the {len(self.entries)} tensors the model expects are missing or mis-shaped"
        if self.unknown_keys:
            return f"{sentence}, and it holds names such as {self.unknown_keys[0]!r}: is it a RemBERT checkpoint?"
        return sentence

    def sizes_sentence(self) -> str | None:
        """The sizing fields on which the config and the checkpoint's shapes disagree, or None."""
        if not self.sizes:
            return None
        parts = [
            f"the config's {name} is {ours} but the checkpoint's is {' or '.join(map(str, theirs))}"
            for name, (ours, theirs) in self.sizes.items()
        ]
        return "; ".join(parts)

    def _typo_hint(self) -> str:
        wanted = set(self.sizes) | ({"num_hidden_layers"} if self.missing_layers or self.extra_layers else set())
        names = [f.name for f in fields(self.config) if f.name in wanted]
        for key in self.config.extra:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.8)
            if close:
                return f"; the config has {key!r}, which is no config field: a misspelt {close[0]}?"
        return ""


def _layers_phrase(layers: list[int], state: str) -> str:
    return f"layer{'s' if len(layers) > 1 else ''} {layer_ranges(layers)} {'are' if len(layers) > 1 else 'is'} {state}"


def check_fit(checkpoint: SpecCheckpoint, entries: list[WeightEntry]) -> Fit:
    """Compare a checkpoint with the entries a model expects (for the config it was opened with), from names and
    shapes only: nothing is read."""
    config = checkpoint.config
    fit = Fit(config, list(entries), unknown_keys=list(checkpoint.unknown_keys))
    for entry in entries:
        if entry.name not in checkpoint:
            fit.missing.append(entry)
        elif (found := checkpoint.shape(entry)) != entry.shape:
            fit.mismatched.append((entry, found))
    held = {layer for name in checkpoint.names() if (layer := layer_of(name)) is not None}
    fit.extra_layers = sorted(_layers_beyond(checkpoint, config))
    fit.checkpoint_layers = len(held) + len(fit.extra_layers)
    by_layer: dict[int, list[WeightEntry]] = {}
    for entry in entries:
        if (layer := layer_of(entry.name)) is not None:
            by_layer.setdefault(layer, []).append(entry)
    fit.missing_layers = [layer for layer in sorted(by_layer) if layer not in held]
    if fit.mismatched:
        fit.sizes = _size_differences(config, fit.mismatched)
    return fit


def _layers_beyond(checkpoint: SpecCheckpoint, config: RemBertConfig) -> set[int]:
    """Encoder layers the checkpoint holds past the config's last one. Their keys are unknown to the config's spec,
    so they are named again with a spec deep enough to hold them."""
    if not checkpoint.unknown_keys:
        return set()
    per_layer = sum(1 for entry in weight_spec(config, "base") if layer_of(entry.name) == 0) or 1
    deeper = config.replace(num_hidden_layers=config.num_hidden_layers + len(checkpoint.unknown_keys) // per_layer + 1)
    name_of = get_format(checkpoint.format).canonical_names(all_weight_names(deeper))
    layers = set()
    for key in checkpoint.unknown_keys:
        name = name_of(key)
        layer = layer_of(name) if name is not None else None
        if layer is not None and layer >= config.num_hidden_layers:
            layers.add(layer)
    return layers


def _size_differences(
    config: RemBertConfig, mismatched: list[tuple[WeightEntry, tuple[int, ...]]]
) -> dict[str, tuple[int, list[int]]]:
    """Which sizing fields of the config the mis-shaped tensors disagree on, and the checkpoint's values.

    The spec says which field sizes each dimension: a probe config gives every field a distinct value, so a
    dimension of a probe entry's shape names its field."""
    probe_values = {name: 100_003 + 2 * i for i, name in enumerate(SIZE_FIELDS)}
    probe = config.replace(num_attention_heads=1, pad_token_id=None, **probe_values)
    field_of_value = {value: name for name, value in probe_values.items()}
    probe_shapes = {name: entry.shape for name, entry in all_weight_names(probe).items()}
    found_values: dict[str, list[int]] = {}
    for entry, found in mismatched:
        if len(found) != len(entry.shape):
            continue
        for probe_dim, dim in zip(probe_shapes.get(entry.name, ()), found, strict=False):
            name = field_of_value.get(probe_dim)
            if name is not None and dim != getattr(config, name):
                values = found_values.setdefault(name, [])
                if dim not in values:
                    values.append(dim)
    return {name: (getattr(config, name), values) for name, values in found_values.items()}


__all__ = ["MOSTLY", "SHOWN", "WHOLE", "Fit", "check_fit", "layer_ranges", "name_list", "sentence"]
