"""--verify's default tolerance, tested by what it lets through: a conversion that moves the outputs by a little more
than the documented limit fails (and writes nothing), one that moves them by less passes.

The limit documented in docs/conversion.md is the default tolerance (1e-4; 1e-2 when the weights are cast to
float16) times the largest reference output, at least 1. The outputs are moved by a known amount: the LM decoder's
bias is shifted by `delta` in what the conversion writes, which shifts every logit by `delta` and nothing else.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import conversion.converter
import rembert_pt
from conversion import VerificationFailed, convert
from conversion.verify import sample_batch
from rembert_spec import RemBertConfig
from tests.conversion.helpers import make_model

DOCUMENTED_TOLERANCE = {"float32": 1e-4, "float16": 1e-2}
SHIFTED = "cls.predictions.decoder.bias"


def _documented_limit(src, dtype: str) -> float:
    """The tolerance times max(1, largest |output| of the PyTorch model from SRC at attended positions)."""
    config = RemBertConfig.from_pretrained(src)
    batch = sample_batch(config, "masked_lm")
    model = rembert_pt.RemBertForMaskedLM.from_pretrained(src)
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True)
    attended = batch["attention_mask"].astype(bool)
    largest = max(float(out.logits.abs()[attended].max()), float(out.hidden_states[-1].abs()[attended].max()))
    return DOCUMENTED_TOLERANCE[dtype] * max(1.0, largest)


def _shift_written_logits(monkeypatch, delta: float) -> None:
    real = conversion.converter.write_weights

    def shifted(directory, fmt, entries, fetch, *args, **kwargs):
        def fetch_shifted(entry):
            array = fetch(entry)
            return array + np.asarray(delta, array.dtype) if entry.name == SHIFTED else array

        return real(directory, fmt, entries, fetch_shifted, *args, **kwargs)

    monkeypatch.setattr(conversion.converter, "write_weights", shifted)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("verify-tolerance") / "src")


@pytest.mark.parametrize("to, dtype", [("tf", "float32"), ("pt", "float16")])
def test_a_shift_above_the_default_limit_fails(src, tmp_path, monkeypatch, to, dtype):
    limit = _documented_limit(src, dtype)
    _shift_written_logits(monkeypatch, 2 * limit)
    with pytest.raises(VerificationFailed) as failed:
        convert(src, tmp_path / "out", to=to, dtype=dtype, verify=True)
    result = failed.value.report.verification
    assert not result.ok and result.max_abs_difference > 1.5 * limit
    assert not (tmp_path / "out").exists()


# float16's limit from below is held by tests/conversion/test_verify.py: a plain float16 conversion verifies.
@pytest.mark.parametrize("to, dtype", [("tf", "float32")])
def test_a_shift_below_the_default_limit_passes(src, tmp_path, monkeypatch, to, dtype):
    limit = _documented_limit(src, dtype)
    _shift_written_logits(monkeypatch, 0.4 * limit)
    report = convert(src, tmp_path / "out", to=to, dtype=dtype, verify=True)
    result = report.verification
    assert result.ok and 0.3 * limit < result.max_abs_difference < limit
    assert (tmp_path / "out" / "config.json").is_file()
