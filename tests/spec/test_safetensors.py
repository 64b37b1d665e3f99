"""Our safetensors reader and writer against the reference `safetensors` library (damaged files: test_damaged_files)."""

from __future__ import annotations

import json
import os

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

from rembert_spec import CheckpointError
from rembert_spec.formats.safetensors import (
    SafetensorsReader,
    parse_size,
    write_safetensors,
    write_safetensors_checkpoint,
)
from rembert_spec.tensor_reader import ShardedReader

TENSORS = {
    "a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
    "b.bias": np.array([1.5, -2.0, 3.25], dtype=np.float16),
    "c": np.array([[1, 2], [3, 4]], dtype=np.int64),
    "scalar": np.array(7, dtype=np.int32),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "flags": np.array([True, False]),
}


def write(path, tensors):
    plan = [(name, t.shape, t.dtype) for name, t in tensors.items()]
    return write_safetensors(path, plan, tensors.__getitem__, {"format": "pt"})


def test_reference_library_reads_what_we_write(tmp_path):
    write(tmp_path / "x.safetensors", TENSORS)
    theirs = safetensors.numpy.load_file(tmp_path / "x.safetensors")
    assert theirs.keys() == TENSORS.keys()
    for name, value in TENSORS.items():
        np.testing.assert_array_equal(theirs[name], value)


def test_we_read_what_the_reference_library_writes(tmp_path):
    safetensors.numpy.save_file(TENSORS, tmp_path / "x.safetensors", metadata={"format": "np"})
    with SafetensorsReader(tmp_path / "x.safetensors") as reader:
        assert set(reader.keys()) == set(TENSORS) and reader.metadata == {"format": "np"}
        for name, value in TENSORS.items():
            assert reader.info(name).shape == value.shape and reader.info(name).dtype == value.dtype
            np.testing.assert_array_equal(reader.read(name), value)


def test_bfloat16_round_trip_matches_torch(tmp_path):
    import torch
    from safetensors.torch import load_file

    values = np.array([1.0, -3.5, 1e30], dtype=ml_dtypes.bfloat16)
    write(tmp_path / "bf.safetensors", {"w": values})
    assert torch.equal(
        load_file(tmp_path / "bf.safetensors")["w"], torch.tensor([1.0, -3.5, 1e30], dtype=torch.bfloat16)
    )
    with SafetensorsReader(tmp_path / "bf.safetensors") as reader:
        np.testing.assert_array_equal(reader.read("w"), values)


def test_reads_are_zero_copy_and_read_only(tmp_path):
    write(tmp_path / "x.safetensors", TENSORS)
    with SafetensorsReader(tmp_path / "x.safetensors") as reader:
        array = reader.read("a.weight")
        assert not array.flags.writeable and not array.flags.owndata


def test_writing_is_atomic(tmp_path):
    path = tmp_path / "x.safetensors"
    write(path, TENSORS)
    before = path.read_bytes()

    def failing(name):
        if name == "c":
            raise RuntimeError("disk on fire")
        return TENSORS[name]

    with pytest.raises(RuntimeError):
        write_safetensors(path, [(n, t.shape, t.dtype) for n, t in TENSORS.items()], failing)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["x.safetensors"]


def test_shards_and_index(tmp_path):
    tensors = {f"t{i}": np.full((100,), i, dtype=np.float32) for i in range(5)}
    written = write_safetensors_checkpoint(
        tmp_path, [(n, t.shape, t.dtype) for n, t in tensors.items()], tensors.__getitem__, max_shard_size=900
    )
    assert [p.name for p in written][-1] == "model.safetensors.index.json" and len(written) == 4
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 2000
    with ShardedReader(tmp_path / "model.safetensors.index.json", SafetensorsReader) as reader:
        assert reader.keys() == list(tensors)
        np.testing.assert_array_equal(reader.read("t3"), tensors["t3"])


@pytest.mark.parametrize("filename", ["../evil.safetensors", "/etc/passwd", "sub/x.safetensors", "..", ""])
def test_shard_names_that_leave_the_directory_are_refused(tmp_path, filename):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": filename}}))
    with pytest.raises(CheckpointError, match="refused shard"):
        ShardedReader(tmp_path / "model.safetensors.index.json", SafetensorsReader)


def test_shard_links_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "x.safetensors", {"a": np.zeros(2, np.float32)})
    model = tmp_path / "model"
    model.mkdir()
    (model / "shard.safetensors").symlink_to(outside / "x.safetensors")
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "shard.safetensors"}}))
    with pytest.raises(CheckpointError, match="is a link"):
        ShardedReader(model / "model.safetensors.index.json", SafetensorsReader)


@pytest.mark.parametrize("text, value", [("5GB", 5 * 10**9), ("500MB", 5 * 10**8), ("2GiB", 2 * 2**30), (1000, 1000)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["five", "-1GB", 0, "1XB"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(ValueError):
        parse_size(text)
