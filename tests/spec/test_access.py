"""How readers hand out tensors (`tensor_reader.Access`), on the files Hugging Face itself writes and on ours:
read-only views, copy-on-write views a model may keep, memory of their own (mmap=False), and 64-byte aligned
memory for TensorFlow, read once, where the file's data is not aligned."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import open_checkpoint
from rembert_spec.tensor_reader import COPY_ON_WRITE, PRIVATE, READ_ONLY, Access, FileStamp
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import weight_spec
from tests.conftest import tiny_config
from tests.oracle import hf_config

TF_ALIGNED = Access(writable=True, alignment=64)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, object]:
    """A tiny model saved four ways: by Hugging Face's TF model (tf_model.h5, HDF5's own offsets), by its PyTorch
    model through torch.save (pytorch_model.bin), and by this library (model.safetensors, aligned tf_model.h5)."""
    import torch
    import transformers

    root = tmp_path_factory.mktemp("access")
    config = tiny_config()
    torch.manual_seed(0)
    hf_pt = transformers.RemBertModel(hf_config(config))
    hf_pt.save_pretrained(root / "hf-bin", safe_serialization=False)
    hf_tf = transformers.TFRemBertModel.from_pretrained(root / "hf-bin", from_pt=True)
    hf_tf.save_pretrained(root / "hf-h5")
    write_random_checkpoint(root / "ours-safetensors", config, "base")
    write_random_checkpoint(root / "ours-h5", config, "base", fmt="tf_h5")
    expected = {name: param.detach().numpy() for name, param in hf_pt.state_dict().items()}
    return {"root": root, "config": config, "hf": expected}


FILES = {
    "hf-h5": "tf_model.h5",
    "hf-bin": "pytorch_model.bin",
    "ours-safetensors": "model.safetensors",
    "ours-h5": "tf_model.h5",
}


def _read_all(directory, config: RemBertConfig, access: Access, tf_layout: bool = False) -> dict[str, np.ndarray]:
    with open_checkpoint(directory, config, access=access) as checkpoint:
        return {e.name: checkpoint.read(e, tf_layout) for e in weight_spec(config, "base") if e.name in checkpoint}


def test_hugging_faces_own_files_read_as_hugging_face_wrote_them(checkpoints):
    config, expected = checkpoints["config"], checkpoints["hf"]
    for kind in ("hf-h5", "hf-bin"):
        for access in (READ_ONLY, COPY_ON_WRITE, PRIVATE, TF_ALIGNED):
            arrays = _read_all(checkpoints["root"] / kind, config, access)
            assert set(arrays) == {name for name in expected if "position_ids" not in name}
            for name, array in arrays.items():
                np.testing.assert_array_equal(array, expected[name], err_msg=f"{kind} {access} {name}")


def test_hugging_faces_h5_is_mostly_unaligned_and_read_once_into_aligned_memory(checkpoints):
    config = checkpoints["config"]
    directory = checkpoints["root"] / "hf-h5"
    mapped = _read_all(directory, config, COPY_ON_WRITE, tf_layout=True)
    unaligned = [name for name, array in mapped.items() if array.ctypes.data % 64]
    assert len(unaligned) > len(mapped) // 2  # why issue 18 exists
    for name, array in _read_all(directory, config, TF_ALIGNED, tf_layout=True).items():
        assert array.ctypes.data % 64 == 0 and array.flags.c_contiguous and array.flags.writeable, name
        assert isinstance(array, np.memmap) == (name not in unaligned), name  # the aligned ones stay views


@pytest.mark.parametrize("kind", list(FILES))
def test_each_access(checkpoints, tmp_path, kind):
    directory = tmp_path / kind
    shutil.copytree(checkpoints["root"] / kind, directory)
    config = checkpoints["config"]
    path = directory / FILES[kind]
    pristine = path.read_bytes()

    read_only = _read_all(directory, config, READ_ONLY)
    assert not any(array.flags.writeable for array in read_only.values())

    with open_checkpoint(directory, config, access=COPY_ON_WRITE) as checkpoint:
        assert checkpoint.mapped_files == [FileStamp.of(path)]
        entry = next(e for e in weight_spec(config, "base") if e.name == "embeddings.word_embeddings.weight")
        kept = checkpoint.read(entry)
    assert kept.flags.writeable
    kept += 1.0  # private pages: the file is not written
    assert path.read_bytes() == pristine

    with open_checkpoint(directory, config, access=PRIVATE) as checkpoint:
        assert checkpoint.mapped_files == []
        in_file_layout = kind.endswith("h5")  # (the other layout comes as a view, for the caller to copy)
        entries = [e for e in weight_spec(config, "base") if e.name in checkpoint]
        private = {e.name: checkpoint.read(e, tf_layout=in_file_layout) for e in entries}
    before = {name: array.copy() for name, array in private.items()}
    with open(path, "r+b") as f:  # overwritten in place, as `cp other model.safetensors` does
        f.write(b"\x00" * len(pristine))
    for name, array in private.items():
        assert array.flags.writeable and array.ctypes.data % 64 == 0
        np.testing.assert_array_equal(array, before[name], err_msg=name)


def test_a_file_stamp_tells_a_change_in_place_from_a_replacement(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x" * 1000)
    stamp = FileStamp.of(path)
    assert stamp.change() is None
    os.utime(path, ns=(stamp.mtime_ns + 10**9, stamp.mtime_ns + 10**9))
    assert stamp.change() == "overwritten in place"
    os.truncate(path, 10)
    assert stamp.change() == "truncated from 1000 to 10 bytes"
    replacement = tmp_path / "new"
    replacement.write_bytes(b"y")
    os.replace(replacement, path)  # a new file under the name: the old one, still mapped, is intact
    assert stamp.change() is None
    path.unlink()
    assert stamp.change() is None
