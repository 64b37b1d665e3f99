"""The few Keras layers RemBERT is built from, holding their variables as `weight` / `bias` like PyTorch.

Variables are created at construction with shapes known from the config, filled with zeros: the model fills
them once, as the weight spec says (random init) or from a checkpoint (`from_pretrained`). Their layout is
TensorFlow's (Dense kernels [in, out]); `rembert_tf.pretrained` walks the attributes to name them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import keras
import tensorflow as tf

from . import internals


def _matmul(x: tf.Tensor, kernel: tf.Tensor, transpose_b: bool = False) -> tf.Tensor:
    """x [..., in] times a 2-D kernel, as one 2-D matmul (the leading axes are folded into the rows)."""
    if x.shape.rank == 2:
        return tf.matmul(x, kernel, transpose_b=transpose_b)
    if x.shape.is_fully_defined():  # eager calls, static graphs: the same product, without the shape ops
        rows = math.prod(x.shape[:-1])
        y = tf.matmul(tf.reshape(x, [rows, x.shape[-1]]), kernel, transpose_b=transpose_b)
        return tf.reshape(y, x.shape[:-1].concatenate(y.shape[-1:]))
    leading = tf.shape(x)[:-1]
    y = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), kernel, transpose_b=transpose_b)
    out = tf.reshape(y, tf.concat([leading, tf.shape(y)[-1:]], axis=0))
    return tf.ensure_shape(out, x.shape[:-1].concatenate(y.shape[-1:]))


class Layer(keras.layers.Layer):
    """Base of every RemBERT layer: built at construction (shapes come from the config), and called with
    tensors the model has already prepared, so Keras' input conversion is skipped (rembert_tf.internals,
    `input_conversion`; non-tensor arguments go by name, so layers work with it off too). Layers cast variables to
    the compute dtype themselves (autocast off): a LayerNorm scale read through float16 would lose bits, and an
    autocast embedding table would be converted whole on every lookup."""

    def __init__(self, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        internals.skip_input_conversion(self)
        self.built = True


class Dense(Layer):
    """y = x W + b. `weight` is [in, out] (Keras' layout), or [out, in] with `transposed=True` (the LM decoder).

    >>> layer = Dense(4, 3)
    >>> tuple(layer.weight.shape), tuple(layer(tf.ones((2, 4))).shape)
    ((4, 3), (2, 3))
    """

    def __init__(self, units_in: int, units_out: int, transposed: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.transposed = transposed
        shape = (units_out, units_in) if transposed else (units_in, units_out)
        self.weight = self.add_weight(shape=shape, initializer="zeros", name="weight")
        self.bias = self.add_weight(shape=(units_out,), initializer="zeros", name="bias")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        kernel = tf.cast(self.weight, self.compute_dtype)
        return tf.nn.bias_add(_matmul(x, kernel, self.transposed), tf.cast(self.bias, self.compute_dtype))


class LayerNorm(Layer):
    """Layer normalisation over the last axis with `weight` (scale) and `bias`; half-precision inputs are
    normalised in float32, as PyTorch does, then cast back."""

    def __init__(self, width: int, eps: float, **kwargs):
        super().__init__(**kwargs)
        self.eps = eps
        self.weight = self.add_weight(shape=(width,), initializer="zeros", name="weight")
        self.bias = self.add_weight(shape=(width,), initializer="zeros", name="bias")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        dtype = x.dtype
        x = tf.cast(x, tf.float32) if dtype in (tf.float16, tf.bfloat16) else x
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        normed = (x - mean) * tf.math.rsqrt(variance + tf.cast(self.eps, x.dtype))
        out = normed * tf.cast(self.weight, x.dtype) + tf.cast(self.bias, x.dtype)
        return tf.cast(out, dtype)


class Embedding(Layer):
    """A lookup table `weight` [rows, width]; ids must already be checked to lie in [0, rows)."""

    def __init__(self, rows: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.weight = self.add_weight(shape=(rows, width), initializer="zeros", name="weight")

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.gather(self.weight, ids), self.compute_dtype)


class Dropout(Layer):
    """Dropout without variables (Keras' own keeps a seed variable, which would join the weights)."""

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        if training and self.rate > 0:
            return tf.nn.dropout(x, rate=self.rate)
        return x


def replace_variable(layer: keras.layers.Layer, name: str, value: tf.Tensor) -> keras.Variable:
    """Give `layer` a new variable `name` holding `value` (any shape); the old one is no longer tracked."""
    delattr(layer, name)  # Keras untracks a deleted variable, so optimizers and savers forget it
    variable = layer.add_weight(shape=tuple(value.shape), initializer="zeros", name=name)
    variable.assign(tf.cast(value, variable.dtype))
    setattr(layer, name, variable)
    return variable


def named_variables(layer: keras.layers.Layer, prefix: str = "") -> Iterator[tuple[str, keras.Variable]]:
    """(dotted path, variable) for every variable under `layer`, named by attribute as PyTorch names
    parameters: `encoder.layer.0.attention.self.query.weight`. Attribute order, so deterministic.

    A trailing underscore is dropped: `output_` holds what PyTorch calls `output` (keras.Layer.output is taken).
    """
    for name, value in vars(layer).items():
        if name.startswith("_"):
            continue
        path = prefix + name.removesuffix("_")
        if isinstance(value, keras.Variable):
            yield path, value
        elif isinstance(value, keras.layers.Layer):
            yield from named_variables(value, f"{path}.")
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, keras.layers.Layer) for v in value):
            for i, child in enumerate(value):
                yield from named_variables(child, f"{path}.{i}.")
