"""Reading ahead (`tensor_reader.ReadAhead`, `H5Reader.read_ahead`): the tensors a load reads into memory of their
own are read on background threads while the model is built. The same arrays as reading them one by one, read
once; errors met on a thread reach the caller naming the file and the tensor; no thread or file outlives the
reader."""

from __future__ import annotations

import errno
import os
import threading

import h5py
import numpy as np
import pytest

from rembert_spec import CheckpointError
from rembert_spec.checkpoint import TF_H5, open_checkpoint
from rembert_spec.formats import hf_h5
from rembert_spec.formats.hf_h5 import H5Reader
from rembert_spec.tensor_reader import PRIVATE, Access, ReadAhead
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import weight_spec
from tests.conftest import tiny_config

CONFIG = tiny_config()
TF_ALIGNED = Access(writable=True, alignment=64)


@pytest.fixture()
def h5_path(tmp_path):
    write_random_checkpoint(tmp_path, CONFIG, "masked_lm", fmt=TF_H5, seed=3)
    return tmp_path / "tf_model.h5"


@pytest.fixture()
def small_groups(monkeypatch):
    """Groups of a tensor or two, so that both threads take several each."""
    monkeypatch.setattr(ReadAhead, "GROUP_BYTES", 1)


def _read_ahead_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("rembert read-ahead")]


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def _no_direct_reads(monkeypatch):
    """The main thread's own one-tensor read fails: what arrives came from the read-ahead threads."""

    def direct(*args, **kwargs):
        raise AssertionError("read on the main thread, not ahead")

    monkeypatch.setattr(hf_h5, "read_private", direct)


def test_read_ahead_gives_the_tensors_reading_gives_each_read_once_on_the_threads(h5_path, monkeypatch, small_groups):
    with H5Reader(h5_path, PRIVATE) as reader:
        expected = {key: np.array(reader.read(key)) for key in reader.keys()}
    _no_direct_reads(monkeypatch)
    with H5Reader(h5_path, PRIVATE) as reader:
        keys = reader.keys()
        reader.read_ahead(keys[::-1])  # any order: they are read in file order, handed over when asked for
        arrays = {key: reader.read(key) for key in keys}
    assert arrays.keys() == expected.keys()
    for key, array in arrays.items():
        np.testing.assert_array_equal(array, expected[key], err_msg=key)
        assert not isinstance(array, np.memmap) and array.flags.writeable and array.ctypes.data % 64 == 0, key
    h5_path.write_bytes(b"\0" * h5_path.stat().st_size)  # memory of their own: the file no longer matters
    for key, array in arrays.items():
        np.testing.assert_array_equal(array, expected[key], err_msg=key)
    assert not _read_ahead_threads()


def test_only_what_would_be_read_privately_is_read_ahead(h5_path, monkeypatch):
    """Our h5 is 64-byte aligned: with TensorFlow's access every tensor is a view of the file, nothing is read
    ahead; and what the caller copies anyway (cast to another dtype) is not read ahead either."""
    _no_direct_reads(monkeypatch)
    with open_checkpoint(h5_path, CONFIG, access=TF_ALIGNED) as checkpoint:
        entries = weight_spec(CONFIG, "masked_lm")
        checkpoint.read_ahead(entries, tf_layout=True, dtype=np.float32)
        assert not _read_ahead_threads()
        assert all(isinstance(checkpoint.read(e, tf_layout=True), np.memmap) for e in entries)
    with open_checkpoint(h5_path, CONFIG, access=PRIVATE) as checkpoint:
        checkpoint.read_ahead(entries, tf_layout=True, dtype=np.float16)
        assert not _read_ahead_threads()


def _last_in_file(path, keys: list[str]) -> str:
    with h5py.File(path, "r") as f:
        return max(keys, key=lambda key: f[key.split("/", 2)[1]][key].id.get_offset())


def test_a_file_cut_after_it_was_opened_names_the_file_and_tensor_read_on_a_thread(h5_path, monkeypatch):
    files_before = _open_files()
    reader = H5Reader(h5_path, PRIVATE)
    last = _last_in_file(h5_path, reader.keys())
    with open(h5_path, "r+b") as f:
        f.truncate(h5_path.stat().st_size // 2)
    _no_direct_reads(monkeypatch)
    reader.read_ahead([last])
    with pytest.raises(CheckpointError, match=r"is cut short: 0 of its \d+ bytes .*\(truncated\?\)") as caught:
        reader.read(last)
    assert str(h5_path) in str(caught.value) and repr(last) in str(caught.value)
    reader.close()
    assert not _read_ahead_threads() and _open_files() == files_before


def test_a_read_error_on_a_thread_names_the_file_and_tensor(h5_path, monkeypatch):
    def failing(fd, buffers, offset):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with H5Reader(h5_path, PRIVATE) as reader:
        keys = reader.keys()
        monkeypatch.setattr(os, "preadv", failing)
        reader.read_ahead(keys[:1])
        with pytest.raises(CheckpointError, match=r"cannot read tensor .*Input/output error") as caught:
            reader.read(keys[0])
        assert str(h5_path) in str(caught.value) and repr(keys[0]) in str(caught.value)
        monkeypatch.undo()
        for key in keys:  # the others were not read ahead: read directly
            np.asarray(reader.read(key)).sum()
    assert not _read_ahead_threads()


def test_reading_ahead_stops_at_the_first_error(h5_path, monkeypatch, small_groups):
    calls = []

    def failing(fd, buffers, offset):
        calls.append(offset)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with H5Reader(h5_path, PRIVATE) as reader:
        keys = reader.keys()
        monkeypatch.setattr(os, "preadv", failing)
        reader.read_ahead(keys)
        with pytest.raises(CheckpointError, match="Input/output error"):
            for key in keys:
                reader.read(key)
    assert 1 <= len(calls) <= ReadAhead.THREADS < len(keys)  # each thread's group, then no more


def test_closing_while_reading_ahead_joins_the_threads_and_closes_the_file(h5_path, small_groups):
    files_before = _open_files()
    for _ in range(3):
        reader = H5Reader(h5_path, PRIVATE)
        reader.read_ahead(reader.keys())
        reader.read(reader.keys()[0])
        reader.close()
        assert not _read_ahead_threads() and _open_files() == files_before


def test_tensorflow_from_pretrained_surfaces_a_thread_error_and_leaves_no_thread(h5_path, monkeypatch):
    import rembert_tf

    expected = rembert_tf.TFRemBertForMaskedLM.from_pretrained(h5_path.parent, mmap=False)
    files_before = _open_files()

    def failing(fd, buffers, offset):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "preadv", failing)
    with pytest.raises(CheckpointError, match="cannot read tensor") as caught:
        rembert_tf.TFRemBertForMaskedLM.from_pretrained(h5_path.parent, mmap=False)
    assert str(h5_path) in str(caught.value)
    assert not _read_ahead_threads() and _open_files() == files_before
    monkeypatch.undo()
    _no_direct_reads(monkeypatch)  # mmap=False: every tensor is read ahead, while the model is built
    loaded = rembert_tf.TFRemBertForMaskedLM.from_pretrained(h5_path.parent, mmap=False)
    for (name, a), (_, b) in zip(loaded.named_variables(), expected.named_variables(), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert not _read_ahead_threads() and _open_files() == files_before
