"""What every TensorFlow RemBERT model shares: building, initialising, loading and saving through the weight spec,
and the hooks that let Keras' compile / fit / evaluate / predict use the model's own loss and outputs."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import SAFETENSORS, TF_H5
from rembert_spec.inputs import InputError
from rembert_spec.pretrained import (
    RemBertModelMixin,
    fresh_entries,
    read_checkpoint,
    resolve_load,
    save_model_directory,
)
from rembert_spec.weights import WeightEntry

from . import internals
from .layers import Embedding, named_variables, replace_variable

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


class TFRemBertPreTrainedModel(RemBertModelMixin, keras.Model):
    """Base of every RemBERT Keras model: config handling, spec-driven init, from_pretrained / save_pretrained,
    and Keras training with the model's own loss (`compile(optimizer=...)` without a loss, labels in the inputs).

    >>> from rembert_tf import TFRemBertForMaskedLM
    >>> model = TFRemBertForMaskedLM.from_pretrained("path/to/model")  # doctest: +SKIP
    """

    def __init__(
        self, config: RemBertConfig, *, _backbone_of_head: bool = False, _loading: bool = False, **kwargs: Any
    ):
        """`_backbone_of_head` is passed by a head to the TFRemBertModel it builds inside itself: the head then
        checks and initialises every variable once, its backbone's included. `_loading` is passed by
        from_pretrained: the variables are about to be filled from the checkpoint, so they are not drawn first.
        Other keyword arguments are Keras' (name, dtype)."""
        if not isinstance(config, RemBertConfig):
            raise TypeError(f"{type(self).__name__} needs a RemBertConfig, got {type(config).__name__}")
        super().__init__(**kwargs)
        self.config = config
        self._backbone_of_head = _backbone_of_head
        self._loading = _loading
        internals.skip_input_conversion(self)  # `call` converts its own inputs (see unpack_inputs)

    # -- the spec ------------------------------------------------------------------------------------------

    def named_variables(self) -> Iterator[tuple[str, keras.Variable]]:
        """(PyTorch state-dict key, variable) for every weight, e.g. `rembert.embeddings.word_embeddings.weight`.
        Values are in TensorFlow's layout (`entry.tf_shape`)."""
        return named_variables(self)

    def post_init(self) -> None:
        """Called at the end of a model's __init__: check the variables against the spec, then initialise."""
        self.built = True  # every variable exists already; Keras must not try to build the model symbolically
        if self._backbone_of_head:
            return  # a head's backbone: the head checks and initialises everything once
        entries = self.weight_spec()
        self._check_against_spec({key: tuple(v.shape) for key, v in self.named_variables()}, entries, tf=True)
        if not self._loading:
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
        request = resolve_load(
            pretrained_model_path,
            config,
            config_overrides,
            head=cls.head,
            framework="tf",
            add_pooling_layer=add_pooling_layer,
        )
        model_kwargs = request.model_kwargs if dtype is None else {**request.model_kwargs, "dtype": dtype}
        # Variables are declared without memory and each is created once, from its value, when the block ends:
        # read from the checkpoint, or zeros and then drawn as the spec says (rembert_tf.internals).
        late: list[tuple[keras.Variable, np.ndarray]] = []
        with internals.deferred_variables():
            model = cls(request.config, _loading=True, **model_kwargs)
            variables = dict(model.named_variables())
            entries = model.weight_spec()

            def assign(entry: WeightEntry, array: np.ndarray) -> None:
                variable = variables[entry.pt_key]
                array = array.T if entry.tf_transpose else array
                value = array.astype(tf.as_dtype(variable.dtype).as_numpy_dtype, copy=False)
                if not internals.create_from(variable, value):
                    late.append((variable, value))

            report = read_checkpoint(
                request,
                entries,
                assign,
                framework="tf",
                model_name=cls.__name__,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
            )
        for variable, value in late:
            variable.assign(value)
        model.init_weights(fresh_entries(entries, report))
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
        variables = dict(self.named_variables())
        dtype = np.dtype(tf.as_dtype(self.dtype_policy.variable_dtype).as_numpy_dtype)
        if not safe_serialization and dtype.name == "bfloat16":
            dtype = np.dtype(np.float32)  # h5 has no bfloat16; float32 holds it exactly

        def fetch(entry: WeightEntry) -> np.ndarray:
            array = keras.ops.convert_to_numpy(variables[entry.pt_key])
            return array.T if entry.tf_transpose else array

        return save_model_directory(
            save_directory,
            self.config,
            head=self.head,
            framework="tf",
            fmt=SAFETENSORS if safe_serialization else TF_H5,
            entries=self.weight_spec(),
            fetch=fetch,
            dtype=dtype,
            max_shard_size=max_shard_size,
        )

    # -- embeddings ----------------------------------------------------------------------------------------

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
        self._backbone().config = self.config
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
        if self.loss is not None:  # compile(loss=...)
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

    def to_onnx(self, path: str | os.PathLike, *, opset: int | None = None, int8: bool = False) -> Path:
        """Export `serving_function()` as an ONNX model at `path` (tf2onnx; int32 inputs input_ids,
        attention_mask, token_type_ids with dynamic batch and length). `int8=True` quantizes the encoder's Dense
        kernels with ONNX Runtime. Needs `pip install "rembert[onnx]"`; see docs/deployment.md."""
        from .onnx_export import OPSET, export_onnx

        return export_onnx(self, path, opset=OPSET if opset is None else opset, int8=int8)

    @property
    def _default_save_signature(self) -> tf.types.experimental.PolymorphicFunction | None:
        """What `tf.saved_model.save(model, path)` exports as "serving_default" when given no signatures (Keras
        would trace `call` with float inputs). A head's backbone exports nothing of its own. (A private Keras hook:
        rembert_tf.internals, `save_signature`.)"""
        if self._backbone_of_head:
            return None
        return internals.default_save_signature(
            self.serving_function, lambda: super(TFRemBertPreTrainedModel, self)._default_save_signature
        )

    def get_config(self) -> dict[str, Any]:
        """What Keras' `.keras` format stores to rebuild the model (name, dtype policy, the RemBERT config)."""
        return {**keras.layers.Layer.get_config(self), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        config = dict(config)
        return cls(RemBertConfig.from_dict(config.pop("config")), **config)
