"""Every registered checkpoint format against damaged files: a clean CheckpointError naming the file, or a good read.

The test is parametrised over the registry: a new format in `rembert_spec.formats.FORMATS` is tested here as soon
as `SAMPLES` below knows how to write a small good checkpoint of it (and fails, saying so, until it does).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rembert_spec import CheckpointError, weight_spec
from rembert_spec.checkpoint import open_checkpoint, write_weights
from rembert_spec.formats import FORMATS, CheckpointFormat
from rembert_spec.tensor_reader import PRIVATE, READ_ONLY, Access
from rembert_spec.testing import random_tensor
from tests.conftest import damage, tiny_config

CONFIG = tiny_config(num_hidden_layers=1)


def _write_with_the_spec(fmt: str) -> Callable[[Path], Path]:
    def write(directory: Path) -> Path:
        entries = weight_spec(CONFIG, "masked_lm")
        written = write_weights(directory, fmt, entries, lambda e: random_tensor(e, CONFIG, 0), head="masked_lm")
        return written[0]

    return write


def _write_pytorch_bin(directory: Path) -> Path:
    import torch

    state = {e.pt_key: torch.from_numpy(random_tensor(e, CONFIG, 0)) for e in weight_spec(CONFIG, "masked_lm")}
    state["rembert.embeddings.word_embeddings.weight"] = state["rembert.embeddings.word_embeddings.weight"].half()
    state["rembert.embeddings.position_ids"] = torch.arange(CONFIG.max_position_embeddings).expand((1, -1))
    state["transposed"] = state["cls.predictions.dense.weight"].t()  # a strided view of a shared storage
    torch.save(state, directory / "pytorch_model.bin")
    return directory / "pytorch_model.bin"


def _write_google_tf(directory: Path) -> Path:
    from tests.conversion.helpers import write_google_checkpoint

    return write_google_checkpoint(directory, CONFIG)


# A small good checkpoint of each registered format: the path to open.
SAMPLES: dict[str, Callable[[Path], Path]] = {
    "safetensors": _write_with_the_spec("safetensors"),
    "pytorch_bin": _write_pytorch_bin,
    "tf_h5": _write_with_the_spec("tf_h5"),
    "google_tf": _write_google_tf,
}


@pytest.fixture(scope="module", params=list(FORMATS))
def sample(request, tmp_path_factory) -> tuple[CheckpointFormat, str, dict[str, bytes]]:
    """A format, the name of its checkpoint in a directory, and the bytes of each file of that checkpoint."""
    fmt = FORMATS[request.param]
    assert fmt.name in SAMPLES, f"format {fmt.name!r} is registered but has no sample writer in this test"
    directory = tmp_path_factory.mktemp(fmt.name)
    location = SAMPLES[fmt.name](directory)
    assert fmt.recognises(location)
    files = {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}
    return fmt, location.name, files


# Every way a reader hands out tensors: read-only views, copy-on-write views (some read privately where the data
# is not 64-byte aligned, as TensorFlow asks), memory of their own (mmap=False).
ACCESSES = (READ_ONLY, Access(writable=True, alignment=64), PRIVATE)


def _read_everything(fmt: CheckpointFormat, location: Path) -> None:
    for access, ahead in itertools.product(ACCESSES, (False, True)):
        with fmt.open(location, access) as reader, np.errstate(all="ignore"):  # damaged bytes may read as NaN
            if ahead:  # read on background threads (where the reader does), as TensorFlow's from_pretrained asks
                reader.read_ahead(reader.keys())
            for key in reader.keys():
                np.asarray(reader.read(key)).sum()
                np.asarray(reader.read(key, transient=True)).sum()


def test_the_samples_read_back_through_the_spec(sample, tmp_path):
    fmt, name, files = sample
    for file_name, content in files.items():
        (tmp_path / file_name).write_bytes(content)
    with open_checkpoint(tmp_path / name, CONFIG) as checkpoint:
        assert checkpoint.format == fmt.name
        for entry in weight_spec(CONFIG, "base", add_pooling_layer=False):
            expected = random_tensor(entry, CONFIG, 0).astype(checkpoint.dtype(entry))
            np.testing.assert_array_equal(checkpoint.read(entry), expected, err_msg=entry.name)
    _read_everything(fmt, tmp_path / name)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_file_gives_a_clean_error_naming_the_checkpoint(sample, tmp_path, data):
    fmt, name, files = sample
    damaged = data.draw(st.sampled_from(sorted(files)))
    for file_name, content in files.items():
        (tmp_path / file_name).write_bytes(damage(content, data, max_edits=8) if file_name == damaged else content)
    location = tmp_path / name
    try:
        _read_everything(fmt, location)
    except CheckpointError as error:
        assert str(location) in str(error)
