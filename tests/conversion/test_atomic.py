"""Nothing lost: DST appears complete or not at all, an old DST survives until its replacement is complete,
kills leave only recognisable dot-directories that the next run removes, and SRC is never written."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rembert_spec.streaming
from conversion import OutputExistsError, convert
from conversion.cli import main
from conversion.staging import OLD_MARKER, TMP_MARKER, clean_leftovers, leftovers
from rembert_spec import RemBertConfig
from tests.conftest import tiny_config
from tests.conversion.helpers import make_model

ROOT = Path(__file__).resolve().parents[2]

# ~310 MB of float32: large enough that a kill lands mid-write.
LARGE = dict(
    vocab_size=60000,
    hidden_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    input_embedding_size=256,
    output_embedding_size=1024,
    intermediate_size=1024,
    max_position_embeddings=64,
)


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _stray(parent: Path, name: str) -> list[Path]:
    return sorted(parent.glob(f".{name}.rembert-convert-*"))


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("large") / "src", RemBertConfig(**LARGE), tokenizer=True)


def _start(src: Path, dst: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "conversion.cli", str(src), str(dst), "--to", "tf", "--quiet", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _interrupt_mid_write(process: subprocess.Popen, dst: Path, sig: int, min_bytes: int = 20 * 10**6) -> None:
    """Send `sig` once a staging directory beside DST holds a weights file of at least `min_bytes`; fail at once
    if such a file grows in DST itself (the output must be assembled beside it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if dst.is_dir() and any(f.stat().st_size >= min_bytes for f in dst.rglob("*") if f.is_file()):
            process.kill()
            process.wait(30)
            pytest.fail(f"the converter writes into {dst} itself, not into a staging directory beside it")
        for stage in dst.parent.glob(f".{dst.name}.{TMP_MARKER}-*"):
            if any(f.stat().st_size >= min_bytes for f in stage.glob("*") if f.is_file()):
                process.send_signal(sig)
                process.wait(30)
                return
        if process.poll() is not None:
            pytest.fail(f"the converter finished before it could be interrupted: {process.communicate()}")
        time.sleep(0.002)
    process.kill()
    pytest.fail("no staging directory appeared")


def test_sigkill_mid_write_leaves_no_dst(large, tmp_path):
    dst = tmp_path / "out"
    before = _snapshot(large)
    process = _start(large, dst, "--dtype", "float16")
    _interrupt_mid_write(process, dst, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert not dst.exists()
    stray = _stray(tmp_path, "out")
    assert stray and all(TMP_MARKER in p.name for p in stray), stray
    # the next run removes the leftover and converts
    assert main([str(large), str(dst), "--to", "tf", "--quiet"]) == 0
    assert _stray(tmp_path, "out") == []
    assert sorted(p.name for p in dst.iterdir()) == sorted(
        ["config.json", "tf_model.h5", "sentencepiece.model", "tokenizer.json", "tokenizer_config.json"]
        + ["special_tokens_map.json"]
    )
    assert _snapshot(large) == before  # SRC untouched


def test_sigkill_with_force_keeps_the_old_dst(large, tmp_path):
    dst = tmp_path / "out"
    make_model(dst, tiny_config(), seed=7)
    old = _snapshot(dst)
    process = _start(large, dst, "--force", "--dtype", "float16")
    _interrupt_mid_write(process, dst, signal.SIGKILL)
    assert _snapshot(dst) == old
    assert all(TMP_MARKER in p.name for p in _stray(tmp_path, "out"))
    clean_leftovers(dst)
    assert _stray(tmp_path, "out") == [] and _snapshot(dst) == old


def test_sigterm_cleans_up_and_exits_130(large, tmp_path):
    dst = tmp_path / "out"
    process = _start(large, dst, "--dtype", "float16")
    _interrupt_mid_write(process, dst, signal.SIGTERM)
    assert process.returncode == 130
    err = process.stderr.read().decode()
    assert "interrupted" in err and err.strip().count("\n") == 0
    assert not dst.exists() and _stray(tmp_path, "out") == []


def _fail_after(monkeypatch, blocks: int) -> None:
    real = rembert_spec.streaming.row_blocks

    def failing(array, dtype, block_bytes=rembert_spec.streaming.BLOCK_BYTES):
        failing.count += 1
        if failing.count > blocks:
            raise OSError(28, "No space left on device")
        yield from real(array, dtype, block_bytes)

    failing.count = 0
    monkeypatch.setattr(rembert_spec.streaming, "row_blocks", failing)


@pytest.mark.parametrize("to", ["pt", "tf"])
def test_error_mid_write_leaves_nothing(tmp_path, monkeypatch, capsys, to):
    src = make_model(tmp_path / "src")
    _fail_after(monkeypatch, 5)
    assert main([str(src), str(tmp_path / "out"), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "cannot write tensor" in err
    assert not (tmp_path / "out").exists() and _stray(tmp_path, "out") == []


def test_error_mid_write_with_force_keeps_old_dst(tmp_path, monkeypatch):
    src = make_model(tmp_path / "src")
    dst = make_model(tmp_path / "out", seed=3)
    old = _snapshot(dst)
    _fail_after(monkeypatch, 5)
    with pytest.raises(OSError, match="No space left"):
        convert(src, dst, to="tf", force=True)
    assert _snapshot(dst) == old and _stray(tmp_path, "out") == []


def test_non_empty_dst_needs_force(tmp_path, capsys):
    src = make_model(tmp_path / "src")
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    assert main([str(src), str(dst), "--to", "tf"]) == 1
    assert "--force" in capsys.readouterr().err
    assert (dst / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputExistsError):
        convert(src, dst, to="tf")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError):
        convert(src, tmp_path / "file", to="tf")
    assert main([str(src), str(dst), "--to", "tf", "--force", "--quiet"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "tf_model.h5"]


def test_empty_dst_directory_is_used(tmp_path):
    src = make_model(tmp_path / "src")
    (tmp_path / "out").mkdir()
    convert(src, tmp_path / "out", to="pt")
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_dst_may_not_replace_src(tmp_path, capsys):
    src = make_model(tmp_path / "src")
    before = _snapshot(src)
    for dst in (src, tmp_path, src / "model.safetensors"):
        assert main([str(src), str(dst), "--to", "pt", "--force"]) == 1
    assert main([str(src / "model.safetensors"), str(src), "--to", "pt", "--force"]) == 1
    assert "would replace the source" in capsys.readouterr().err
    assert _snapshot(src) == before


def test_dst_may_not_be_the_current_directory(tmp_path, monkeypatch, capsys):
    src = make_model(tmp_path / "src")
    (tmp_path / "work" / "here").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "here")
    for dst in (".", "./", "..", "/"):
        assert main([str(src), dst, "--to", "tf", "--force"]) == 1
    assert "would replace the current directory" in capsys.readouterr().err
    assert main([str(src), "sub/", "--to", "tf", "-q"]) == 0 and (tmp_path / "work" / "here" / "sub").is_dir()
    assert not list((tmp_path / "work").glob(".*"))


def test_installed_output_has_ordinary_permissions(tmp_path):
    src = make_model(tmp_path / "src")
    convert(src, tmp_path / "out", to="tf")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask
    for path in (tmp_path / "out").iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_leftovers_of_dead_runs_are_removed_live_ones_kept(tmp_path):
    dst = tmp_path / "out"
    dead = tmp_path / f".out.{TMP_MARKER}-{_dead_pid()}-abc123"
    dead.mkdir()
    (dead / "tf_model.h5").write_bytes(b"partial")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".out.{TMP_MARKER}-{sleeper.pid}-def456"
        live.mkdir()
        unrelated = tmp_path / ".other.rembert-convert-tmp-1-x"
        unrelated.mkdir()
        assert leftovers(dst) == [dead]
        convert(make_model(tmp_path / "src"), dst, to="tf")
        assert not dead.exists() and live.exists() and unrelated.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_old_dst_whose_replacement_never_landed_is_restored(tmp_path):
    """A kill between the two renames of the non-atomic fallback leaves DST absent and the old one aside."""
    old = make_model(tmp_path / f".out.{OLD_MARKER}-{_dead_pid()}-abc123", seed=5)
    kept = _snapshot(old)
    with pytest.raises(OutputExistsError):
        convert(make_model(tmp_path / "src"), tmp_path / "out", to="tf")
    assert _snapshot(tmp_path / "out") == kept and not old.exists()


def test_fallback_install_without_atomic_exchange(tmp_path, monkeypatch):
    import conversion.staging

    monkeypatch.setattr(conversion.staging, "_exchange", lambda a, b: False)
    src = make_model(tmp_path / "src")
    dst = make_model(tmp_path / "out", seed=9)
    convert(src, dst, to="pt", force=True)
    assert (dst / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    assert _stray(tmp_path, "out") == []
