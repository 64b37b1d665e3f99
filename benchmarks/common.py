"""Shared helpers for the benchmarks: full-size random checkpoints, timing, peak memory of a child process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"


def full_size_checkpoint(head: str = "masked_lm", fmt: str = "safetensors", **overrides) -> Path:
    """A google/rembert-sized checkpoint of random weights (2.3 GB), written once and reused."""
    from rembert_spec import RemBertConfig
    from rembert_spec.testing import write_random_checkpoint

    suffix = "-".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    directory = CACHE / f"full-{head}-{fmt}{'-' + suffix if suffix else ''}"
    marker = directory / ".complete"
    if not marker.exists():
        directory.mkdir(parents=True, exist_ok=True)
        write_random_checkpoint(directory, RemBertConfig(**overrides), head, seed=0, fmt=fmt)
        marker.touch()
    return directory


def run_child(code: str, env: dict[str, str] | None = None) -> dict:
    """Run python `code` in a fresh process; it prints one JSON line last. Adds wall time, CPU time (user + system)
    and peak RSS (MB)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        cwd=ROOT,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{result.stderr[-4000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["wall_s"] = wall
    report["cpu_s"] = usage.ru_utime + usage.ru_stime - cpu_before  # less sensitive to a busy machine than wall
    # ru_maxrss of children is the max over all children so far: only meaningful when it grew.
    report["peak_rss_mb"] = peak / 1024 if peak > before else report.get("peak_rss_mb", float("nan"))
    return report


def ratio_line(what: str, ours: float, theirs: float, unit: str, target: str) -> str:
    figures = f"ours {ours:9.3f} {unit:<4} HF {theirs:9.3f} {unit:<4} ratio {ours / theirs:5.2f}x"
    return f"{what:<38} {figures}  (target {target})"


def print_load_rows(what: str, best: dict[str, dict], target: str) -> None:
    """The load benchmarks' rows: wall time (against `target`), CPU time and peak RSS of our two loads ("ours",
    "ours, mmap=False") against Hugging Face's ("HF"), each side as `run_child` measured it."""
    hf = best["HF"]
    for side in ("ours", "ours, mmap=False"):
        print(ratio_line(f"  {what}, {side}", best[side]["wall_s"], hf["wall_s"], "s", target))
        print(ratio_line(f"  CPU time, {side}", best[side]["cpu_s"], hf["cpu_s"], "s", "-"))
        print(ratio_line(f"  peak RSS, {side}", best[side]["peak_rss_mb"], hf["peak_rss_mb"], "MB", "-"))


_HF_SAVE = """
import json
if {framework!r} == "tf":
    import transformers
    model = getattr(transformers, "TF" + {pt_class!r}).from_pretrained({source!r})
    model.save_pretrained({tmp!r})
else:
    import transformers
    model = getattr(transformers, {pt_class!r}).from_pretrained({source!r})
    model.save_pretrained({tmp!r}, safe_serialization=False)
print(json.dumps({{}}))
"""


def hf_saved_checkpoint(head: str = "base", framework: str = "tf") -> Path:
    """A full-size checkpoint as Hugging Face's own `save_pretrained` writes it, written once and reused:
    tf_model.h5 from its TF model (HDF5 places the datasets, most of them not 64-byte aligned) or, for
    framework "torch", pytorch_model.bin written by `torch.save` (`safe_serialization=False`)."""
    import shutil

    from rembert_spec.weights import get_head

    directory = CACHE / f"hf-{head}-{framework}"
    if not (directory / ".complete").exists():
        source = full_size_checkpoint(head, fmt="tf_h5" if framework == "tf" else "safetensors")
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        run_child(
            _HF_SAVE.format(framework=framework, pt_class=get_head(head).pt_class, source=str(source), tmp=str(tmp))
        )
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
        (directory / ".complete").touch()
    return directory


def machine_line() -> str:
    """The CPU this run measured on: cores, its vector features, and the float32 matmul speed numpy gets now
    (a loaded machine shows here first)."""
    import numpy as np

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    vector = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags]
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a  # warm-up
    start = time.perf_counter()
    for _ in range(3):
        a @ a
    gflops = 3 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    features = " ".join(vector) or "no AVX"
    return f"machine: {os.cpu_count()} cores, {features}; fp32 matmul {gflops:.0f} GFLOP/s; load average {load:.1f}"
