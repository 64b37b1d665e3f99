"""`--force` over an existing DST, asserted directly: while the conversion runs, DST is byte-identical and only
staging names appear beside it; a conversion that fails mid-write leaves DST byte-identical and nothing beside it;
one that succeeds replaces DST whole."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import rembert_spec.streaming
from conversion.cli import main
from tests.conftest import tiny_config
from tests.conversion.helpers import make_model

STAGING_NAME = re.compile(r"\.out\.rembert-convert-tmp-\d+-\w+")


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` (hidden ones too) by relative path, with its sha256."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _watch_writes(monkeypatch, parent: Path, dst: Path, fail_at: int | None) -> list[tuple[set[str], dict]]:
    """At every block of tensor data written, record (names beside DST, DST's contents); raise ENOSPC at block
    `fail_at` (None: never)."""
    real = rembert_spec.streaming.row_blocks
    seen: list[tuple[set[str], dict]] = []

    def watched(array, dtype, block_bytes=rembert_spec.streaming.BLOCK_BYTES):
        for block in real(array, dtype, block_bytes):
            seen.append(({p.name for p in parent.iterdir()}, _snapshot(dst)))
            if fail_at is not None and len(seen) >= fail_at:
                raise OSError(28, "No space left on device")
            yield block

    monkeypatch.setattr(rembert_spec.streaming, "row_blocks", watched)
    return seen


def _existing_dst(parent: Path) -> Path:
    """A DST holding a different model (its weights in the other format) and a file of the user's."""
    dst = make_model(parent / "out", tiny_config(hidden_size=6, num_attention_heads=2), seed=3, fmt="tf_h5")
    (dst / "notes.txt").write_text("mine")
    return dst


@pytest.mark.parametrize("to", ["pt", "tf"])
def test_failure_mid_write_with_force_leaves_dst_byte_identical(tmp_path, monkeypatch, capsys, to):
    src = make_model(tmp_path / "src")
    dst = _existing_dst(tmp_path)
    before = _snapshot(dst)
    seen = _watch_writes(monkeypatch, tmp_path, dst, fail_at=12)
    assert main([str(src), str(dst), "--to", to, "--force", "--quiet"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert len(seen) == 12  # it failed mid-write, as planned
    for beside, contents in seen:
        assert contents == before  # nothing of the new output ever reached DST
        others = beside - {"src", "out"}
        assert len(others) == 1 and STAGING_NAME.fullmatch(others.pop()), beside
    assert _snapshot(dst) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


@pytest.mark.parametrize("to", ["pt", "tf"])
def test_success_with_force_replaces_dst_whole_and_only_at_the_end(tmp_path, monkeypatch, to):
    src = make_model(tmp_path / "src", tokenizer=True)
    dst = _existing_dst(tmp_path)
    before = _snapshot(dst)
    seen = _watch_writes(monkeypatch, tmp_path, dst, fail_at=None)
    assert main([str(src), str(dst), "--to", to, "--force", "--quiet"]) == 0
    assert seen and all(contents == before for _, contents in seen)
    assert all(len(beside - {"src", "out"}) == 1 for beside, _ in seen)
    weights = "model.safetensors" if to == "pt" else "tf_model.h5"
    tokenizer = ["sentencepiece.model", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert sorted(_snapshot(dst)) == sorted(["config.json", weights, *tokenizer])  # the old files are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
