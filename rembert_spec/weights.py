"""The weight spec: for a config and a head, every parameter, its shape, its layout and how it is initialised.

This is where the project's weight names come from. Backends build their variables from it, load and save
through it, and the converter moves tensors between formats with it and nothing else. Canonical names are
Hugging Face's PyTorch state-dict keys with the `rembert.` prefix of the head models removed, so that a backbone
tensor has one name whichever head wrote it; each checkpoint format spells its own names from the canonical one
(`rembert_spec.formats`):

>>> from rembert_spec import RemBertConfig
>>> config = RemBertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
>>> entry = weight_spec(config, "masked_lm")[7]
>>> entry.name, entry.pt_key, entry.shape, entry.tf_shape
('encoder.layer.0.attention.self.query.weight', 'rembert.encoder.layer.0.attention.self.query.weight', (8, 8), (8, 8))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import RemBertConfig

if TYPE_CHECKING:
    from .checkpoint import SpecCheckpoint

BACKBONE_PT_PREFIX = "rembert."
# Buffers some older checkpoints carry; they hold no learned value, so reading them is not "unexpected".
IGNORED_KEYS = ("embeddings.position_ids",)


@dataclass(frozen=True)
class Head:
    """One model class of the family: what it is called in each framework and what it adds to the backbone."""

    kind: str
    pt_class: str
    tf_class: str
    tf_scope: str  # the model's own name in Hugging Face's tf_model.h5 weight names
    pooler: bool
    outputs: str  # "none", "lm", "labels" (num_labels wide), "choice" (1 wide), "span" (num_labels wide)
    base_prefix: str = BACKBONE_PT_PREFIX


HEADS: dict[str, Head] = {
    head.kind: head
    for head in (
        Head("base", "RemBertModel", "TFRemBertModel", "tf_rem_bert_model", True, "none", ""),
        Head(
            "masked_lm",
            "RemBertForMaskedLM",
            "TFRemBertForMaskedLM",
            "tf_rem_bert_for_masked_lm",
            False,
            "lm",
        ),
        Head(
            "causal_lm",
            "RemBertForCausalLM",
            "TFRemBertForCausalLM",
            "tf_rem_bert_for_causal_lm",
            False,
            "lm",
        ),
        Head(
            "sequence_classification",
            "RemBertForSequenceClassification",
            "TFRemBertForSequenceClassification",
            "tf_rem_bert_for_sequence_classification",
            True,
            "labels",
        ),
        Head(
            "multiple_choice",
            "RemBertForMultipleChoice",
            "TFRemBertForMultipleChoice",
            "tf_rem_bert_for_multiple_choice",
            True,
            "choice",
        ),
        Head(
            "token_classification",
            "RemBertForTokenClassification",
            "TFRemBertForTokenClassification",
            "tf_rem_bert_for_token_classification",
            False,
            "labels",
        ),
        Head(
            "question_answering",
            "RemBertForQuestionAnswering",
            "TFRemBertForQuestionAnswering",
            "tf_rem_bert_for_question_answering",
            False,
            "span",
        ),
    )
}


def get_head(kind: str) -> Head:
    try:
        return HEADS[kind]
    except KeyError:
        raise ValueError(f"unknown head {kind!r}; known heads: {', '.join(HEADS)}") from None


@dataclass(frozen=True)
class WeightEntry:
    """One parameter of one head. `shape` is PyTorch's layout; `tf_transpose` says TensorFlow's layout is its
    transpose (Dense kernels are [in, out] there).

    `init` is how a fresh parameter is drawn, the same in both backends: "normal" (0, initializer_range),
    "embedding" (normal with the padding row zero), "zeros" or "ones". Names in files come from the formats
    (`rembert_spec.formats`); `pt_key`, the model's own state-dict key, is what both backends call the parameter.
    """

    name: str
    shape: tuple[int, ...]
    tf_transpose: bool
    init: str
    in_backbone: bool
    head: str  # the head whose spec holds the entry: it decides the state-dict prefix of backbone weights

    @property
    def pt_key(self) -> str:
        """The PyTorch state-dict key in a model of this head (`rembert.` before backbone weights of head models)."""
        return HEADS[self.head].base_prefix + self.name if self.in_backbone else self.name

    @property
    def tf_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape)) if self.tf_transpose else self.shape

    @property
    def tf_name(self) -> str:
        """Shortcut: the weight's name in Hugging Face's tf_model.h5, without the model's scope (formats.hf_h5)."""
        from .formats import hf_h5

        return hf_h5.weight_name(self)

    @property
    def google_name(self) -> str | None:
        """Shortcut: the variable's name in Google's original TF checkpoint, if it has one (formats.google_tf)."""
        from .formats import google_tf

        return google_tf.variable_name(self)


# -- the parameters ---------------------------------------------------------------------------------------
# Each builder yields (canonical name, shape, kind) in PyTorch's parameter order, where kind is "dense_weight"
# ([out, in], transposed in TensorFlow), "bias", "ones" (a LayerNorm weight), "embedding" or "normal".


def _dense(name: str, n_in: int, n_out: int) -> Iterator[tuple]:
    yield f"{name}.weight", (n_out, n_in), "dense_weight"
    yield f"{name}.bias", (n_out,), "bias"


def _layer_norm(name: str, width: int) -> Iterator[tuple]:
    yield f"{name}.weight", (width,), "ones"
    yield f"{name}.bias", (width,), "bias"


def _attention(name: str, hidden: int) -> Iterator[tuple]:
    for proj in ("query", "key", "value"):
        yield from _dense(f"{name}.self.{proj}", hidden, hidden)
    yield from _dense(f"{name}.output.dense", hidden, hidden)
    yield from _layer_norm(f"{name}.output.LayerNorm", hidden)


def _backbone(config: RemBertConfig, pooler: bool) -> Iterator[tuple]:
    emb, hidden = config.input_embedding_size, config.hidden_size
    yield "embeddings.word_embeddings.weight", (config.vocab_size, emb), "embedding"
    yield "embeddings.position_embeddings.weight", (config.max_position_embeddings, emb), "normal"
    yield "embeddings.token_type_embeddings.weight", (config.type_vocab_size, emb), "normal"
    yield from _layer_norm("embeddings.LayerNorm", emb)
    yield from _dense("encoder.embedding_hidden_mapping_in", emb, hidden)
    for i in range(config.num_hidden_layers):
        layer = f"encoder.layer.{i}"
        yield from _attention(f"{layer}.attention", hidden)
        if config.add_cross_attention:
            yield from _attention(f"{layer}.crossattention", hidden)
        yield from _dense(f"{layer}.intermediate.dense", hidden, config.intermediate_size)
        yield from _dense(f"{layer}.output.dense", config.intermediate_size, hidden)
        yield from _layer_norm(f"{layer}.output.LayerNorm", hidden)
    if pooler:
        yield from _dense("pooler.dense", hidden, hidden)


def _lm_head(config: RemBertConfig) -> Iterator[tuple]:
    out = config.output_embedding_size
    yield from _dense("cls.predictions.dense", config.hidden_size, out)
    # Hugging Face's TF head multiplies by the decoder weight transposed, so both frameworks store [vocab, out].
    yield "cls.predictions.decoder.weight", (config.vocab_size, out), "normal"
    yield "cls.predictions.decoder.bias", (config.vocab_size,), "bias"
    yield from _layer_norm("cls.predictions.LayerNorm", out)


def _head_params(config: RemBertConfig, head: Head) -> Iterator[tuple]:
    if head.outputs == "lm":
        yield from _lm_head(config)
    elif head.outputs == "labels":
        yield from _dense("classifier", config.hidden_size, config.num_labels)
    elif head.outputs == "choice":
        yield from _dense("classifier", config.hidden_size, 1)
    elif head.outputs == "span":
        yield from _dense("qa_outputs", config.hidden_size, config.num_labels)


_INIT = {
    "dense_weight": "normal",
    "bias": "zeros",
    "ones": "ones",
    "embedding": "embedding",
    "normal": "normal",
}


def weight_spec(config: RemBertConfig, head: str = "base", add_pooling_layer: bool | None = None) -> list[WeightEntry]:
    """Every parameter of `head` for `config`, in PyTorch's parameter order.

    `add_pooling_layer` overrides the head's default (only the base model and the pooled heads have one).
    """
    spec = get_head(head)
    pooler = spec.pooler if add_pooling_layer is None else add_pooling_layer
    entries = []
    for params, in_backbone in ((_backbone(config, pooler), True), (_head_params(config, spec), False)):
        for name, shape, kind in params:
            entries.append(
                WeightEntry(
                    name=name,
                    shape=tuple(shape),
                    tf_transpose=kind == "dense_weight",
                    init=_INIT[kind],
                    in_backbone=in_backbone,
                    head=spec.kind,
                )
            )
    return entries


_LAYER = re.compile(r"encoder\.layer\.(\d+)\.")


def layer_of(name: str) -> int | None:
    """The encoder layer a canonical name belongs to (`encoder.layer.3.output.dense.weight` -> 3), else None."""
    match = _LAYER.match(name)
    return int(match.group(1)) if match else None


def canonical_name(key: str) -> str:
    """Map a PyTorch state-dict key of any head to its canonical name (drops the `rembert.` prefix)."""
    return key[len(BACKBONE_PT_PREFIX) :] if key.startswith(BACKBONE_PT_PREFIX) else key


def state_dict_names(known: Mapping[str, WeightEntry]) -> Callable[[str], str | None]:
    """For formats named by PyTorch state-dict keys (safetensors, pytorch_model.bin): a function from a key of any
    head to its canonical name, None for a key that is not a weight of `known`."""

    def name_of(key: str) -> str | None:
        name = canonical_name(key)
        return name if name in known else None

    return name_of


def all_weight_names(config: RemBertConfig) -> dict[str, WeightEntry]:
    """Every parameter any head can have for `config`, by canonical name (the pooler included)."""
    names: dict[str, WeightEntry] = {}
    for kind in HEADS:
        for entry in weight_spec(config, kind, add_pooling_layer=True):
            names.setdefault(entry.name, entry)
    return names


def detect_head(checkpoint: SpecCheckpoint, config: RemBertConfig) -> str:
    """Which head wrote a checkpoint, judged by the tensors it holds."""
    names = set(checkpoint.names())
    if "cls.predictions.decoder.weight" in names:
        return "causal_lm" if config.is_decoder else "masked_lm"
    if "qa_outputs.weight" in names:
        return "question_answering"
    if "classifier.weight" in names:
        if checkpoint.shape(checkpoint.known["classifier.weight"])[0] == 1 and config.num_labels != 1:
            return "multiple_choice"
        return "sequence_classification" if "pooler.dense.weight" in names else "token_classification"
    return "base"
