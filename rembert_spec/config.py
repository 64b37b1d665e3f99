"""RemBertConfig: the model's hyper-parameters, validated where they enter, stored as Hugging Face's config.json."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from . import hub
from .atomic import atomic_write

CONFIG_NAME = "config.json"
MODEL_TYPE = "rembert"
ACTIVATIONS = ("gelu", "gelu_new", "relu", "selu")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

_POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "input_embedding_size",
    "output_embedding_size",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_labels",
)
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob")
_BOOLS = (
    "is_decoder",
    "add_cross_attention",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "tie_word_embeddings",
    "unpad",
    "sparse_prediction",
)
# Written by Hugging Face's PretrainedConfig on every save; we never need them, so they go to `extra`.
_HF_BOOKKEEPING = ("transformers_version", "architectures", "model_type")


@dataclass
class RemBertConfig:
    """Hyper-parameters of a RemBERT model. The defaults are google/rembert's.

    >>> config = RemBertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
    >>> config.hidden_size // config.num_attention_heads
    16

    Unknown keys read from a config.json are kept in `extra` and written back unchanged; an unknown keyword
    argument is a TypeError (a typo must not pass silently). Setting `num_labels` resizes `id2label` and
    `label2id` as Hugging Face's config does.
    """

    # What Hugging Face's Trainer leaves out of the predictions it gathers (as for its other decoders).
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["past_key_values"]

    vocab_size: int = 250300
    hidden_size: int = 1152
    num_hidden_layers: int = 32
    num_attention_heads: int = 18
    input_embedding_size: int = 256
    output_embedding_size: int = 1664
    intermediate_size: int = 4608
    hidden_act: str | Callable = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    is_decoder: bool = False
    add_cross_attention: bool = False
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 312
    eos_token_id: int | None = 313
    num_labels: int | None = None
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    problem_type: str | None = None
    output_attentions: bool = False
    output_hidden_states: bool = False
    return_dict: bool = True
    tie_word_embeddings: bool = False
    # Not a Hugging Face field: padding positions (attention_mask 0) skip the projections and feed-forward and
    # come out as zeros in every hidden state. False computes them as Hugging Face does.
    unpad: bool = True
    # Not a Hugging Face field: with labels, the masked and causal LM heads run the vocabulary projection only at
    # positions whose label counts, and `logits` holds those rows only ([n_counted, vocab_size]) instead of
    # Hugging Face's [batch, length, vocab_size]. Same loss, a fraction of the memory when training.
    sparse_prediction: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._settle_labels()
        self._validate()
        object.__setattr__(self, "_settled", True)

    def __setattr__(self, name: str, value: Any) -> None:
        """After construction, labels stay one description, as Hugging Face keeps them: a new `num_labels` resizes
        `id2label` / `label2id` (to LABEL_i names) when their size differs, a new `id2label` sets `num_labels`."""
        if getattr(self, "_settled", False):
            if name == "num_labels":
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ValueError(f"RemBertConfig: num_labels must be a positive integer, got {value!r}")
                if len(self.id2label) != value:
                    object.__setattr__(self, "id2label", {i: f"LABEL_{i}" for i in range(value)})
                    object.__setattr__(self, "label2id", {f"LABEL_{i}": i for i in range(value)})
            elif name == "id2label" and value is not None:
                value = {int(k): str(v) for k, v in dict(value).items()}
                object.__setattr__(self, "num_labels", len(value))
            elif name == "label2id" and value is not None:
                value = {str(k): int(v) for k, v in dict(value).items()}
        object.__setattr__(self, name, value)

    # -- labels ---------------------------------------------------------------------------------------------

    def _settle_labels(self) -> None:
        """num_labels, id2label and label2id describe one thing; derive the missing ones, check the rest."""
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in dict(self.id2label).items()}
            if self.num_labels is not None and self.num_labels != len(self.id2label):
                raise ValueError(
                    f"RemBertConfig: num_labels={self.num_labels} but id2label has {len(self.id2label)} entries"
                )
            self.num_labels = len(self.id2label)
        if self.num_labels is None:
            self.num_labels = len(self.label2id) if self.label2id else 2
        if self.id2label is None:
            self.id2label = (
                {int(i): str(label) for label, i in self.label2id.items()}
                if self.label2id
                else {i: f"LABEL_{i}" for i in range(self.num_labels)}
            )
        if self.label2id is None:
            self.label2id = {label: i for i, label in self.id2label.items()}
        self.label2id = {str(k): int(v) for k, v in self.label2id.items()}

    # -- validation ----------------------------------------------------------------------------------------

    def _validate(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"RemBertConfig: {name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"RemBertConfig: hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if not callable(self.hidden_act) and self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"RemBertConfig: hidden_act must be one of {', '.join(ACTIVATIONS)} or a callable, "
                f"got {self.hidden_act!r}"
            )
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"RemBertConfig: {name} must be a probability in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"RemBertConfig: {name} must be a positive number, got {value!r}")
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"RemBertConfig: {name} must be true or false, got {getattr(self, name)!r}")
        if self.add_cross_attention and not self.is_decoder:
            raise ValueError("RemBertConfig: add_cross_attention=True requires is_decoder=True")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"RemBertConfig: {name} must be a non-negative integer or null, got {value!r}")
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ValueError(
                f"RemBertConfig: pad_token_id ({self.pad_token_id}) must be < vocab_size ({self.vocab_size})"
            )
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"RemBertConfig: problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")

    # -- dict / json ---------------------------------------------------------------------------------------

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        """The config.json content, Hugging Face's layout (`model_type: "rembert"`, string label ids)."""
        if callable(self.hidden_act):
            raise ValueError("RemBertConfig: a callable hidden_act cannot be written to config.json")
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            out[f.name] = getattr(self, f.name)
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["model_type"] = MODEL_TYPE
        return dict(sorted(out.items()))

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The config's own fields (what keyword arguments may set)."""
        return frozenset(f.name for f in fields(cls)) - {"extra"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> RemBertConfig:
        """Build from a config.json dict; keys this class does not know are kept in `extra`. `overrides` must be
        fields of the config (a TypeError names any that is not)."""
        check_field_names(overrides, "RemBertConfig.from_dict()")
        if not isinstance(data, Mapping):
            raise ValueError(f"RemBertConfig: expected a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ValueError(f"RemBertConfig: model_type is {model_type!r}, expected {MODEL_TYPE!r}")
        merged = {**data, **overrides}
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in merged.items() if k in known}
        extra = {k: v for k, v in merged.items() if k not in known and k != "model_type"}
        return cls(**{**kwargs, **_stale_labels_unset(overrides)}, extra=extra)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike) -> None:
        text = self.to_json_string()
        with atomic_write(path) as tmp:
            tmp.write_text(text, encoding="utf-8")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any) -> RemBertConfig:
        check_field_names(overrides, "RemBertConfig.from_json_file()")
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such config file") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: config is not UTF-8 text ({e.reason})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: config is not valid JSON ({e.msg} at line {e.lineno})") from None
        try:
            return cls.from_dict(data, **overrides)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None

    # -- directories ---------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *, return_unused_kwargs: bool = False, **kwargs: Any
    ) -> RemBertConfig | tuple[RemBertConfig, dict[str, Any]]:
        """Read the config.json of a model directory (or a config file given directly, or a Hugging Face Hub repo
        id such as "google/rembert", with `revision=`, `cache_dir=`, `local_files_only=`, `token=`,
        `subfolder=`). Other keyword arguments override config fields; one that is not a field is a TypeError,
        or, with `return_unused_kwargs=True`, returned beside the config as Hugging Face does."""
        options, overrides = hub.pop_hub_options(kwargs)
        unused = {k: overrides.pop(k) for k in list(overrides) if k not in cls.field_names()}
        if not return_unused_kwargs:
            check_field_names(unused, "RemBertConfig.from_pretrained()")
        path = config_file(pretrained_model_name_or_path, options)
        config = cls.from_json_file(path, **overrides)
        return (config, unused) if return_unused_kwargs else config

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CONFIG_NAME
        self.to_json_file(path)
        return path

    def replace(self, **changes: Any) -> RemBertConfig:
        """A validated copy with some fields changed."""
        check_field_names({k: v for k, v in changes.items() if k != "extra"}, "RemBertConfig.replace()")
        return dataclasses.replace(self, **{**changes, **_stale_labels_unset(changes)})


def _stale_labels_unset(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The label fields that `changes` make stale, set to None (derived again from the new ones): a new `num_labels`
    unsets the label maps, a new `id2label` the count (and `label2id`, which is then its inverse)."""
    if "num_labels" in changes and "id2label" not in changes:
        return {"id2label": None, "label2id": None}
    if "id2label" in changes and "num_labels" not in changes:
        return {"num_labels": None, **({} if "label2id" in changes else {"label2id": None})}
    return {}


def check_field_names(names: Iterable[str], where: str, also: Iterable[str] = ()) -> None:
    """Keyword arguments meant for config fields: a TypeError naming those that are not (with a likely spelling),
    for `where` (e.g. "RemBertForMaskedLM.from_pretrained()"), which also takes the arguments `also`."""
    known = RemBertConfig.field_names() | set(also)
    unknown = sorted(set(names) - known)
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    plural = "s" if len(unknown) > 1 else ""
    raise TypeError(
        f"{where} got unexpected keyword argument{plural} {', '.join(hints)}: neither a RemBertConfig field nor "
        "one of its own arguments"
    )


def config_file(pretrained_model_name_or_path: str | os.PathLike, options: hub.HubOptions) -> Path:
    """The config.json a `from_pretrained` argument names: in a local directory (or the file itself), or fetched
    from a Hub repo."""
    path = hub.local_path(pretrained_model_name_or_path, options)
    if path is None:
        return hub.hub_file(str(pretrained_model_name_or_path), CONFIG_NAME, options)
    return path / CONFIG_NAME if path.is_dir() else path


def as_rembert_config(config: Any, who: str) -> RemBertConfig:
    """`config` as a RemBertConfig: ours as it is; another library's RemBERT config (such as a
    `transformers.RemBertConfig`, recognised by its `to_dict()` and `model_type`) converted; else a TypeError
    saying what `who` expected."""
    if isinstance(config, RemBertConfig):
        return config
    # Hugging Face's to_diff_dict leaves out what equals its defaults (which are ours), keeping config.json lean.
    to_dict = getattr(config, "to_diff_dict", None) or getattr(config, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping) and data.get("model_type") == MODEL_TYPE:
            return RemBertConfig.from_dict(data)
    kind = f"{type(config).__module__}.{type(config).__qualname__}"
    raise TypeError(
        f"{who} needs a rembert_spec.RemBertConfig (or a config with to_dict() of model_type 'rembert', such as "
        f"transformers.RemBertConfig), got {kind}"
    )
