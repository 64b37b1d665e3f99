"""The `rembert-convert` command: `rembert-convert SRC DST --to {pt,tf} [options]`.

>>> main(["my-rembert", "my-rembert-tf", "--to", "tf", "--quiet"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rembert_spec.formats.safetensors import DEFAULT_MAX_SHARD_SIZE, parse_size
from rembert_spec.weights import HEADS

from . import onnx_options
from .converter import ConversionReport, VerificationFailed, convert
from .plan import DTYPES, TARGETS, dtype_refusal

if TYPE_CHECKING:
    from .onnx_export import OnnxReport

PROG = "rembert-convert"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_VERIFY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_DESCRIPTION = """\
Convert a RemBERT checkpoint between PyTorch (model.safetensors) and TensorFlow (tf_model.h5), streaming one
tensor at a time: no model is built (unless --verify) and memory stays flat whatever the model size.

SRC is a model directory in any format the library reads (model.safetensors or its shards, pytorch_model.bin,
tf_model.h5; the format is detected), a weights file, or an original Google TF checkpoint prefix
(e.g. rembert/model.ckpt, or a directory with a `checkpoint` file) given with --config. DST receives config.json,
model.safetensors (--to pt) or tf_model.h5 (--to tf), and SRC's tokenizer files when it has them
(sentencepiece.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json)."""

_EPILOG = f"""\
examples:
  {PROG} rembert rembert-tf --to tf
  {PROG} rembert-tf rembert-pt --to pt --verify
  {PROG} rembert rembert-classifier --to pt --head sequence_classification
  {PROG} rembert rembert-bf16 --to pt --dtype bfloat16 --max-shard-size 500MB
  {PROG} google/model.ckpt rembert-from-google --to pt --config google/config.json
  {PROG} rembert rembert-onnx --to onnx --int8

heads: {", ".join(HEADS)}

The output is written in a temporary directory beside DST (.DST.rembert-convert-tmp-*) and moved into place
only when complete; a killed run leaves DST as it was, and the next run removes the leftover directory.

exit status: {EXIT_OK} converted; {EXIT_ERROR} error (one line on stderr naming the file or tensor); {EXIT_USAGE} bad \
arguments; {EXIT_VERIFY} --verify found outputs above tolerance (DST not written); {EXIT_INTERRUPTED} interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", metavar="SRC", help="model directory, weights file, or Google TF checkpoint prefix")
    parser.add_argument("dst", metavar="DST", help="output model directory (created; see --force)")
    parser.add_argument(
        "--to",
        required=True,
        choices=[*TARGETS, "onnx"],
        help="pt: model.safetensors; tf: tf_model.h5 (Hugging Face's); onnx: model.onnx for ONNX Runtime "
        "(needs torch and rembert[onnx]; see docs/deployment.md)",
    )
    parser.add_argument(
        "--config",
        metavar="CONFIG_JSON",
        help="config.json to use; required for a Google TF checkpoint, else overrides SRC/config.json",
    )
    parser.add_argument(
        "--head",
        choices=list(HEADS),
        metavar="HEAD",
        help="keep only the weights this head needs (backbone required; head weights SRC lacks are initialised at "
        "load; weights it does not use are dropped and listed). Default: the head that wrote SRC, all of whose "
        f"weights must be present. One of: {', '.join(HEADS)}",
    )
    parser.add_argument(
        "--dtype",
        choices=list(DTYPES),
        help="dtype of the written weights (bfloat16 with --to pt only). Default: SRC's dtype "
        "(float32 when SRC mixes dtypes or the target cannot hold SRC's)",
    )
    parser.add_argument(
        "--max-shard-size",
        metavar="SIZE",
        type=_size,
        default="5GB",
        help=f"--to pt: split model.safetensors into shards of at most SIZE (e.g. 500MB, 2GiB; default 5GB = "
        f"{DEFAULT_MAX_SHARD_SIZE} bytes). tf_model.h5 is always one file",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="before DST is moved into place, build PyTorch and TensorFlow models from SRC and DST, run a sample "
        "batch, print the max abs difference per head, and fail (exit 3) above tolerance",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        metavar="TOL",
        help="--verify limit, relative to max(1, largest output). Default 1e-4, or 1e-2 / 5e-2 when --dtype "
        "float16 / bfloat16 rounds the weights",
    )
    onnx_options.add_to(parser)
    parser.add_argument(
        "--force", action="store_true", help="replace a non-empty DST (only once the new one is complete)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors; no progress bar")
    return parser


def _size(text: str) -> str:
    """argparse type of --max-shard-size: checked here, passed on as written."""
    try:
        parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that the staging directory is removed on the way out."""


@contextmanager
def _terminate_as_exception() -> Iterator[None]:
    def handler(signum, frame):
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _print_report(report: ConversionReport) -> None:
    print("\n".join(report.lines()), flush=True)


def run(args: argparse.Namespace) -> ConversionReport | OnnxReport:
    """Convert (or export, `--to onnx`) as the parsed arguments say; raises what `convert` raises."""

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    if args.to == "onnx":
        return onnx_options.run(args, log)

    return convert(
        args.src,
        args.dst,
        args.to,
        config=args.config,
        head=args.head,
        dtype=args.dtype,
        max_shard_size=args.max_shard_size,
        verify=args.verify,
        tolerance=args.tolerance,
        force=args.force,
        progress=False if args.quiet else None,
        log=log,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `rembert-convert`; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    refusal = onnx_options.refusal(args) or (None if args.to == "onnx" else dtype_refusal(args.to, args.dtype))
    if refusal:
        _error(refusal)
        return EXIT_USAGE
    if args.tolerance is not None and not args.tolerance > 0:
        _error(f"--tolerance must be positive, got {args.tolerance}")
        return EXIT_USAGE
    try:
        with _terminate_as_exception():
            report = run(args)
    except VerificationFailed as e:
        if not args.quiet:
            _print_report(e.report)
        _error(_one_line(e))
        return EXIT_VERIFY
    except (KeyboardInterrupt, _Terminated):
        _error(f"interrupted; {args.dst} left as it was")
        return EXIT_INTERRUPTED
    except Exception as e:  # every failure is one line naming the file or tensor, never a traceback
        _error(_one_line(e))
        return EXIT_ERROR
    if not args.quiet:
        _print_report(report)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
