"""`make demo` end to end: examples/demo.py builds the tiny checkpoint, tokenizes, converts PT -> TF -> PT with
--verify, and reports; the build is deterministic and happens once."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

pytest.importorskip("rembert_tokenize.testing")
pytest.importorskip("sentencepiece")


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_tiny_checkpoint", EXAMPLES / "build_tiny_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_end_to_end(tmp_path):
    started = time.monotonic()
    command = [sys.executable, str(EXAMPLES / "demo.py"), "--model-dir", str(tmp_path / "tiny"), "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ})
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert elapsed < 60, f"the demo took {elapsed:.0f} s"

    assert f"tiny checkpoint {tmp_path / 'tiny'}: built" in out
    scripts = re.findall(r"^  (\w+) +\S.*\n +\[CLS\] .* \[SEP\]  \((\d+) tokens\)$", out, re.MULTILINE)
    assert len({name for name, _ in scripts}) >= 4, out
    assert {"Latin", "Cyrillic", "Arabic", "Han"} <= {name for name, _ in scripts}
    assert "<unk>" not in out

    assert "round trip PT -> TF -> PT bit-identical (float32): yes" in out
    per_head = re.findall(r"^    (PT -> TF|TF -> PT|sentences) +(\w+) +(\S+)$", out, re.MULTILINE)
    assert {(step, head) for step, head, _ in per_head} == {
        ("PT -> TF", "base"),
        ("PT -> TF", "masked_lm"),
        ("TF -> PT", "base"),
        ("TF -> PT", "masked_lm"),
        ("sentences", "masked_lm"),
    }
    assert all(float(value) < 1e-4 for _, _, value in per_head)
    assert out.count(": OK") == 2

    written = re.findall(r"^    (/\S+)  \(", out, re.MULTILINE)
    for name in ("tiny-rembert-tf/tf_model.h5", "tiny-rembert-pt/model.safetensors", "tiny-rembert-tf/tokenizer.json"):
        assert str(tmp_path / name) in written
    assert all(Path(path).is_file() for path in written)


def test_tiny_checkpoint_is_built_once_and_deterministically(tmp_path):
    builder = _load_builder()
    first, built = builder.build(tmp_path / "a")
    assert built
    assert builder.build(tmp_path / "a") == (first, False)
    second, _ = builder.build(tmp_path / "b")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name

    from rembert_spec import RemBertConfig
    from rembert_tokenize import RemBertTokenizerFast

    config = RemBertConfig.from_pretrained(first)
    assert config.vocab_size == RemBertTokenizerFast.from_pretrained(first).vocab_size
    assert config.extra["architectures"] == ["RemBertForMaskedLM"]
    assert {"sentencepiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= set(names)
