"""A model keeps its weights on the checkpoint's copy-on-write pages by default, and on memory of its own with
`mmap=False`: what each means when someone rewrites or truncates the file in place, in both frameworks
(rembert_spec.mapped_files)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rembert_pt
import rembert_tf
from rembert_spec import CheckpointError
from rembert_spec.testing import write_random_checkpoint
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]
# The file each framework maps: PyTorch adopts model.safetensors as it is; TensorFlow adopts tf_model.h5 as this
# library writes it (every dataset 64-byte aligned).
WEIGHTS = {"pt": ("safetensors", "model.safetensors"), "tf": ("tf_h5", "tf_model.h5")}


def _load(framework: str, directory, **kwargs):
    module, prefix = (rembert_pt, "") if framework == "pt" else (rembert_tf, "TF")
    return getattr(module, prefix + "RemBertForMaskedLM").from_pretrained(directory, **kwargs)


def _word_embeddings(framework: str, model) -> np.ndarray:
    weight = model.get_input_embeddings().weight
    return weight.detach().numpy().copy() if framework == "pt" else np.array(weight.numpy())


@pytest.fixture
def model_dir(tmp_path, request):
    """A checkpoint, and the bytes of another of the same size to overwrite it with in place."""
    fmt, name = WEIGHTS[request.param]
    write_random_checkpoint(tmp_path / "model", tiny_config(), "masked_lm", seed=0, fmt=fmt)
    write_random_checkpoint(tmp_path / "other", tiny_config(), "masked_lm", seed=1, fmt=fmt)
    return tmp_path / "model", (tmp_path / "other" / name).read_bytes(), name


@pytest.mark.parametrize("model_dir, framework", [("pt", "pt"), ("tf", "tf")], indirect=["model_dir"], ids=["pt", "tf"])
def test_a_file_rewritten_in_place_reaches_a_mapped_model_not_a_private_one(model_dir, framework, tmp_path, caplog):
    directory, other, name = model_dir
    mapped = _load(framework, directory)
    private = _load(framework, directory, mmap=False)
    loaded = _word_embeddings(framework, mapped)
    np.testing.assert_array_equal(_word_embeddings(framework, private), loaded)

    with open(directory / name, "r+b") as f:  # what `cp other/model.safetensors model/` does: same inode
        f.write(other)
    os.utime(directory / name, ns=(0, 0))  # a rewrite within the file system's clock tick still counts
    changed = _word_embeddings(framework, mapped)
    np.testing.assert_array_equal(_word_embeddings(framework, private), loaded)  # its own memory
    assert not np.array_equal(changed, loaded)  # the documented trade-off of the zero-copy default

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rembert"):
        other_model = _load(framework, tmp_path / "other")  # the next load says so, once
        _load(framework, tmp_path / "other")
    np.testing.assert_array_equal(changed, _word_embeddings(framework, other_model))
    name_of_class = ("" if framework == "pt" else "TF") + "RemBertForMaskedLM"
    (record,) = [r for r in caplog.records if "overwritten in place" in r.getMessage()]
    assert record.getMessage().startswith(
        f"{directory / name} was overwritten in place after {name_of_class} was loaded from it, and that model keeps "
        "its weights on the file's pages: its weights that training had not changed now read the new bytes; load "
        "it again, or with mmap=False"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rembert"):
        private.save_pretrained(tmp_path / "saved-private")
        assert not caplog.records
        mapped.save_pretrained(tmp_path / "saved-mapped")  # saved, with a word
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["saving anyway"]


@pytest.mark.parametrize("model_dir, framework", [("pt", "pt"), ("tf", "tf")], indirect=["model_dir"], ids=["pt", "tf"])
def test_saving_a_model_whose_file_was_truncated_is_refused_before_anything_is_written(model_dir, framework, tmp_path):
    directory, _, name = model_dir
    mapped = _load(framework, directory)
    private = _load(framework, directory, mmap=False)
    expected = _word_embeddings(framework, private)
    size = (directory / name).stat().st_size
    os.truncate(directory / name, 100)
    with pytest.raises(CheckpointError) as info:
        mapped.save_pretrained(tmp_path / "saved")
    assert str(info.value).startswith(f"cannot save: {directory / name} was truncated from {size} to 100 bytes after")
    assert "reading them ends the process (SIGBUS)" in str(info.value)
    assert not (tmp_path / "saved").exists()
    private.save_pretrained(tmp_path / "saved")  # memory of its own: unaffected
    np.testing.assert_array_equal(_word_embeddings(framework, _load(framework, tmp_path / "saved")), expected)


_TRUNCATE_THEN_RUN = """
import os, sys
import numpy as np
sys.path.insert(0, {root!r})
framework, directory, name = {framework!r}, {directory!r}, {name!r}
if framework == "pt":
    import torch
    from rembert_pt import RemBertForMaskedLM as Model
    run = lambda model: model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum()
else:
    from rembert_tf import TFRemBertForMaskedLM as Model
    run = lambda model: model(input_ids=np.array([[1, 2, 3]], np.int32)).logits.numpy().sum()
private = Model.from_pretrained(directory, mmap=False)
mapped = Model.from_pretrained(directory)
os.truncate(os.path.join(directory, name), 100)
run(private)
print("private model ran", flush=True)
run(mapped)
print("mapped model ran", flush=True)
"""


@pytest.mark.parametrize("model_dir, framework", [("pt", "pt"), ("tf", "tf")], indirect=["model_dir"], ids=["pt", "tf"])
def test_a_truncated_file_ends_a_mapped_model_with_sigbus_not_a_private_one(model_dir, framework):
    directory, _, name = model_dir
    code = _TRUNCATE_THEN_RUN.format(root=str(ROOT), framework=framework, directory=str(directory), name=name)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.stdout.splitlines() == ["private model ran"], done.stderr[-2000:]
    assert done.returncode == -signal.SIGBUS
