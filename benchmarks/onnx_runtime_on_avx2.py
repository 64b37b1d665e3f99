"""ONNX Runtime as it runs on a CPU with AVX2 but without AVX-512, VNNI or bfloat16: timeable on a newer CPU.

oneDNN, MKL and ATen take an ISA cap from the environment; ONNX Runtime has none, it picks its kernels from CPUID.
`environment()` returns the variables under which a child Python process imports a copy of the installed
onnxruntime whose CPUID instructions were rewritten as UD2, with benchmarks/cpuid_avx2.c preloaded to answer each
one as an AVX2-only CPU would. The kernels it then picks run natively, so their times mean something (valgrind also
presents such a CPU, but runs far slower). `int8_products_exact(127)` is False under it (the AVX2 kernel's
saturating 16-bit sums), which the child checks before it times anything.

Needs a C compiler (cc) and objdump. The copy is built once per onnxruntime version and recipe, under
benchmarks/.cache/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import CACHE, ROOT

SHIM_SOURCE = Path(__file__).resolve().parent / "cpuid_avx2.c"
CPUID, UD2 = b"\x0f\xa2", b"\x0f\x0b"


def environment(cache: Path = CACHE) -> dict[str, str]:
    """PYTHONPATH (the rewritten copy, then this repository) and LD_PRELOAD for a child process whose
    `import onnxruntime` sees an AVX2-only CPU; the copy is built under `cache` once."""
    import onnxruntime

    package = Path(onnxruntime.__file__).resolve().parent
    # A new onnxruntime, shim or rewrite gets a new copy: an old one would answer for code that changed.
    recipe = hashlib.sha256(SHIM_SOURCE.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:12]
    built = cache / f"onnxruntime-avx2-{onnxruntime.__version__}-{recipe}"
    if not (built / ".complete").exists():
        _build(package, built)
    return {"PYTHONPATH": f"{built / 'site'}{os.pathsep}{ROOT}", "LD_PRELOAD": str(built / "cpuid_avx2.so")}


def _build(package: Path, built: Path) -> None:
    """The shim and the rewritten copy, written in a scratch directory and renamed into place when whole."""
    missing = [tool for tool in ("cc", "objdump") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"holding ONNX Runtime to AVX2 needs {' and '.join(missing)} (apt-get install gcc binutils)")
    built.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{built.name}-", dir=built.parent))
    try:
        subprocess.run(
            ["cc", "-O2", "-shared", "-fPIC", "-o", str(scratch / "cpuid_avx2.so"), str(SHIM_SOURCE)],
            check=True,
            capture_output=True,
        )
        copy = scratch / "site" / "onnxruntime"
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
        libraries = sorted((copy / "capi").glob("onnxruntime_pybind11_state*.so"))
        if len(libraries) != 1:
            raise RuntimeError(f"{copy / 'capi'}: expected one onnxruntime_pybind11_state library, found {libraries}")
        if rewrite_cpuid(libraries[0]) == 0:
            raise RuntimeError(f"{libraries[0]}: no CPUID instruction found; ONNX Runtime would still see this CPU")
        (scratch / ".complete").touch()
        shutil.rmtree(built, ignore_errors=True)
        scratch.rename(built)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def rewrite_cpuid(library: Path) -> int:
    """Rewrite every CPUID instruction objdump finds in `library` as UD2, in place; returns how many."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True)
    listing.check_returncode()
    addresses = [int(a, 16) for a in re.findall(r"^\s*([0-9a-f]+):\s+cpuid\b", listing.stdout, re.MULTILINE)]
    sections = subprocess.run(["objdump", "-h", str(library)], capture_output=True, text=True, check=True).stdout
    # "  12 .text  00a1b2c3  0000000000012340  0000000000012340  00012340  2**6": size, VMA, LMA, file offset
    spans = [
        (int(vma, 16), int(size, 16), int(offset, 16))
        for size, vma, offset in re.findall(
            r"^\s*\d+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", sections, re.MULTILINE
        )
    ]
    code = bytearray(library.read_bytes())
    for address in addresses:
        offset = next(off + address - vma for vma, size, off in spans if vma <= address < vma + size)
        if code[offset : offset + 2] != CPUID:
            raise RuntimeError(f"{library}: objdump lists CPUID at {address:#x}, but the bytes there are not 0F A2")
        code[offset : offset + 2] = UD2
    library.write_bytes(code)
    return len(addresses)


def int8_products_exact(weight_limit: int) -> bool:
    """Does ONNX Runtime's int8 matmul give the exact sum of products of inputs 255 and weights `weight_limit`?
    False for 127 on an AVX2-only kernel: it adds pairs of products in a saturating 16-bit sum."""
    import numpy as np
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    inputs = np.full((4, 64), 255, dtype=np.uint8)
    weight = np.full((64, 16), weight_limit, dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "int8_products",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, 16])],
        [numpy_helper.from_array(weight, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"a": inputs})[0]
    return bool((got == inputs.astype(np.int64) @ weight.astype(np.int64)).all())


def check_held() -> None:
    """Raise unless this process's ONNX Runtime takes the AVX2-only int8 kernel (call it in the child)."""
    if int8_products_exact(127):
        raise RuntimeError("ONNX Runtime was not held to AVX2: full-range int8 weights came out exact")
