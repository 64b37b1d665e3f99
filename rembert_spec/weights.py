"""The weight spec: for a config and a head, every parameter, its shape, and its name in every format.

This is the only place in the project that spells weight names. Backends build their variables from it,
load and save through it, and the converter moves tensors between formats with it and nothing else.

Canonical names are Hugging Face's PyTorch state-dict keys with the `rembert.` prefix of the head models
removed, so that a backbone tensor has one name whichever head wrote it:

>>> from rembert_spec import RemBertConfig
>>> config = RemBertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
>>> entry = weight_spec(config, "masked_lm")[7]
>>> entry.name, entry.pt_key, entry.tf_name, entry.google_name
('encoder.layer.0.attention.self.query.weight', 'rembert.encoder.layer.0.attention.self.query.weight', \
'rembert/encoder/layer_._0/attention/self/query/kernel:0', 'bert/encoder/layer_0/attention/self/query/kernel')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .config import RemBertConfig

BACKBONE_PT_PREFIX = "rembert."
BACKBONE_TF_SCOPE = "rembert"
GOOGLE_SCOPE = "bert"
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
    """One parameter. `shape` is PyTorch's layout; `tf_transpose` says the TF layout is its transpose.

    `init` is how a fresh parameter is drawn, the same in both backends: "normal" (0, initializer_range),
    "embedding" (normal with the padding row zero), "zeros" or "ones".
    """

    name: str
    shape: tuple[int, ...]
    pt_key: str
    tf_name: str
    tf_transpose: bool
    google_name: str | None
    init: str
    in_backbone: bool

    @property
    def tf_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape)) if self.tf_transpose else self.shape

    @property
    def h5_layer(self) -> str:
        """The top-level layer of Hugging Face's tf_model.h5 that holds this weight."""
        return self.tf_name.split("/", 1)[0]


# -- the parameters ---------------------------------------------------------------------------------------
# Each builder yields (pt path, tf path, google path or None, shape, kind) in PyTorch's parameter order,
# where kind is "dense" (weight [out, in] + bias), "layer_norm", "embedding" or "keras_embedding".


def _dense(pt: str, tf: str, google: str | None, n_in: int, n_out: int) -> Iterator[tuple]:
    yield f"{pt}.weight", f"{tf}/kernel:0", google and f"{google}/kernel", (n_out, n_in), "dense_weight"
    yield f"{pt}.bias", f"{tf}/bias:0", google and f"{google}/bias", (n_out,), "bias"


def _layer_norm(pt: str, tf: str, google: str | None, width: int) -> Iterator[tuple]:
    yield f"{pt}.weight", f"{tf}/gamma:0", google and f"{google}/gamma", (width,), "ones"
    yield f"{pt}.bias", f"{tf}/beta:0", google and f"{google}/beta", (width,), "bias"


def _attention(pt: str, tf: str, google: str | None, hidden: int) -> Iterator[tuple]:
    for proj in ("query", "key", "value"):
        yield from _dense(f"{pt}.self.{proj}", f"{tf}/self/{proj}", google and f"{google}/self/{proj}", hidden, hidden)
    yield from _dense(f"{pt}.output.dense", f"{tf}/output/dense", google and f"{google}/output/dense", hidden, hidden)
    yield from _layer_norm(
        f"{pt}.output.LayerNorm", f"{tf}/output/LayerNorm", google and f"{google}/output/LayerNorm", hidden
    )


def _backbone(config: RemBertConfig, pooler: bool) -> Iterator[tuple]:
    emb, hidden = config.input_embedding_size, config.hidden_size
    g = GOOGLE_SCOPE
    yield (
        "embeddings.word_embeddings.weight",
        "embeddings/word_embeddings/weight:0",
        f"{g}/embeddings/word_embeddings",
        (config.vocab_size, emb),
        "embedding",
    )
    yield (
        "embeddings.position_embeddings.weight",
        "embeddings/position_embeddings/embeddings:0",
        f"{g}/embeddings/position_embeddings",
        (config.max_position_embeddings, emb),
        "normal",
    )
    yield (
        "embeddings.token_type_embeddings.weight",
        "embeddings/token_type_embeddings/embeddings:0",
        f"{g}/embeddings/token_type_embeddings",
        (config.type_vocab_size, emb),
        "normal",
    )
    yield from _layer_norm("embeddings.LayerNorm", "embeddings/LayerNorm", f"{g}/embeddings/LayerNorm", emb)
    yield from _dense(
        "encoder.embedding_hidden_mapping_in",
        "encoder/embedding_hidden_mapping_in",
        f"{g}/encoder/embedding_hidden_mapping_in",
        emb,
        hidden,
    )
    for i in range(config.num_hidden_layers):
        pt, tf, google = f"encoder.layer.{i}", f"encoder/layer_._{i}", f"{g}/encoder/layer_{i}"
        yield from _attention(f"{pt}.attention", f"{tf}/attention", f"{google}/attention", hidden)
        if config.add_cross_attention:
            # Google's checkpoints are encoders only: cross-attention has no name there.
            yield from _attention(f"{pt}.crossattention", f"{tf}/crossattention", None, hidden)
        yield from _dense(
            f"{pt}.intermediate.dense",
            f"{tf}/intermediate/dense",
            f"{google}/intermediate/dense",
            hidden,
            config.intermediate_size,
        )
        yield from _dense(
            f"{pt}.output.dense",
            f"{tf}/output/dense",
            f"{google}/output/dense",
            config.intermediate_size,
            hidden,
        )
        yield from _layer_norm(f"{pt}.output.LayerNorm", f"{tf}/output/LayerNorm", f"{google}/output/LayerNorm", hidden)
    if pooler:
        yield from _dense("pooler.dense", "pooler/dense", f"{g}/pooler/dense", hidden, hidden)


def _lm_head(config: RemBertConfig) -> Iterator[tuple]:
    out = config.output_embedding_size
    yield from _dense("cls.predictions.dense", "mlm___cls/predictions/dense", None, config.hidden_size, out)
    # Hugging Face's TF head multiplies by the decoder weight transposed, so both frameworks store [vocab, out].
    yield (
        "cls.predictions.decoder.weight",
        "mlm___cls/predictions/decoder/weight:0",
        None,
        (config.vocab_size, out),
        "normal",
    )
    yield (
        "cls.predictions.decoder.bias",
        "mlm___cls/predictions/decoder/bias:0",
        None,
        (config.vocab_size,),
        "bias",
    )
    yield from _layer_norm("cls.predictions.LayerNorm", "mlm___cls/predictions/LayerNorm", None, out)


def _head_params(config: RemBertConfig, head: Head) -> Iterator[tuple]:
    if head.outputs == "lm":
        yield from _lm_head(config)
    elif head.outputs == "labels":
        yield from _dense("classifier", "classifier", None, config.hidden_size, config.num_labels)
    elif head.outputs == "choice":
        yield from _dense("classifier", "classifier", None, config.hidden_size, 1)
    elif head.outputs == "span":
        yield from _dense("qa_outputs", "qa_outputs", None, config.hidden_size, config.num_labels)


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
        for name, tf_name, google_name, shape, kind in params:
            entries.append(
                WeightEntry(
                    name=name,
                    shape=tuple(shape),
                    pt_key=(spec.base_prefix + name) if in_backbone else name,
                    tf_name=f"{BACKBONE_TF_SCOPE}/{tf_name}" if in_backbone else tf_name,
                    tf_transpose=kind == "dense_weight",
                    google_name=google_name,
                    init=_INIT[kind],
                    in_backbone=in_backbone,
                )
            )
    return entries


def canonical_name(key: str) -> str:
    """Map a PyTorch state-dict key of any head to its canonical name (drops the `rembert.` prefix)."""
    return key[len(BACKBONE_PT_PREFIX) :] if key.startswith(BACKBONE_PT_PREFIX) else key


def all_weight_names(config: RemBertConfig) -> dict[str, WeightEntry]:
    """Every parameter any head can have for `config`, by canonical name (the pooler included)."""
    names: dict[str, WeightEntry] = {}
    for kind in HEADS:
        for entry in weight_spec(config, kind, add_pooling_layer=True):
            names.setdefault(entry.name, entry)
    return names
