"""Checkpoint conversion at full size: `rembert-convert SRC DST --to tf` against Hugging Face's path.

SRC is a google/rembert-sized masked-LM checkpoint of random weights (RemBertConfig() defaults, model.safetensors,
written once into benchmarks/.cache/). Each side runs in a fresh process, imports included:

- ours:   python -m conversion.cli SRC DST --to tf --force --quiet
- theirs: TFRemBertForMaskedLM.from_pretrained(SRC, from_pt=True).save_pretrained(DST)   (transformers)

and reports its wall time (after `sync`, so that neither waits for the other's writeback) and its peak RSS
(VmHWM of the process, read from /proc just before it exits; the kernel's ru_maxrss from wait4 is shown beside
it). Targets: ours <= 0.2x theirs in time, <= 1 GB peak RSS.
Also timed, for information: ours back from tf_model.h5 to model.safetensors. The page cache is warmed first so
that neither side pays for the first read from disk.

    python benchmarks/bench_convert.py [--check] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CACHE, ROOT, full_size_checkpoint  # noqa: E402

TIME_TARGET = 0.2
MEMORY_TARGET_MB = 1024

# Appended to each child: its own peak resident set, from the kernel's per-process high-water mark.
_REPORT = """
import json as _json
with open("/proc/self/status") as _f:
    _hwm = next(int(_l.split()[1]) for _l in _f if _l.startswith("VmHWM:"))
print(_json.dumps({"vmhwm_mb": _hwm / 1024}))
"""

OURS = """
import sys
from conversion.cli import main
code = main([{src!r}, {dst!r}, "--to", {to!r}, "--force", "--quiet"])
if code:
    sys.exit(code)
"""

THEIRS = """
from transformers import TFRemBertForMaskedLM
model = TFRemBertForMaskedLM.from_pretrained({src!r}, from_pt=True)
model.save_pretrained({dst!r})
"""


def run_measured(code: str) -> dict:
    """Run `code` in a fresh Python: wall time, its VmHWM, and the kernel's rusage of exactly this child (wait4)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    os.sync()  # start from no dirty pages: neither side waits for the other's writeback
    out_path = CACHE / "bench-child-stdout.txt"
    with open(out_path, "wb") as out, open(os.devnull, "wb") as null:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", code + _REPORT], cwd=ROOT, env=env, stdout=out, stderr=null)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"benchmark child failed with exit status {process.returncode}; run it by hand to see why")
    report = json.loads(out_path.read_text().strip().splitlines()[-1])
    out_path.unlink()
    report.update(wall_s=wall, maxrss_mb=usage.ru_maxrss / 1024, cpu_s=usage.ru_utime + usage.ru_stime)
    return report


def warm(directory: Path) -> None:
    """Read the checkpoint once so that both sides find it in the page cache."""
    for path in directory.iterdir():
        with open(path, "rb") as f:
            while f.read(64 * 2**20):
                pass


def same_weights(ours: Path, theirs: Path) -> bool:
    """Spot check: the embeddings and the last layer are identical in the two tf_model.h5 files."""
    import h5py
    import numpy as np

    names: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and ("layer_._31" in name or "embeddings" in name):
            names.append(name)

    with h5py.File(ours, "r") as a, h5py.File(theirs, "r") as b:
        a.visititems(visit)
        return bool(names) and all(name in b and np.array_equal(a[name][()], b[name][()]) for name in names)


def line(what: str, ours: float, theirs: float, unit: str, target: str) -> str:
    ratio = ours / theirs if theirs else float("nan")
    return f"  {what:<22} ours {ours:9.1f} {unit:<3}  HF {theirs:9.1f} {unit:<3}  ratio {ratio:5.2f}x  target {target}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the converted checkpoints in benchmarks/.cache")
    args = parser.parse_args(argv)
    src = full_size_checkpoint("masked_lm")
    size_gb = sum(p.stat().st_size for p in src.iterdir()) / 1e9
    out = CACHE / "convert-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    warm(src)
    ours = run_measured(OURS.format(src=str(src), dst=str(out / "ours-tf"), to="tf"))
    back = run_measured(OURS.format(src=str(out / "ours-tf"), dst=str(out / "ours-pt"), to="pt"))
    theirs = run_measured(THEIRS.format(src=str(src), dst=str(out / "hf-tf")))
    identical = same_weights(out / "ours-tf" / "tf_model.h5", out / "hf-tf" / "tf_model.h5")

    time_ratio = ours["wall_s"] / theirs["wall_s"]
    time_ok, memory_ok = time_ratio <= TIME_TARGET, ours["vmhwm_mb"] <= MEMORY_TARGET_MB
    print(f"checkpoint conversion, google/rembert-sized masked LM ({size_gb:.1f} GB float32), PyTorch -> TensorFlow")
    print(line("wall time", ours["wall_s"], theirs["wall_s"], "s", f"<= {TIME_TARGET}x  {_ok(time_ok)}"))
    print(
        line(
            "peak RSS (VmHWM)",
            ours["vmhwm_mb"],
            theirs["vmhwm_mb"],
            "MB",
            f"<= {MEMORY_TARGET_MB} MB  {_ok(memory_ok)}",
        )
    )
    print(line("peak RSS (ru_maxrss)", ours["maxrss_mb"], theirs["maxrss_mb"], "MB", "-"))
    print(line("CPU time", ours["cpu_s"], theirs["cpu_s"], "s", "-"))
    print(
        f"  ours back to PyTorch (tf_model.h5 -> model.safetensors): {back['wall_s']:.1f} s, {back['vmhwm_mb']:.0f} MB"
    )
    print(f"  spot check, our tf_model.h5 vs Hugging Face's: {'identical' if identical else 'DIFFERENT'}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 1 if args.check and not (time_ok and memory_ok and identical) else 0


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
