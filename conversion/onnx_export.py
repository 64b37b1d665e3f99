"""`rembert-convert SRC DST --to onnx [--int8]`: any checkpoint the converter reads, as an ONNX model directory.

DST receives `model.onnx` (with `model.onnx.<id>.data` beside it above 2 GB), `config.json` and SRC's tokenizer
files. The way there: SRC is converted to a PyTorch directory inside the staging directory (so every source format,
Google's included, works), loaded with rembert_pt and exported with `to_onnx` (rembert_pt/export.py: dynamic batch
and length, the padding skip in the graph, int8 through ONNX Runtime's quantizer with `--int8`). DST appears
complete or not at all, as for the other targets. Needs torch and `pip install "rembert[onnx]"`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import CONFIG_NAME
from rembert_spec.weights import HEADS, get_head

from .converter import TOKENIZER_FILES, _check_paths, convert
from .plan import describe_head
from .progress import human_bytes
from .staging import Staging

MODEL_FILE = "model.onnx"


@dataclass
class OnnxReport:
    """What an ONNX export did. `lines()` is what the command prints."""

    src: Path
    dst: Path
    source_format: str
    head: str
    int8: bool
    opset: int
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        precision = "int8 encoder (ONNX Runtime dynamic quantization)" if self.int8 else "float32"
        return [
            f"exported {self.src} ({self.source_format}) -> {self.dst}/{MODEL_FILE} (ONNX opset {self.opset}, "
            f"{precision})",
            f"  head: {describe_head(self.head)}",
            f"  wrote {', '.join(self.files)} ({human_bytes(self.bytes)})",
            "  inputs: input_ids, attention_mask, token_type_ids (int64; batch and length dynamic)",
            f"done in {self.seconds:.1f} s",
        ]


def convert_to_onnx(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    config: str | os.PathLike | RemBertConfig | None = None,
    head: str | None = None,
    int8: bool = False,
    opset: int | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> OnnxReport:
    """Export the checkpoint at `src` as an ONNX model directory `dst` (see the module docstring). `config`,
    `head` and `force` mean what they mean for `convert`."""
    from rembert_spec.onnx_files import OPSET, require_onnx

    started = time.monotonic()
    require_onnx("onnx", "onnxscript", *(("onnxruntime",) if int8 else ()))
    opset = OPSET if opset is None else opset
    if head is not None and head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known heads: {', '.join(HEADS)}")
    target = _check_paths(Path(src), Path(dst), force)
    staging = Staging.create(target)
    try:
        weights = staging.path / ".pytorch"
        log(f"reading {src} into a PyTorch model")
        converted = convert(src, weights, "pt", config=config, head=head, progress=False)
        import rembert_pt

        model = getattr(rembert_pt, get_head(converted.head).pt_class).from_pretrained(weights)
        log(f"exporting to ONNX{' (int8)' if int8 else ''}")
        model.to_onnx(staging.path / MODEL_FILE, opset=opset, int8=int8)
        model = None
        for name in (CONFIG_NAME, *TOKENIZER_FILES):
            if (weights / name).is_file():
                os.replace(weights / name, staging.path / name)
        shutil.rmtree(weights)
        files = sorted(p.name for p in staging.path.iterdir())
        size = sum((staging.path / name).stat().st_size for name in files)
        staging.install()
    except BaseException:
        staging.discard()
        raise
    return OnnxReport(
        src=Path(src),
        dst=Path(dst),
        source_format=converted.source_format,
        head=converted.head,
        int8=int8,
        opset=opset,
        files=files,
        bytes=size,
        seconds=time.monotonic() - started,
    )
