"""The spec's writers stream: output does not depend on the block size, and memory stays at a block."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from safetensors import safe_open

from conversion.plan import make_plan
from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import SAFETENSORS, TF_H5, open_checkpoint, write_weights
from rembert_spec.formats import hf_h5, safetensors
from rembert_spec.streaming import release, row_blocks
from tests.conversion.helpers import make_model

ROOT = Path(__file__).resolve().parents[2]


def _spec_write(src: Path, out: Path, fmt: str, dtype: str | None = None, head: str | None = None, **kwargs):
    config = RemBertConfig.from_pretrained(src)
    with open_checkpoint(src, config) as checkpoint:
        plan = make_plan(checkpoint, config, fmt, head, dtype)
        out.mkdir()
        return write_weights(out, fmt, plan.entries, checkpoint.read, plan.head, plan.dtype, **kwargs)


@pytest.mark.parametrize("block_bytes", [7, 100])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shard", ["5GB", "6kB"])
def test_safetensors_bytes_do_not_depend_on_the_block_size(tmp_path, monkeypatch, block_bytes, dtype, shard):
    src = make_model(tmp_path / "src")
    expected = _spec_write(src, tmp_path / "whole", SAFETENSORS, dtype, max_shard_size=shard)
    monkeypatch.setattr(safetensors.write_safetensors, "__defaults__", (None, None, block_bytes))
    got = _spec_write(src, tmp_path / "blocks", SAFETENSORS, dtype, max_shard_size=shard)
    assert [p.name for p in got] == [p.name for p in expected]
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), ours.name
    with safe_open(got[0], "np") as f:  # and the reference library reads them
        assert len(list(f.keys())) > 0


def _h5_contents(path: Path) -> dict:
    contents = {}
    with h5py.File(path, "r") as f:
        contents["/"] = {k: np.array(v).tolist() for k, v in f.attrs.items()}

        def visit(name, obj):
            attrs = {k: np.array(v).tolist() for k, v in obj.attrs.items()}
            data = (obj.dtype.str, obj.shape, np.array(obj).tobytes()) if isinstance(obj, h5py.Dataset) else None
            contents[name] = (attrs, data)

        f.visititems(visit)
    return contents


@pytest.mark.parametrize("head", ["masked_lm", "sequence_classification"])
def test_h5_contents_do_not_depend_on_the_block_size(tmp_path, monkeypatch, head):
    src = make_model(tmp_path / "src", head=head)
    expected = _spec_write(src, tmp_path / "whole", TF_H5)
    monkeypatch.setattr(hf_h5.write_h5, "__defaults__", (None, 7))
    got = _spec_write(src, tmp_path / "blocks", TF_H5)
    assert _h5_contents(got[0]) == _h5_contents(expected[0])


def test_row_blocks_cover_the_array():
    array = np.arange(2 * 5 * 3, dtype=np.float32).reshape(10, 3)
    for source in (array, array.T, np.float32(4.0) * np.ones(())):
        blocks = list(row_blocks(source, np.float16, block_bytes=13))
        assert all(b.flags.c_contiguous and b.dtype == np.float16 for b in blocks)
        joined = blocks[0] if source.ndim == 0 else np.concatenate(blocks)
        np.testing.assert_array_equal(joined, source.astype(np.float16))


def _resident_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_release_drops_mapped_pages_and_keeps_data(tmp_path):
    path = tmp_path / "blob"
    data = np.random.default_rng(0).normal(size=(64, 2**18)).astype(np.float32)  # 64 MiB
    data.tofile(path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mapped, dtype=np.float32).reshape(data.shape)
    before = _resident_kb()
    total = float(view.sum(dtype=np.float64))  # touches every page
    assert _resident_kb() - before > 50_000
    assert release(view)
    assert _resident_kb() - before < 10_000
    assert float(view.sum(dtype=np.float64)) == total  # read again from the page cache
    assert not release(data.copy())  # ordinary memory is never touched


def test_release_of_a_view_stays_inside_it(tmp_path):
    path = tmp_path / "blob"
    np.arange(2**20, dtype=np.float32).tofile(path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mapped, dtype=np.float32, offset=4 * 1000, count=5000)
    assert release(view.T) and release(view[::-1])
    np.testing.assert_array_equal(view, np.arange(1000, 6000, dtype=np.float32))


# Memory of a conversion, in a subprocess (a fresh process: peak figures of the test process do not leak in).
# VmHWM is reset when writing starts, so the figure is what writing adds, whatever opening the source costs.
_PEAK_SCRIPT = """
import sys
import conversion.converter

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith(key + ":"))

real = conversion.converter._write_weights

def measured(*args, **kwargs):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark
    start = status("VmRSS")
    written = real(*args, **kwargs)
    print("write", start, status("VmHWM"))
    return written

conversion.converter._write_weights = measured
from conversion.cli import main
code = main(sys.argv[1:])
print("total", status("VmHWM"))
sys.exit(code)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("to", ["tf", "pt"])
def test_writing_adds_a_block_not_a_tensor(tmp_path_factory, to):
    """A ~310 MB checkpoint whose largest tensor is 246 MB: writing adds well under 100 MB."""
    from tests.conversion.test_atomic import LARGE

    root = tmp_path_factory.mktemp("peak")
    src = make_model(root / "src", RemBertConfig(**LARGE))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if to == "pt":  # read tf_model.h5 (its own memory maps, transposed kernels)
        argv = [sys.executable, "-m", "conversion.cli", str(src), str(root / "h5"), "--to", "tf", "--quiet"]
        subprocess.run(argv, env=env, check=True)
        src = root / "h5"
    argv = [sys.executable, "-c", _PEAK_SCRIPT, str(src), str(root / "out"), "--to", to, "--quiet"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    figures = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in done.stdout.splitlines()}
    start, peak = figures["write"]
    assert peak - start < 100, f"writing took RSS from {start} MB to {peak} MB"
    assert figures["total"][0] < 400
