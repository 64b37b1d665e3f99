"""ONNX files of a RemBERT model, whichever framework exported them: written atomically, quantized to int8.

An exporter (rembert_pt.export, rembert_tf.onnx_export) hands `write_onnx` a function that saves the model at a
path; the file (and, above protobuf's 2 GB limit, its external data file) appears complete or not at all.
`quantize_int8` runs ONNX Runtime's dynamic quantizer on chosen weight matrices: int8 per output channel, each
weight in two int8 terms (W ~ W_hi + W_lo, as rembert_pt.quantize does: one term alone moved a full-size model's
hidden states by 5-7%), inputs quantized per tensor by ONNX Runtime at run time. `onnx` and `onnxruntime` are
imported only here, only when called (`pip install "rembert[onnx]"`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from .atomic import atomic_write

OPSET = 18  # ONNX opset of exported models: LayerNormalization is an ONNX op from 17; 18 is torch.onnx's default
MAX_SINGLE_FILE = 2**31 - 2**26  # protobuf's 2 GB limit, with room for the graph itself


def require_onnx(*modules: str) -> None:
    """Import `modules` (onnx, onnxruntime) or say which package to install."""
    for module in modules:
        try:
            __import__(module)
        except ImportError as e:
            raise ImportError(
                f"{module} is needed for ONNX export; install it with: pip install 'rembert[onnx]'"
            ) from e


def external_data_files(path: str | os.PathLike) -> set[str]:
    """The external data files an ONNX model refers to (relative to its directory), without loading them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    files = set()
    for tensor in _all_tensors(model.graph):
        for entry in tensor.external_data:
            if entry.key == "location":
                files.add(entry.value)
    return files


def _all_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.t is not None and attribute.t.ByteSize():
                yield attribute.t


def write_onnx(path: str | os.PathLike, save: Callable[[Path], None]) -> Path:
    """Write an ONNX model at `path` through `save(file)`, which writes the model at `file` (and, when external, its
    data as `file.name + ".data"` beside it). The data file is published under a fresh name first, then the model
    over `path`: an interrupted write leaves the previous model (with its own data) or none, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = external_data_files(path) if path.is_file() else set()
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as staging:
        # The model refers to its data by file name: save under the data file's final name, then move both.
        staged = Path(staging) / f"{path.name}.{uuid.uuid4().hex[:8]}"
        save(staged)
        data = staged.with_name(staged.name + ".data")
        if data.exists():
            _fsync(data)
            os.replace(data, path.parent / data.name)
        with atomic_write(path) as tmp:
            os.replace(staged, tmp)
    for name in previous - external_data_files(path):
        (path.parent / name).unlink(missing_ok=True)  # the replaced model's data
    return path


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save_model_proto(model, file: Path) -> None:
    """Save an onnx.ModelProto at `file`, its tensors in `file.name + ".data"` when it would not fit in one file."""
    import onnx

    if _serialized_size(model) < MAX_SINGLE_FILE:
        onnx.save_model(model, str(file))
    else:
        onnx.save_model(model, str(file), save_as_external_data=True, location=file.name + ".data", size_threshold=1024)


def _serialized_size(model) -> int:
    """About how many bytes `model` takes serialized, counted part by part: protobuf refuses to measure (or write) a
    whole message above 2 GB, which a full-size model with its weights inside is."""
    graph = model.graph
    return sum(t.ByteSize() for t in graph.initializer) + sum(node.ByteSize() for node in graph.node)


# -- int8 ---------------------------------------------------------------------------------------------------


def quantize_int8(
    src: str | os.PathLike, dst: str | os.PathLike, weights: Collection[str], weight_terms: int = 2
) -> Path:
    """Write at `dst` the ONNX model `src` with every MatMul / Gemm whose weight (second input) is an initializer
    named in `weights` computed in int8 by ONNX Runtime (DynamicQuantizeLinear + MatMulInteger); the rest stays
    float. Each such weight is split in two matrices, W_hi (W rounded to 129 levels per output channel) and W_lo
    (what the rounding lost), both quantized per output channel to ONNX Runtime's reduced range [-64, 64]: W_hi
    exactly, W_lo with 1/128 of its step.

    Why the reduced range: ONNX Runtime's int8 kernel for CPUs without VNNI (AVX2 only) adds two products of a uint8
    input and an int8 weight in a saturating 16-bit sum. With weights within 64, such a sum stays below
    2 * 255 * 64 = 32640 < 2^15, so the model computes the same numbers on every x86 CPU; full-range weights come out
    wrong there (tests/deploy/test_onnx_avx2.py shows both on a CPU without AVX-512 or VNNI).

    `weight_terms=1` keeps W_hi alone: half the int8 work, for measuring what the second term buys (on the full-size
    model about 10% error instead of 1.7%; docs/deployment.md)."""
    if weight_terms not in (1, 2):
        raise ValueError(f"weight_terms must be 1 or 2, got {weight_terms!r}")
    require_onnx("onnx", "onnxruntime")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    chosen = _split_weights(model, set(weights), weight_terms)
    if not chosen:
        raise ValueError(f"{src}: none of the {len(weights)} weights to quantize is a MatMul or Gemm weight")
    with tempfile.TemporaryDirectory(prefix=".rembert-int8-") as scratch:
        split = Path(scratch) / "split.onnx"
        save_model_proto(model, split)
        del model
        large = os.path.getsize(split) + sum(p.stat().st_size for p in Path(scratch).glob("*.data")) > MAX_SINGLE_FILE

        def save(file: Path) -> None:
            with _root_logger_quiet():  # the quantizer logs advice about static models on the root logger
                _quantize(file)

        def _quantize(file: Path) -> None:
            quantize_dynamic(
                split,
                file,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=chosen,
                per_channel=True,
                reduce_range=True,  # weights within [-64, 64]: exact on AVX2 kernels too (see above)
                weight_type=QuantType.QInt8,
                use_external_data_format=large,
                extra_options={"MatMulConstBOnly": True},
            )

        return write_onnx(dst, save)


@contextmanager
def _root_logger_quiet() -> Iterator[None]:
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


_WEIGHT_LEVELS = 64  # ONNX Runtime's reduced range for int8 weights: [-64, 64]


def _split_weights(model, weights: set[str], terms: int = 2) -> list[str]:
    """Rewrite each MatMul(X, W) or Gemm(X, W) with W in `weights` as MatMul(X, W_hi) + MatMul(X, W_lo) (+ bias),
    or with `terms=1` as MatMul(X, W_hi) (+ bias); returns the names of the new MatMul nodes."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes, chosen = [], []
    for node in graph.node:
        weight = node.input[1] if len(node.input) > 1 else None
        if node.op_type not in ("MatMul", "Gemm") or weight not in weights or weight not in initializers:
            nodes.append(node)
            continue
        matrix = numpy_helper.to_array(initializers[weight]).astype(np.float32)
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm":
            if attributes.get("transA", 0) or attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0:
                nodes.append(node)  # not a plain x @ W + b: left in float
                continue
            if attributes.get("transB", 0):
                matrix = matrix.T
        # The levels of the quantizer's reduced range: W_hi's largest value is 64 steps, so it quantizes exactly.
        scale = np.maximum(np.abs(matrix).max(axis=0, keepdims=True), np.finfo(np.float32).tiny) / _WEIGHT_LEVELS
        hi = (np.clip(np.round(matrix / scale), -_WEIGHT_LEVELS, _WEIGHT_LEVELS) * scale).astype(np.float32)
        base = f"{node.name or weight}.int8"
        x, y = node.input[0], node.output[0]
        graph.initializer.append(numpy_helper.from_array(hi, f"{weight}.hi"))
        nodes.append(helper.make_node("MatMul", [x, f"{weight}.hi"], [f"{base}.hi_out"], name=f"{base}.hi"))
        addends = [f"{base}.hi_out"]
        if terms == 2:
            graph.initializer.append(numpy_helper.from_array((matrix - hi).astype(np.float32), f"{weight}.lo"))
            nodes.append(helper.make_node("MatMul", [x, f"{weight}.lo"], [f"{base}.lo_out"], name=f"{base}.lo"))
            addends.append(f"{base}.lo_out")
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
            addends.append(node.input[2])  # the bias
        total = addends[0]
        for i, addend in enumerate(addends[1:], 1):
            out = y if i == len(addends) - 1 else f"{base}.sum{i}"
            nodes.append(helper.make_node("Add", [total, addend], [out], name=f"{base}.add{i}"))
            total = out
        if total != y:
            nodes.append(helper.make_node("Identity", [total], [y], name=f"{base}.out"))
        chosen += [f"{base}.hi", f"{base}.lo"][:terms]
    used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    return chosen
