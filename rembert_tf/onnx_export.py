"""ONNX export of any TensorFlow RemBERT head: `model.to_onnx(path)`, through tf2onnx.

What is exported is the model's `serving_function()` (the signature `tf.saved_model.save` writes): inputs
`input_ids`, `attention_mask`, `token_type_ids` (int32, batch and length dynamic), the head's outputs by name. The
graph keeps the padding skip (tf.where / gather_nd / scatter_nd become NonZero / GatherND / ScatterND), so ONNX
Runtime computes the real tokens only, as rembert_pt's export does. TensorFlow's GELU uses `Erfc`, which ONNX
lacks: it is written as 1 - Erf. `int8=True` quantizes the encoder layers' Dense kernels with ONNX Runtime's
dynamic quantizer (rembert_spec.onnx_files.quantize_int8), as for PyTorch.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from rembert_spec.onnx_files import MAX_SINGLE_FILE, OPSET, quantize_int8, require_onnx, save_model_proto, write_onnx


def _erfc_as_one_minus_erf(ctx, node, name, args) -> None:
    """tf2onnx handler: Erfc(x) -> Sub(1, Erf(x))."""
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    difference = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(node.name))
    ctx.replace_inputs(difference, [one.output[0], node.output[0]])


def _convert(model, opset: int):
    """The serving function as an onnx.ModelProto. tf2onnx's large-model path (external tensors, needed above
    protobuf's 2 GB) calls numpy.product, which numpy 2 removed: larger models are refused before converting."""
    import tf2onnx

    size = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    if size >= MAX_SINGLE_FILE:
        raise ValueError(
            f"{type(model).__name__} holds {size / 2**30:.1f} GiB of weights; tf2onnx exports at most 2 GB with "
            "numpy 2. Export it from PyTorch instead: rembert-convert MODEL_DIR OUT --to onnx (the same graph and "
            "weights; docs/deployment.md)"
        )
    function = model.serving_function()
    proto, _ = tf2onnx.convert.from_function(
        function,
        input_signature=function.input_signature,
        opset=opset,
        custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
    )
    return proto


def export_onnx(model, path: str | os.PathLike, *, opset: int = OPSET, int8: bool = False) -> Path:
    """Write `model` (any TF head) as an ONNX model at `path`; see the module docstring. Returns the path."""
    require_onnx("onnx", "tf2onnx", *(("onnxruntime",) if int8 else ()))
    if not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an integer >= 17 (LayerNormalization), got {opset!r}")
    proto = _convert(model, opset)
    if not int8:
        return write_onnx(path, lambda file: save_model_proto(proto, file))
    weights = _encoder_kernel_initializers(model, proto)
    with tempfile.TemporaryDirectory(prefix=".rembert-onnx-") as scratch:
        float_model = Path(scratch) / "float.onnx"
        save_model_proto(proto, float_model)
        proto = None
        return quantize_int8(float_model, path, weights)


def _encoder_kernel_initializers(model, proto) -> set[str]:
    """The initializers holding the encoder layers' Dense kernels but the attention output projection's (kept in
    float, as rembert_pt.export says why), found by value: tf2onnx names them after its graph, not the variables."""
    from onnx import numpy_helper

    def digest(array: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()

    kernels = set()
    for layer in model._backbone().encoder.layer:
        kept_in_float = {id(weight) for weight in layer.attention.output_.dense.weights}
        for weight in layer.weights:
            if len(weight.shape) == 2 and id(weight) not in kept_in_float:
                value = np.asarray(weight.numpy())
                kernels |= {digest(value), digest(value.T)}
    return {
        tensor.name
        for tensor in proto.graph.initializer
        if len(tensor.dims) == 2 and digest(numpy_helper.to_array(tensor)) in kernels
    }
