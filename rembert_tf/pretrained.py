"""What every TensorFlow RemBERT model shares: building, initialising, loading and saving through the weight spec,
and the hooks that let Keras' compile / fit / evaluate / predict use the model's own loss and outputs."""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import (
    PYTORCH_BIN,
    SAFETENSORS,
    TF_H5,
    load_weights,
    open_checkpoint,
    write_weights,
)
from rembert_spec.formats.hf_h5 import ALIGNMENT
from rembert_spec.inputs import InputError
from rembert_spec.weights import WeightEntry, get_head, weight_spec

from .layers import Dense, Embedding, named_variables, replace_variable

_INSIDE_HEAD = contextvars.ContextVar("rembert_tf_inside_head", default=False)
_LOADING = contextvars.ContextVar("rembert_tf_loading", default=False)

# Arguments of `call` that are not tensors: they stay Python values (they shape the graph).
_FLAGS = frozenset(
    {
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "training",
        "logits_to_keep",
        "return_all_logits",
        "unpad",
    }
)


@contextmanager
def backbone_of_head() -> Iterator[None]:
    """Build a head's backbone inside this block so that it is checked and initialised once, by the head."""
    token = _INSIDE_HEAD.set(True)
    try:
        yield
    finally:
        _INSIDE_HEAD.reset(token)


def sublayer(parent: keras.layers.Layer, name: str) -> dict[str, Any]:
    """Keyword arguments of a child layer: its attribute name, and the parent's dtype policy (Keras does not
    pass a policy down by itself, and mixed precision must reach every layer)."""
    return {"name": name, "dtype": parent.dtype_policy}


def _to_tensor(value: Any) -> Any:
    if value is None or isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    return tf.convert_to_tensor(value)


def unpack_inputs(call: Callable) -> Callable:
    """Let `call` take its inputs as a dict in the first argument (Keras' convention, what `fit` passes), and
    turn numpy arrays and lists into tensors.

    >>> model({"input_ids": ids, "attention_mask": mask, "labels": labels})  # doctest: +SKIP
    """
    signature = inspect.signature(call)
    names = list(signature.parameters)[1:]

    @functools.wraps(call)
    def wrapper(self, *args: Any, **kwargs: Any):
        if args and isinstance(args[0], Mapping):
            if len(args) > 1:
                raise TypeError(f"{type(self).__name__}: with a dict of inputs, pass other arguments by name")
            for key in args[0]:
                if key not in names:
                    raise InputError(f"{type(self).__name__} takes no input named {key!r}; it takes {', '.join(names)}")
                if key in kwargs:
                    raise InputError(f"{key} is given both in the dict of inputs and as an argument")
            args, kwargs = (), {**args[0], **kwargs}
        bound = signature.bind(self, *args, **kwargs)
        for name, value in list(bound.arguments.items())[1:]:
            if name == "past_key_values" and value is not None:
                bound.arguments[name] = tuple(tuple(_to_tensor(t) for t in layer) for layer in value)
            elif name not in _FLAGS:
                bound.arguments[name] = _to_tensor(value)
        return call(*bound.args, **bound.kwargs)

    return wrapper


class TFRemBertPreTrainedModel(keras.Model):
    """Base of every RemBERT Keras model: config handling, spec-driven init, from_pretrained / save_pretrained,
    and Keras training with the model's own loss (`compile(optimizer=...)` without a loss, labels in the inputs).

    >>> from rembert_tf import TFRemBertForMaskedLM
    >>> model = TFRemBertForMaskedLM.from_pretrained("path/to/model")  # doctest: +SKIP
    """

    head: ClassVar[str]
    base_model_prefix: ClassVar[str] = "rembert"
    config_class = RemBertConfig

    def __init__(self, config: RemBertConfig, **kwargs: Any):
        if not isinstance(config, RemBertConfig):
            raise TypeError(f"{type(self).__name__} needs a RemBertConfig, got {type(config).__name__}")
        super().__init__(**kwargs)
        self.config = config
        self._is_backbone_of_head = _INSIDE_HEAD.get()
        # `call` converts its own inputs: Keras would cast float labels to the compute dtype and refuse
        # non-tensor positional arguments.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    # -- the spec ------------------------------------------------------------------------------------------

    @property
    def _has_pooler(self) -> bool:
        backbone = getattr(self, self.base_model_prefix, self)
        return getattr(backbone, "pooler", None) is not None

    def weight_spec(self) -> list[WeightEntry]:
        """This model's parameters as the spec lists them (names in every format, shapes, init)."""
        return weight_spec(self.config, self.head, add_pooling_layer=self._has_pooler)

    def named_variables(self) -> Iterator[tuple[str, keras.Variable]]:
        """(PyTorch state-dict key, variable) for every weight, e.g. `rembert.embeddings.word_embeddings.weight`.
        Values are in TensorFlow's layout (`entry.tf_shape`)."""
        return named_variables(self)

    def post_init(self) -> None:
        """Called at the end of a model's __init__: check the variables against the spec, then initialise."""
        self.built = True  # every variable exists already; Keras must not try to build the model symbolically
        if _INSIDE_HEAD.get():
            return  # a head's backbone: the head checks and initialises everything once
        entries = self.weight_spec()
        found = {key: tuple(variable.shape) for key, variable in self.named_variables()}
        expected = {entry.pt_key: entry.tf_shape for entry in entries}
        if found != expected:
            wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
            raise AssertionError(
                f"{type(self).__name__} variables differ from the weight spec: extra "
                f"{sorted(set(found) - set(expected))}, missing {sorted(set(expected) - set(found))}, "
                f"mis-shaped {wrong}"
            )
        if not _LOADING.get():
            self.init_weights(entries)

    def init_weights(self, entries: list[WeightEntry] | None = None) -> None:
        """Draw fresh values as the spec says: normal(0, initializer_range), zero biases, LayerNorm 1/0,
        and the padding row of the word embeddings zero."""
        variables = dict(self.named_variables())
        std = self.config.initializer_range
        pad = self.config.pad_token_id
        for entry in self.weight_spec() if entries is None else entries:
            variable = variables[entry.pt_key]
            if entry.init in ("normal", "embedding"):
                value = tf.random.normal(variable.shape, stddev=std)
                if entry.init == "embedding" and pad is not None:
                    value = tf.tensor_scatter_nd_update(value, [[pad]], tf.zeros((1, variable.shape[1])))
            elif entry.init == "zeros":
                value = tf.zeros(variable.shape)
            else:
                value = tf.ones(variable.shape)
            variable.assign(tf.cast(value, variable.dtype))

    # -- loading -------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_path: str | os.PathLike,
        *,
        config: RemBertConfig | None = None,
        dtype: str | keras.DTypePolicy | None = None,
        output_loading_info: bool = False,
        ignore_mismatched_sizes: bool = False,
        add_pooling_layer: bool | None = None,
        **config_overrides: Any,
    ):
        """Load a model directory: config.json plus tf_model.h5 (ours or Hugging Face's), model.safetensors (or
        shards) or pytorch_model.bin, written for any head. Weights the checkpoint lacks are initialised and
        reported.

        `add_pooling_layer` (TFRemBertModel only) builds the backbone with or without its pooler.
        `dtype` is a Keras dtype or policy ("float32", "bfloat16", "mixed_float16"...; default: Keras' global
        policy). `config_overrides` change config fields (e.g. num_labels=5, is_decoder=True).
        """
        path = Path(pretrained_model_path)
        if config is None:
            config = RemBertConfig.from_pretrained(path if path.is_dir() else path.parent, **config_overrides)
        elif config_overrides:
            config = config.replace(**config_overrides)
        # Variables are declared without memory (a stateless scope) and each is created once, from its value, when
        # the scope ends: read from the checkpoint, or zeros and then drawn as the spec says.
        late: list[tuple[keras.Variable, np.ndarray]] = []
        token = _LOADING.set(True)
        try:
            with keras.StatelessScope():
                model_kwargs = _model_kwargs(cls, add_pooling_layer)
                model = cls(config, **model_kwargs) if dtype is None else cls(config, dtype=dtype, **model_kwargs)
                variables = dict(model.named_variables())
                entries = model.weight_spec()

                def assign(entry: WeightEntry, array: np.ndarray) -> None:
                    variable = variables[entry.pt_key]
                    array = array.T if entry.tf_transpose else array
                    value = array.astype(tf.as_dtype(variable.dtype).as_numpy_dtype, copy=False)
                    if not _create_from(variable, value):
                        late.append((variable, value))

                prefer = (TF_H5, SAFETENSORS, PYTORCH_BIN)
                with open_checkpoint(path, config, prefer=prefer, copy_on_write=True) as checkpoint:
                    report = load_weights(entries, checkpoint, assign, ignore_mismatched_sizes)
                    report.log(cls.__name__, checkpoint.path)
        finally:
            _LOADING.reset(token)
        for variable, value in late:
            variable.assign(value)
        fresh = set(report.missing_keys) | {key for key, _, _ in report.mismatched_keys}
        model.init_weights([e for e in entries if e.pt_key in fresh])
        return (model, report.as_dict()) if output_loading_info else model

    # -- saving --------------------------------------------------------------------------------------------

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = False,
        max_shard_size: int | str = "5GB",
        **_: Any,
    ) -> list[Path]:
        """Write config.json and tf_model.h5 in Hugging Face's layout (or model.safetensors, sharded above
        max_shard_size, with `safe_serialization=True`). Either framework's from_pretrained reads both."""
        directory = Path(save_directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"{directory}: exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        variables = dict(self.named_variables())
        config = self.config.replace()
        config.extra["architectures"] = [get_head(self.head).tf_class]
        dtype = np.dtype(tf.as_dtype(self.dtype_policy.variable_dtype).as_numpy_dtype)
        if not safe_serialization and dtype.name == "bfloat16":
            dtype = np.dtype(np.float32)  # h5 has no bfloat16; float32 holds it exactly

        def fetch(entry: WeightEntry) -> np.ndarray:
            array = keras.ops.convert_to_numpy(variables[entry.pt_key])
            return array.T if entry.tf_transpose else array

        written = write_weights(
            directory,
            SAFETENSORS if safe_serialization else TF_H5,
            self.weight_spec(),
            fetch,
            head=self.head,
            dtype=dtype,
            max_shard_size=max_shard_size,
        )
        return [config.save_pretrained(directory), *written]

    # -- embeddings ----------------------------------------------------------------------------------------

    def _backbone(self) -> keras.layers.Layer:
        return getattr(self, self.base_model_prefix, self)

    def get_input_embeddings(self) -> Embedding:
        return self._backbone().embeddings.word_embeddings

    def get_output_embeddings(self) -> Dense | None:
        head = getattr(self, "cls", None)
        return head.predictions.decoder if head is not None else None

    def resize_token_embeddings(self, new_num_tokens: int) -> Embedding:
        """Grow or shrink the vocabulary: input embeddings and (not tied) the LM decoder; new rows are drawn
        as at initialisation, kept rows are unchanged. Updates config.vocab_size. Call it before compile()."""
        if isinstance(new_num_tokens, bool) or not isinstance(new_num_tokens, int) or new_num_tokens <= 0:
            raise ValueError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        std = self.config.initializer_range

        def resized(old: keras.Variable, rows: int, draw: bool) -> tf.Tensor:
            keep = min(int(old.shape[0]), rows)
            fresh = tf.random.normal((rows, *old.shape[1:]), stddev=std) if draw else tf.zeros((rows, *old.shape[1:]))
            return tf.concat([tf.cast(old[:keep], tf.float32), fresh[keep:]], axis=0)

        embeddings = self.get_input_embeddings()
        replace_variable(embeddings, "weight", resized(embeddings.weight, new_num_tokens, draw=True))
        decoder = self.get_output_embeddings()
        if decoder is not None:
            replace_variable(decoder, "weight", resized(decoder.weight, new_num_tokens, draw=True))
            replace_variable(decoder, "bias", resized(decoder.bias, new_num_tokens, draw=False))
        self.config = self.config.replace(vocab_size=new_num_tokens)
        for layer in self._flatten_layers():
            if isinstance(layer, TFRemBertPreTrainedModel):
                layer.config = self.config
        return embeddings

    def num_parameters(self, only_trainable: bool = False) -> int:
        return sum(int(np.prod(v.shape)) for _, v in self.named_variables() if v.trainable or not only_trainable)

    # -- training conveniences ------------------------------------------------------------------------------

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each layer's activations in backward instead of storing them (less memory, more time).

        The recomputation would draw new dropout masks, so this needs hidden_dropout_prob and
        attention_probs_dropout_prob of 0 (RemBERT's defaults); it is skipped when attentions or a cache are asked
        for."""
        config = self.config
        if config.hidden_dropout_prob or config.attention_probs_dropout_prob:
            raise ValueError(
                "gradient checkpointing in TensorFlow needs hidden_dropout_prob=0 and attention_probs_dropout_prob=0 "
                f"(got {config.hidden_dropout_prob} and {config.attention_probs_dropout_prob}): recomputing a layer "
                "would draw new dropout masks"
            )
        self._backbone().encoder.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self._backbone().encoder.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self._backbone().encoder.gradient_checkpointing

    # -- Keras ---------------------------------------------------------------------------------------------

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> tf.Tensor:
        """With no loss given to compile(), train on the model's own loss (labels go in the input dict)."""
        if self._compile_loss is not None:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if not isinstance(y_pred, Mapping) or "loss" not in y_pred:
            raise InputError(
                f"{type(self).__name__} computed no loss: put the labels in the dict of inputs (e.g. "
                "{'input_ids': ..., 'labels': ...}) or give compile() a loss"
            )
        loss = tf.cast(y_pred["loss"], tf.float32)
        for extra in self.losses:
            loss = loss + tf.cast(tf.reduce_sum(extra), tf.float32)
        # Under a distribution strategy each replica's gradients are summed, so each replica's loss counts
        # 1 / replicas (what Keras does to the losses it computes itself).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss

    def serving_function(self, jit_compile: bool = False) -> tf.types.experimental.PolymorphicFunction:
        """A tf.function of (input_ids, attention_mask, token_type_ids) -> output tensors by name, for
        `tf.saved_model.save(model, path, signatures={"serving_default": model.serving_function()})`.
        Sizes are left unknown, so one trace serves every batch and length."""
        rank = 3 if self.head == "multiple_choice" else 2
        spec = tf.TensorSpec([None] * rank, tf.int32)

        def serve(input_ids: tf.Tensor, attention_mask: tf.Tensor, token_type_ids: tf.Tensor) -> dict:
            kwargs = {"use_cache": False} if self.head in ("base", "causal_lm") else {}
            outputs = self(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                training=False,
                return_dict=True,
                **kwargs,
            )
            return {name: value for name, value in outputs.items() if isinstance(value, tf.Tensor)}

        return tf.function(
            serve,
            input_signature=[
                tf.TensorSpec.from_spec(spec, "input_ids"),
                tf.TensorSpec.from_spec(spec, "attention_mask"),
                tf.TensorSpec.from_spec(spec, "token_type_ids"),
            ],
            jit_compile=jit_compile,
        )

    @property
    def _default_save_signature(self) -> tf.types.experimental.PolymorphicFunction | None:
        """What `tf.saved_model.save(model, path)` exports as "serving_default" when given no signatures (Keras
        would trace `call` with float inputs). A head's backbone exports nothing of its own."""
        return None if self._is_backbone_of_head else self.serving_function()

    def get_config(self) -> dict[str, Any]:
        """What Keras' `.keras` format stores to rebuild the model (name, dtype policy, the RemBERT config)."""
        return {**keras.layers.Layer.get_config(self), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        config = dict(config)
        return cls(RemBertConfig.from_dict(config.pop("config")), **config)


def _model_kwargs(cls: type, add_pooling_layer: bool | None) -> dict[str, bool]:
    if add_pooling_layer is None:
        return {}
    if cls.head != "base":
        raise ValueError(f"add_pooling_layer applies to TFRemBertModel only; {cls.__name__} decides its own pooler")
    return {"add_pooling_layer": add_pooling_layer}


def _create_from(variable: keras.Variable, value: np.ndarray) -> bool:
    """Make a variable declared in a stateless scope (no memory yet) get created from `value` when the scope ends,
    instead of from zeros that would then be overwritten. Keras has no public call for this; where its private hook
    is missing, say so and the caller assigns once the scope has ended."""
    if getattr(variable, "_value", True) is not None or not hasattr(variable, "_initializer"):
        return False
    variable._initializer = lambda shape, dtype=None: _as_tensor(value)
    return True


_DLPACK_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64))  # bfloat16 has no DLPack code


def _as_tensor(value: np.ndarray) -> tf.Tensor:
    """A tensor over `value`'s own memory when TensorFlow can use it in place (a writable copy-on-write map of the
    checkpoint, C-contiguous and 64-byte aligned, as tf_model.h5 files written here are): the variable then starts
    on the file's pages and copies only what training changes. Anything else is copied (TensorFlow aborts the
    process on a misaligned buffer, so alignment is checked, never assumed)."""
    usable = value.ctypes.data % ALIGNMENT == 0 and value.flags.c_contiguous and value.flags.writeable
    if usable and value.size and value.dtype in _DLPACK_DTYPES:
        return tf.experimental.dlpack.from_dlpack(np.asarray(value).__dlpack__())
    return tf.convert_to_tensor(value)
