"""What every TensorFlow RemBERT model shares: building, initialising, loading and saving through the weight spec.
(What Keras users do with a model, fit / predict / .keras files / export, is rembert_tf.keras_model.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rembert_spec import RemBertConfig, mapped_files
from rembert_spec.checkpoint import SAFETENSORS, TF_H5
from rembert_spec.pretrained import (
    LoadRequest,
    RemBertModelMixin,
    checkpoint_dtype,
    fresh_entries,
    open_for_loading,
    push_saved_directory,
    read_checkpoint,
    resolve_load,
    save_model_directory,
)
from rembert_spec.weights import WeightEntry, weight_spec

from . import internals
from .keras_model import KerasModel
from .layers import Embedding, named_variables, replace_variable


def sublayer(parent: keras.layers.Layer, name: str) -> dict[str, Any]:
    """Keyword arguments of a child layer: its attribute name, and the parent's dtype policy (Keras does not
    pass a policy down by itself, and mixed precision must reach every layer)."""
    return {"name": name, "dtype": parent.dtype_policy}


class TFRemBertPreTrainedModel(RemBertModelMixin, KerasModel):
    """Base of every RemBERT Keras model: config handling, spec-driven init, from_pretrained / save_pretrained;
    Keras' fit / evaluate / predict, .keras files and export come from `KerasModel` (rembert_tf.keras_model).

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
        super().__init__(**kwargs)
        self.config = config
        self._backbone_of_head = _backbone_of_head
        self._loading = _loading
        internals.skip_input_conversion(self)  # `call` converts its own inputs (call_inputs.unpack_inputs)

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
        self._warn_about_decoder_setting()
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
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        config: RemBertConfig | None = None,
        dtype: str | keras.DTypePolicy | tf.DType | None = None,
        output_loading_info: bool = False,
        ignore_mismatched_sizes: bool = False,
        add_pooling_layer: bool | None = None,
        use_safetensors: bool | None = None,
        strict: bool = False,
        mmap: bool = True,
        **kwargs: Any,
    ):
        """Load a model directory (config.json plus tf_model.h5, ours or Hugging Face's, model.safetensors or shards,
        or pytorch_model.bin, written for any head) or a Hugging Face Hub repo ("google/rembert"; `revision=`,
        `cache_dir=`, `local_files_only=`, `token=`, `subfolder=`). Weights the checkpoint lacks are initialised
        and reported.

        `dtype` is a Keras dtype or policy ("float32", "bfloat16", "mixed_float16"...; default: Keras' global
        policy) or "auto" (the checkpoint's). Other keyword arguments override config fields (num_labels=5,
        is_decoder=True); an unknown one is a TypeError. `add_pooling_layer` (TFRemBertModel only) builds the
        backbone with or without its pooler. `strict=True` makes any weight the checkpoint lacks, holds unused or
        holds in another shape an error (raised before anything is read).

        With `mmap` (the default) variables start on the checkpoint's copy-on-write pages where TensorFlow can use
        them in place (see `rembert_spec.mapped_files`); `mmap=False` reads every tensor once into memory of the
        model's own.
        """
        mapped_files.warn_about_changed_files()
        request = resolve_load(
            pretrained_model_name_or_path,
            config,
            kwargs,
            head=cls.head,
            framework="tf",
            add_pooling_layer=add_pooling_layer,
            use_safetensors=use_safetensors,
            own_arguments=_FROM_PRETRAINED_ARGUMENTS,
        )
        dtype = _load_dtype(dtype, request, cls.head)
        model_kwargs = request.model_kwargs if dtype is None else {**request.model_kwargs, "dtype": dtype}
        # Variables are declared without memory and each is created once, from its value, when the block ends:
        # read from the checkpoint, or zeros and then drawn as the spec says (rembert_tf.internals).
        late: list[tuple[keras.Variable, np.ndarray]] = []
        adopted = []
        alignment = internals.adoptable_alignment()
        with open_for_loading(request, framework="tf", mmap=mmap, alignment=alignment) as checkpoint:
            # The tensors read into memory of their own (not aligned for TensorFlow in the file, or mmap=False)
            # are read on a background thread while the model is built.
            planned = weight_spec(request.config, cls.head, request.model_kwargs.get("add_pooling_layer"))
            checkpoint.read_ahead(planned, tf_layout=True, dtype=_variable_dtype(dtype))
            with internals.deferred_variables():
                model = cls(request.config, _loading=True, **model_kwargs)
                variables = dict(model.named_variables())
                entries = model.weight_spec()

                def assign(entry: WeightEntry, array: np.ndarray) -> None:
                    variable = variables[entry.pt_key]
                    value = array.astype(tf.as_dtype(variable.dtype).as_numpy_dtype, copy=False)  # TF's layout
                    if not internals.create_from(variable, value):
                        late.append((variable, value))
                    elif internals.adopts(value):
                        adopted.append(entry)

                report = read_checkpoint(
                    request,
                    entries,
                    assign,
                    framework="tf",
                    model_name=cls.__name__,
                    ignore_mismatched_sizes=ignore_mismatched_sizes,
                    strict=strict,
                    dtype=_variable_dtype(model.dtype_policy),
                    checkpoint=checkpoint,
                )
        for variable, value in late:
            variable.assign(value)
        if adopted:
            mapped_files.keep(model, cls.__name__, report.mapped_files)
        model.init_weights(fresh_entries(entries, report))
        return (model, report.as_dict()) if output_loading_info else model

    # -- saving --------------------------------------------------------------------------------------------

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        safe_serialization: bool = False,
        max_shard_size: int | str = "5GB",
        push_to_hub: bool = False,
        repo_id: str | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        create_pr: bool = False,
    ) -> list[Path]:
        """Write config.json and tf_model.h5 in Hugging Face's layout (or model.safetensors, sharded above
        max_shard_size, with `safe_serialization=True`). Either framework's from_pretrained reads both.
        `push_to_hub=True` then uploads the files to `repo_id` (default: the directory's name) with huggingface_hub."""
        mapped_files.check_before_save(self)
        variables = dict(self.named_variables())
        dtype = np.dtype(tf.as_dtype(self.dtype_policy.variable_dtype).as_numpy_dtype)
        if not safe_serialization and dtype.name == "bfloat16":
            dtype = np.dtype(np.float32)  # h5 has no bfloat16; float32 holds it exactly

        def fetch(entry: WeightEntry) -> np.ndarray:
            array = keras.ops.convert_to_numpy(variables[entry.pt_key])
            return array.T if entry.tf_transpose else array

        written = save_model_directory(
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
        if push_to_hub:
            push_saved_directory(
                save_directory,
                written,
                repo_id,
                commit_message=commit_message,
                private=private,
                token=token,
                create_pr=create_pr,
            )
        return written

    # -- deployment ----------------------------------------------------------------------------------------

    def to_onnx(self, path: str | os.PathLike, *, opset: int | None = None, int8: bool = False) -> Path:
        """Export `serving_function()` as an ONNX model at `path` (tf2onnx; int32 inputs input_ids,
        attention_mask, token_type_ids with dynamic batch and length). `int8=True` quantizes the encoder's Dense
        kernels with ONNX Runtime. Needs `pip install "rembert[onnx]"`; see docs/deployment.md."""
        from .onnx_export import OPSET, export_onnx

        return export_onnx(self, path, opset=OPSET if opset is None else opset, int8=int8)

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


_FROM_PRETRAINED_ARGUMENTS = (
    "config",
    "dtype",
    "output_loading_info",
    "ignore_mismatched_sizes",
    "add_pooling_layer",
    "use_safetensors",
    "strict",
    "mmap",
)


def _variable_dtype(dtype: str | keras.DTypePolicy | None) -> np.dtype:
    """The numpy dtype of the variables of a model built with `dtype` (None: Keras' global policy)."""
    policy = keras.config.dtype_policy() if dtype is None else keras.dtype_policies.get(dtype)
    return np.dtype(tf.as_dtype(policy.variable_dtype).as_numpy_dtype)


def _load_dtype(dtype: Any, request: LoadRequest, head: str) -> str | keras.DTypePolicy | None:
    """A Keras dtype policy (or its name) to build the model with; "auto" is the checkpoint's dtype; None keeps
    Keras' global policy. A dtype Keras cannot build floating-point variables with is a ValueError."""
    if dtype is None:
        return None
    if dtype == "auto":
        name = checkpoint_dtype(request, head).name
        return name if name in ("float16", "bfloat16", "float32", "float64") else None
    if isinstance(dtype, tf.DType):
        dtype = dtype.name
    try:
        policy = dtype if isinstance(dtype, keras.DTypePolicy) else keras.DTypePolicy(dtype)
        floating = tf.as_dtype(policy.variable_dtype).is_floating and tf.as_dtype(policy.compute_dtype).is_floating
    except (ValueError, TypeError):
        floating = False
    if not floating:
        raise ValueError(
            "dtype must be a Keras floating dtype or policy ('float32', 'bfloat16', 'float16', 'mixed_bfloat16', "
            f"'mixed_float16', a keras.DTypePolicy) or 'auto', got {dtype!r}"
        )
    return dtype
