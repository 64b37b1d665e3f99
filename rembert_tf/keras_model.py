"""What makes every RemBERT model a Keras 3 model to Keras users: `fit` / `evaluate` / `predict` with a loss and
metrics given to `compile` or with the model's own loss, `.keras` files, and `export`.

Labels come in either of Keras' conventions:
- `(x, y)` or `(x, y, sample_weight)`, from a dataset or as `fit(x, y)`: x a dict of inputs (or input_ids alone,
  or a list in call order), y the labels (question answering: a dict by label name, `start_positions` and
  `end_positions`, or by output name, or a pair (start, end));
- inside the dict of inputs, under the call's label names (`labels`; `start_positions` and `end_positions`).

Whatever the convention, a loss given to `compile` wins: Keras computes it on the model's predictions (the labels
are not passed to the model). Without one, the model computes its own loss (the labels are passed to `call`).

What Keras sees as the predictions (`predict`'s result, what a compiled loss and metrics receive) is the head's
`PREDICTIONS` fields: the logits, or for question answering a dict {"start_logits", "end_logits"} (the backbone:
{"last_hidden_state", "pooler_output"}). Label positions the model's own loss skips (-100; question-answering
positions outside the sequence) carry a Keras mask, so that a compiled loss and every metric skip them too, and a
causal LM's logits at position t meet the label at t + 1, as in its own loss.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import keras
import tensorflow as tf

from rembert_spec import RemBertConfig
from rembert_spec import inputs as rules
from rembert_spec.atomic import atomic_write
from rembert_spec.inputs import IGNORE_INDEX, LABEL_NAMES, InputError
from rembert_spec.outputs import PREDICTIONS, ModelOutput

from . import internals
from .call_inputs import flags_out_of_the_dict, named_inputs, parameter_names

SERIALIZATION_PACKAGE = "rembert_tf"
# Registers a model class with Keras, so that `keras.models.load_model("m.keras")` finds it after `import rembert_tf`.
serializable = keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)

_NOT_PREDICTED = ("loss", "past_key_values")  # outputs that predict() leaves out: the loss, the decoding cache
_ID_INPUTS = ("input_ids", "token_type_ids", "position_ids")


def _in_a_distributed_build() -> bool:
    """Tracing in a strategy's cross-replica context: Keras' build of a compiled loss and metrics (training steps
    run in replica context)."""
    return tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context() and not tf.executing_eagerly()


class _LabelMask(keras.layers.Layer):
    """Passes logits through with a Keras mask attached (Keras' public masking API: `compute_mask`): Keras' losses
    and metrics then skip the masked positions, and a loss averages over the positions left."""

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        return tf.identity(inputs[0])

    def compute_mask(self, inputs: tuple[tf.Tensor, tf.Tensor], previous_mask: Any = None) -> tf.Tensor:
        return inputs[1]


def _masked(logits: tf.Tensor, counted: tf.Tensor) -> tf.Tensor:
    return _LabelMask(autocast=False, name="label_mask")((logits, counted))


class KerasModel(keras.Model):
    """A keras.Model whose `fit` / `evaluate` / `predict`, `.keras` serialization and `export` work for every
    RemBERT head (see the module's docstring); the base of TFRemBertPreTrainedModel.

    >>> model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...               metrics=["accuracy"])  # doctest: +SKIP
    >>> model.fit(dict(encoded), labels, epochs=3)  # doctest: +SKIP
    >>> logits = model.predict(dict(encoded))  # doctest: +SKIP
    """

    head: ClassVar[str]
    config: RemBertConfig

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Keras' call, with Python flags allowed inside a dict of inputs (`{"input_ids": ..., "output_attentions":
        True}`), as Hugging Face's TF models allow them."""
        args, kwargs = flags_out_of_the_dict(args, kwargs)
        if args and isinstance(args[0], Mapping) and _in_a_distributed_build():
            args = (self._averaged_batch_repaired(args[0]), *args[1:])
        return super().__call__(*args, **kwargs)

    def _averaged_batch_repaired(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Under a distribution strategy, Keras builds a compiled loss and metrics by tracing the model once (in
        cross-replica context) on a data batch averaged over the replicas, which turns integer ids into floats.
        For that trace, which computes nothing, ids are integers again and labels are left out (they add only the
        loss, which neither a compiled loss nor metrics read)."""
        return {
            k: tf.cast(v, tf.int32) if k in _ID_INPUTS and getattr(v, "dtype", tf.int32).is_floating else v
            for k, v in inputs.items()
            if k not in LABEL_NAMES[self.head]
        }

    # -- what Keras passes to the steps ------------------------------------------------------------------------

    def _input_dict(self, x: Any) -> dict[str, Any]:
        return named_inputs(x, parameter_names(self.call), type(self).__name__)

    def _labels_as_y(self, labels: Mapping[str, Any]) -> Any:
        """Labels taken from the dict of inputs, as Keras' y: one tensor, or a dict by output name (QA)."""
        names = LABEL_NAMES[self.head]
        if len(names) == 1:
            return labels[names[0]]
        return {output: labels[name] for name, output in zip(names, PREDICTIONS[self.head], strict=True)}

    def _y_as_labels(self, y: Any) -> dict[str, Any]:
        """Keras' y as the call's label arguments."""
        names = LABEL_NAMES[self.head]
        if not names:
            raise InputError(f"{type(self).__name__} has no loss of its own: give compile() a loss for these labels")
        values = self._y_structured(y)
        if len(names) == 1:
            return {names[0]: values}
        return {name: values[output] for name, output in zip(names, PREDICTIONS[self.head], strict=True)}

    def _y_structured(self, y: Any) -> Any:
        """y shaped like the predictions: a tensor, or for several outputs a dict by output name. A dict may name
        the call's label arguments instead (QA: start_positions, end_positions), and a list or tuple goes in the
        outputs' order."""
        outputs, names = PREDICTIONS[self.head], LABEL_NAMES[self.head]
        if len(names) < 2:
            if isinstance(y, Mapping) and names and set(y) == set(names):
                return y[names[0]]
            return y
        if isinstance(y, Mapping):
            if set(y) == set(names):
                return {output: y[name] for name, output in zip(names, outputs, strict=True)}
            if set(y) == set(outputs):
                return dict(y)
            raise InputError(
                f"{type(self).__name__} labels must be a dict with keys {', '.join(names)} (or "
                f"{', '.join(outputs)}), got keys {', '.join(map(str, y))}"
            )
        if isinstance(y, (list, tuple)) and len(y) == len(outputs):
            return dict(zip(outputs, y, strict=True))
        raise InputError(
            f"{type(self).__name__} labels must be a dict with keys {', '.join(names)} or a pair "
            f"({', '.join(names)}), got {type(y).__name__}"
        )

    def _labels_of(self, x: Any, y: Any) -> Any:
        """y, or else the labels inside the dict of inputs (None without them)."""
        names = LABEL_NAMES[self.head]
        if y is not None or not isinstance(x, Mapping) or not names or any(name not in x for name in names):
            return y
        return self._labels_as_y({name: x[name] for name in names})

    def _route_labels(self, data: Any) -> Any:
        """(x, y, sample_weight) as the step needs them. A loss given to compile: labels found in x move to y.
        The model's own loss: labels given as y move into x (and stay as y, for metrics)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = self._input_dict(x)
        names = LABEL_NAMES[self.head]
        in_x = {name: x[name] for name in names if name in x}
        if in_x and y is not None:
            raise InputError(f"labels are given twice: as y and in the dict of inputs ({', '.join(in_x)})")
        if in_x and len(in_x) != len(names):
            raise InputError(f"{type(self).__name__} needs all its labels in the dict of inputs: {', '.join(names)}")
        if self.loss is not None:
            if in_x:
                x = {k: v for k, v in x.items() if k not in in_x}
                y = self._labels_as_y(in_x)
        else:
            if sample_weight is not None:
                raise InputError(
                    f"sample_weight (or class_weight) weighs a loss given to compile(); {type(self).__name__}'s own "
                    "loss is an unweighted mean, as in Hugging Face. Give compile() a loss, e.g. "
                    "keras.losses.SparseCategoricalCrossentropy(from_logits=True)"
                )
            if y is not None:
                x = {**x, **self._y_as_labels(y)}
        if not self.config.return_dict:
            x = {**x, "return_dict": True}  # the steps read outputs by name
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def train_step(self, data: Any) -> dict[str, Any]:
        return super().train_step(self._route_labels(data))

    def test_step(self, data: Any) -> dict[str, Any]:
        return super().test_step(self._route_labels(data))

    def predict_step(self, data: Any) -> Any:
        """The predictions (see `prediction_outputs`); labels in the dict of inputs are left out."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = {k: v for k, v in self._input_dict(x).items() if k not in LABEL_NAMES[self.head]}
        return self.prediction_outputs(self(x, training=False, return_dict=True))

    # -- what Keras sees of the outputs ----------------------------------------------------------------------

    def prediction_outputs(self, outputs: ModelOutput) -> tf.Tensor | dict[str, tf.Tensor]:
        """The outputs as Keras expects a model's predictions, what `predict` returns: the logits tensor, or for
        several (question answering; the backbone) a dict by name. When a call was asked for more
        (`output_hidden_states`, `output_attentions`), every output but the loss and the cache, by name."""
        fields = PREDICTIONS[self.head]
        extra = [k for k in outputs if k not in fields and k not in _NOT_PREDICTED]
        if extra:
            return {k: v for k, v in outputs.items() if k not in _NOT_PREDICTED}
        if len(fields) == 1:
            return outputs[fields[0]]
        return {k: outputs[k] for k in fields if k in outputs}

    def _targets(self, y: Any, outputs: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
        """(labels, predictions, sample weights) as a compiled loss and metrics take them: labels structured like
        the predictions, each output aligned as the model's own loss aligns it, skipped positions masked."""
        if not isinstance(outputs, ModelOutput):
            return y, outputs, sample_weight
        fields = PREDICTIONS[self.head]
        predicted = {k: outputs[k] for k in fields if k in outputs}
        if y is None or not LABEL_NAMES[self.head]:
            return y, predicted if len(fields) > 1 else predicted[fields[0]], sample_weight
        labels = self._y_structured(y)
        if len(fields) == 1:
            return self._counted(labels, predicted[fields[0]], sample_weight)
        weights = sample_weight if isinstance(sample_weight, Mapping) else dict.fromkeys(fields, sample_weight)
        aligned = {k: self._counted(labels[k], predicted[k], weights[k]) for k in fields}
        if sample_weight is not None:
            sample_weight = {k: triple[2] for k, triple in aligned.items()}
        return (
            {k: triple[0] for k, triple in aligned.items()},
            {k: triple[1] for k, triple in aligned.items()},
            sample_weight,
        )

    def _counted(self, labels: Any, logits: tf.Tensor, sample_weight: Any) -> tuple[tf.Tensor, tf.Tensor, Any]:
        """One output's labels, logits and sample weights, aligned as the model's own loss aligns them; the skipped
        positions masked (their label set to 0, a valid class that the mask keeps out). A weight per example
        applies to each of its positions."""
        labels = tf.convert_to_tensor(labels)
        if sample_weight is not None:
            sample_weight = tf.convert_to_tensor(sample_weight)
        integer = not (labels.dtype.is_floating or labels.dtype == tf.bool)
        single_label = rules.sequence_classification_problem(self.config, integer) == "single_label_classification"
        if not integer or (self.head == "sequence_classification" and not single_label):
            return labels, logits, sample_weight  # regression or multi-label: every value counts
        if self.head == "question_answering":  # clamped into [0, length]; `length` itself is skipped
            length = tf.cast(tf.shape(logits)[-1], labels.dtype)
            labels = tf.clip_by_value(tf.reshape(labels, [-1]), 0, length)
            counted = labels != length
            return tf.where(counted, labels, tf.zeros_like(labels)), _masked(logits, counted), sample_weight
        if self.head in ("sequence_classification", "multiple_choice"):
            labels = tf.reshape(labels, [-1])
        if self.head == "causal_lm":  # position t predicts the label at t + 1
            labels = labels[:, 1:]
            logits = logits[:, :-1] if logits.shape.rank == 3 else logits
            if sample_weight is not None and sample_weight.shape.rank == 2:
                sample_weight = sample_weight[:, 1:]
        if sample_weight is not None and sample_weight.shape.rank == 1 and labels.shape.rank == 2:
            sample_weight = sample_weight[:, None]
        counted = labels != IGNORE_INDEX
        if self.head in ("masked_lm", "causal_lm") and logits.shape.rank == labels.shape.rank:
            # The LM head ran only where a label counts: logits hold those rows, [n_counted, vocab].
            if sample_weight is not None:
                sample_weight = tf.boolean_mask(tf.broadcast_to(sample_weight, tf.shape(labels)), counted)
            return tf.boolean_mask(labels, counted), logits, sample_weight
        return tf.where(counted, labels, tf.zeros_like(labels)), _masked(logits, counted), sample_weight

    # -- losses and metrics -----------------------------------------------------------------------------------

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> tf.Tensor:
        """A loss given to compile(), on the predictions; else the model's own loss (labels passed to call)."""
        if self.loss is not None:
            labels, predicted, sample_weight = self._targets(self._labels_of(x, y), y_pred, sample_weight)
            return super().compute_loss(x, labels, predicted, sample_weight, training=training)
        if not isinstance(y_pred, Mapping) or "loss" not in y_pred:
            raise InputError(
                f"{type(self).__name__} computed no loss: pass labels (fit(x, y), or "
                f"{' and '.join(repr(n) for n in LABEL_NAMES[self.head]) or 'labels'} in the dict of inputs) "
                "or give compile() a loss"
            )
        loss = tf.cast(y_pred["loss"], tf.float32)
        for extra in self.losses:
            loss = loss + tf.cast(tf.reduce_sum(extra), tf.float32)
        # Under a distribution strategy each replica's gradients are summed, so each replica's loss counts
        # 1 / replicas (what Keras does to the losses it computes itself).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> dict[str, Any]:
        """Metrics given to compile(), on the same labels and predictions as a compiled loss."""
        labels, predicted, sample_weight = self._targets(self._labels_of(x, y), y_pred, sample_weight)
        return super().compute_metrics(x, labels, predicted, sample_weight)

    # -- serving and export ----------------------------------------------------------------------------------

    def serving_signature(self) -> list[tf.TensorSpec]:
        """The inputs of `serving_function`: input_ids, attention_mask and token_type_ids, int32, [batch, length]
        ([batch, num_choices, length] for multiple choice), every size unknown."""
        shape = [None] * (3 if self.head == "multiple_choice" else 2)
        return [tf.TensorSpec(shape, tf.int32, name) for name in ("input_ids", "attention_mask", "token_type_ids")]

    def serving_function(self, jit_compile: bool = False) -> tf.types.experimental.PolymorphicFunction:
        """A tf.function of (input_ids, attention_mask, token_type_ids) -> output tensors by name (the loss and
        the decoding cache left out), for `tf.saved_model.save(model, path, signatures=model.serving_function())`
        and `export`. Sizes are left unknown, so one trace serves every batch and length."""

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

        return tf.function(serve, input_signature=self.serving_signature(), jit_compile=jit_compile)

    @property
    def _default_save_signature(self) -> tf.types.experimental.PolymorphicFunction | None:
        """What `tf.saved_model.save(model, path)` exports as "serving_default" when given no signatures (Keras
        would trace `call` with float inputs). A head's backbone exports nothing of its own. (A private Keras hook:
        rembert_tf.internals, `save_signature`.)"""
        if getattr(self, "_backbone_of_head", False):
            return None
        return internals.default_save_signature(
            self.serving_function, lambda: super(KerasModel, self)._default_save_signature
        )

    def export(
        self,
        filepath: str | os.PathLike,
        format: str = "tf_saved_model",  # noqa: A002 (Keras' argument name)
        verbose: bool | None = None,
        input_signature: Any = None,
        **kwargs: Any,
    ) -> None:
        """Keras' `export`. Without an `input_signature`, the artifact serves `serving_function()`: inputs
        input_ids, attention_mask, token_type_ids (int32, any batch and length), outputs by name.

        - "tf_saved_model": endpoint `serve` (and `serving_default`); reload with `tf.saved_model.load(path)`.
        - "litert": a `.tflite` file converted from that SavedModel with TFLite's builtin ops only (the model needs
          no other); keyword arguments set converter attributes, as in Keras (e.g. `optimizations=[...]`).

        With an `input_signature`, or for another format, Keras' own export runs (it calls the model on inputs of
        that signature and returns every output)."""
        if input_signature is not None or format not in ("tf_saved_model", "litert"):
            if input_signature is None:  # Keras cannot infer a signature for a subclassed model: give it ours
                input_signature = [{spec.name: spec for spec in self.serving_signature()}]
            return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)
        if format == "tf_saved_model":
            self._write_saved_model(filepath, verbose=True if verbose is None else verbose)
            return None
        path = Path(filepath)
        if path.suffix != ".tflite":
            raise ValueError(f"export(format='litert') writes a .tflite file, got {str(filepath)!r}")
        with tempfile.TemporaryDirectory() as saved_model:
            self._write_saved_model(saved_model, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            for name, value in kwargs.items():
                if not hasattr(converter, name):
                    raise ValueError(f"export(format='litert'): the TFLite converter has no attribute {name!r}")
                setattr(converter, name, value)
            flatbuffer = converter.convert()
        with atomic_write(path) as tmp:
            Path(tmp).write_bytes(flatbuffer)
        if verbose or verbose is None:
            print(f"Saved artifact at '{path}'.")
        return None

    def _write_saved_model(self, directory: str | os.PathLike, verbose: bool) -> None:
        # Through Keras' ExportArchive rather than tf.saved_model.save(self): the archive saves the variables on
        # their own, so TFLite's converter freezes them into constants (from the model it keeps resource reads).
        archive = keras.export.ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", self.serving_function())
        archive.write_out(str(directory), verbose=verbose)

    # -- the .keras format -----------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """What Keras' `.keras` format stores to rebuild the model (name, dtype policy, the RemBERT config)."""
        return {**keras.layers.Layer.get_config(self), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        config = dict(config)
        return cls(RemBertConfig.from_dict(config.pop("config")), **config)
