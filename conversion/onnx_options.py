"""The command line's ONNX options (`--to onnx`, `--int8`, `--opset`), kept apart from the converter's own."""

from __future__ import annotations

import argparse
from collections.abc import Callable

_FLOAT_ONLY = ("dtype", "verify", "tolerance")


def add_to(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--int8",
        action="store_true",
        help="--to onnx: the encoder's linear layers in int8 (ONNX Runtime's dynamic quantization; "
        "docs/deployment.md gives the measured error)",
    )
    parser.add_argument("--opset", type=int, metavar="N", help="--to onnx: the ONNX opset (default 18; at least 17)")


def refusal(args: argparse.Namespace) -> str | None:
    """Why these arguments cannot go together, or None."""
    if args.to != "onnx":
        if args.int8 or args.opset is not None:
            return f"--{'int8' if args.int8 else 'opset'} applies to --to onnx only"
        return None
    for name in _FLOAT_ONLY:
        if getattr(args, name) not in (None, False):
            return f"--{name} does not apply to --to onnx"
    if args.opset is not None and args.opset < 17:
        return f"--opset must be at least 17 (LayerNormalization), got {args.opset}"
    return None


def run(args: argparse.Namespace, log: Callable[[str], None]):
    from .onnx_export import convert_to_onnx

    return convert_to_onnx(
        args.src,
        args.dst,
        config=args.config,
        head=args.head,
        int8=args.int8,
        opset=args.opset,
        force=args.force,
        log=log,
    )
