"""Checkpoint files whose order on disk differs from the order they list their tensors in, with mixed dtypes, read
tensor by tensor. The files are laid out by hand or by the formats' own tools (the `safetensors` package's
reader, h5py, torch.save), never by our writers, which always write in the order they list.

- safetensors: the header's entries in one order, the data in another; each tensor is where its
  `data_offsets` say.
- tf_model.h5: layers, weight names and dataset creation in different orders; float16, float32 and float64
  datasets; contiguous ones (memory-mapped) beside chunked, compressed ones.
- pytorch_model.bin: the archive's storage records in reverse order, storages shared by several tensors.
"""

from __future__ import annotations

import collections
import json
import zipfile
from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from rembert_spec import weight_spec
from rembert_spec.checkpoint import open_checkpoint
from rembert_spec.formats.safetensors import SafetensorsReader
from rembert_spec.formats.torch_bin import TorchBinReader
from rembert_spec.testing import random_tensor
from rembert_spec.weights import get_head
from tests.conftest import tiny_config

_RNG = np.random.default_rng(0)
MIXED = {
    "f32": _RNG.normal(size=(3, 5)).astype(np.float32),
    "f16": _RNG.normal(size=(7,)).astype(np.float16),
    "bf16": _RNG.normal(size=(2, 3)).astype(ml_dtypes.bfloat16),
    "f64": _RNG.normal(size=(4, 1)),
    "i64": _RNG.integers(-(2**40), 2**40, (6,)),
    "i32": _RNG.integers(-(2**20), 2**20, (2, 2)).astype(np.int32),
    "u8": _RNG.integers(0, 256, (5,)).astype(np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(1.5, np.float32),
    "empty": np.zeros((0, 4), np.float32),
}
_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64"}
_SAFETENSORS_DTYPES |= {"int32": "I32", "uint8": "U8", "bool": "BOOL"}


def write_safetensors_by_hand(path: Path, tensors: dict[str, np.ndarray], header_order, data_order) -> None:
    """A safetensors file listing `tensors` in `header_order` with their bytes laid out in `data_order`."""
    offsets, data, position = {}, bytearray(), 0
    for name in data_order:
        raw = np.ascontiguousarray(tensors[name]).tobytes()
        offsets[name] = [position, position + len(raw)]
        data += raw
        position += len(raw)
    header = {"__metadata__": {"format": "pt"}}
    for name in header_order:
        array = tensors[name]
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": offsets[name],
        }
    raw_header = json.dumps(header).encode()
    raw_header += b" " * (-len(raw_header) % 8)
    path.write_bytes(len(raw_header).to_bytes(8, "little") + raw_header + bytes(data))


def assert_same_tensor(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), name


def _reference_bytes(path: Path, name: str) -> bytes:
    """A tensor's bytes as the `safetensors` package reads them (through torch, which knows every dtype here)."""
    with safe_open(path, framework="pt") as f:
        tensor = f.get_tensor(name)
    return tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header_order=st.permutations(list(MIXED)), data_order=st.permutations(list(MIXED)))
def test_safetensors_tensors_are_read_where_their_offsets_say(tmp_path, header_order, data_order):
    path = tmp_path / "mixed.safetensors"
    write_safetensors_by_hand(path, MIXED, header_order, data_order)
    with SafetensorsReader(path) as reader:
        assert reader.keys() == list(header_order) and reader.metadata == {"format": "pt"}
        for name, want in MIXED.items():
            got = reader.read(name)
            assert_same_tensor(got, want, name)
            assert reader.info(name).shape == want.shape and reader.info(name).dtype == want.dtype
            assert got.tobytes() == _reference_bytes(path, name), name  # the file is one the package reads so


def test_a_model_whose_safetensors_data_runs_backwards_loads_tensor_by_tensor(tmp_path):
    config = tiny_config()
    entries = weight_spec(config, "masked_lm")
    values = {e.pt_key: random_tensor(e, config, seed=3) for e in entries}
    for e in entries[::3]:  # a third in half precision: mixed dtypes in one file
        values[e.pt_key] = values[e.pt_key].astype(np.float16)
    names = list(values)
    write_safetensors_by_hand(tmp_path / "model.safetensors", values, names, names[::-1])
    with open_checkpoint(tmp_path, config) as checkpoint:
        assert checkpoint.unknown_keys == [] and len(checkpoint.names()) == len(entries)
        for entry in entries:
            assert_same_tensor(checkpoint.read(entry), values[entry.pt_key], entry.pt_key)


# -- tf_model.h5 -----------------------------------------------------------------------------------------------


def write_h5_by_hand(path: Path, config, head: str, seed: int = 0) -> dict[str, np.ndarray]:
    """A Keras-2 weights file written with h5py: the layers listed mlm___cls first, the datasets created in reverse
    order of their listing, LayerNorm weights in float16 and biases in float64, one tensor in three chunked and
    compressed. Returns each weight's value in PyTorch's layout, as stored (dtype included)."""
    entries = weight_spec(config, head)
    scope = get_head(head).tf_scope
    expected, stored = {}, {}
    for i, entry in enumerate(entries):
        value = random_tensor(entry, config, seed)
        if "LayerNorm" in entry.name:
            value = value.astype(np.float16)
        elif entry.name.endswith(".bias"):
            value = value.astype(np.float64)
        expected[entry.name] = value
        stored[f"{scope}/{entry.tf_name}"] = (value.T if entry.tf_transpose else value, i % 3 == 1)
    layers: dict[str, list[str]] = {}
    for name in stored:
        layers.setdefault(name.split("/")[1], []).append(name)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([layer.encode() for layer in reversed(layers)])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for layer, names in layers.items():
            f.create_group(layer).attrs["weight_names"] = np.array([name.encode() for name in names])
        for name in reversed(stored):
            value, compressed = stored[name]
            options = dict(chunks=True, compression="gzip") if compressed and value.ndim else {}
            f[name.split("/")[1]].create_dataset(name, data=value, **options)
    return expected


def test_h5_written_in_unusual_order_with_mixed_dtypes_loads_tensor_by_tensor(tmp_path):
    config = tiny_config(num_labels=3)
    expected = write_h5_by_hand(tmp_path / "tf_model.h5", config, "sequence_classification")
    with h5py.File(tmp_path / "tf_model.h5") as f:  # the file is what this test says it is
        layouts = set()
        f.visititems(lambda _, item: layouts.add(item.chunks is None) if isinstance(item, h5py.Dataset) else None)
        assert layouts == {True, False}
    with open_checkpoint(tmp_path, config) as checkpoint:
        assert checkpoint.format == "tf_h5" and checkpoint.unknown_keys == []
        assert sorted(checkpoint.names()) == sorted(expected)
        for entry in weight_spec(config, "sequence_classification"):
            assert_same_tensor(checkpoint.read(entry), expected[entry.name], entry.name)


# -- pytorch_model.bin ---------------------------------------------------------------------------------------------


def _reverse_storage_records(path: Path) -> None:
    """Rewrite a torch.save archive with its storage records in reverse order (data.pkl last): valid, unusual."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    records = [m for m in members if "/data/" in m[0]]
    others = [m for m in members if "/data/" not in m[0]]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records[::-1] + others[::-1]:
            archive.writestr(name, data)


def _expected(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def test_pytorch_bin_with_storages_in_reverse_order_reads_tensor_by_tensor(tmp_path):
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=generator)
    state = collections.OrderedDict(
        half=torch.randn(5, generator=generator).half(),
        tail=base[3:],  # a view with an offset, stored before the tensor that owns the storage
        brain=torch.randn(2, 3, generator=generator).bfloat16(),
        base=base,
        transposed=base.t(),
        ids=torch.arange(7),
        flags=torch.tensor([True, False]),
    )
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    _reverse_storage_records(path)
    with zipfile.ZipFile(path) as archive:
        records = [info.filename.rsplit("/", 1)[1] for info in archive.infolist() if "/data/" in info.filename]
    assert records == sorted(records, key=int, reverse=True) and len(records) == 5  # base, tail, transposed share one
    assert torch.load(path, weights_only=True).keys() == state.keys()  # torch itself reads it
    with TorchBinReader(path) as reader:
        assert reader.keys() == list(state)
        for name, tensor in state.items():
            assert_same_tensor(reader.read(name), _expected(tensor), name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_hugging_face_state_dict_in_unusual_order_loads_tensor_by_tensor(tmp_path, dtype):
    import transformers

    from tests.oracle import hf_config

    config = tiny_config()
    torch.manual_seed(0)
    state = transformers.RemBertForMaskedLM(hf_config(config)).state_dict()
    for i, key in enumerate(state):
        if i % 2:  # mixed dtypes: every other tensor in half precision
            state[key] = state[key].to(dtype)
    torch.save(state, tmp_path / "pytorch_model.bin")
    _reverse_storage_records(tmp_path / "pytorch_model.bin")
    with open_checkpoint(tmp_path, config) as checkpoint:
        assert checkpoint.format == "pytorch_bin" and checkpoint.unknown_keys == []
        for entry in weight_spec(config, "masked_lm"):
            assert_same_tensor(checkpoint.read(entry), _expected(state[entry.pt_key]), entry.pt_key)
