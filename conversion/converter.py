"""`convert(src, dst, to)`: one checkpoint in, another format out, one tensor block at a time, no model built.

The loop is the weight spec's: open the source through it (`open_checkpoint`), decide the head and the tensors
(`plan.make_plan`), and write each tensor under the target format's name and layout (`write_weights`, which
streams a block of rows at a time). The output is
assembled in a staging directory beside DST and moved into place only when complete (`staging`).

>>> report = convert("my-rembert", "my-rembert-tf", to="tf")  # doctest: +SKIP
>>> report.head, [p.name for p in report.files]  # doctest: +SKIP
('masked_lm', ['config.json', 'tf_model.h5'])
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rembert_spec import RemBertConfig
from rembert_spec.checkpoint import CONFIG_NAME, SpecCheckpoint, open_checkpoint, write_weights
from rembert_spec.fit import name_list
from rembert_spec.formats import FORMATS, get_format
from rembert_spec.formats.safetensors import DEFAULT_MAX_SHARD_SIZE, parse_size
from rembert_spec.weights import HEADS, get_head

from .plan import DTYPES, TARGETS, ConversionError, ConversionPlan, describe_head, dtype_refusal, make_plan
from .progress import LARGE_BYTES, ProgressBar, human_bytes
from .staging import OutputExistsError, Staging, clean_leftovers, is_empty

if TYPE_CHECKING:
    from .verify import VerifyResult

# Tokenizer files of a model directory, copied unchanged when the source has them.
TOKENIZER_FILES = (
    "sentencepiece.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


class VerificationFailed(ConversionError):
    """`verify=True` found outputs further apart than the tolerance; DST was left as it was."""

    def __init__(self, message: str, report: ConversionReport):
        super().__init__(message)
        self.report = report


@dataclass
class ConversionReport:
    """What a conversion did. `lines()` is what the command prints."""

    src: Path
    dst: Path
    source_format: str
    target_format: str
    head: str
    head_detected: bool
    dtype: str
    tensors: int
    bytes: int
    files: list[Path] = field(default_factory=list)
    tokenizer_files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    initialised_at_load: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verification: VerifyResult | None = None
    seconds: float = 0.0

    def _written_names(self) -> list[str]:
        return [p.name for p in self.files if p.name not in self.tokenizer_files]

    def lines(self) -> list[str]:
        how = "detected" if self.head_detected else "asked for"
        lines = [
            f"converted {self.src} ({self.source_format}) -> {self.dst} ({self.target_format}, {self.dtype})",
            f"  head: {describe_head(self.head)}, {how}",
            f"  wrote {self.tensors} tensors ({human_bytes(self.bytes)}): {', '.join(self._written_names())}",
        ]
        if self.tokenizer_files:
            lines.append(f"  copied tokenizer files: {', '.join(self.tokenizer_files)}")
        lines += _listing("skipped", "tensor(s) that are not model weights", self.skipped)
        lines += _listing("dropped", "weight(s) the head does not use", self.dropped)
        lines += _listing("not in the source,", "weight(s) initialised at load", self.initialised_at_load)
        lines += [f"  note: {note}" for note in self.notes]
        if self.verification is not None:
            lines += self.verification.lines()
        lines.append(f"done in {self.seconds:.1f} s")
        return lines


def _listing(verb: str, what: str, names: list[str]) -> list[str]:
    return [f"  {verb} {len(names)} {what}: {name_list(names)}"] if names else []


# -- checks before anything is read ------------------------------------------------------------------------


def _source_directory(src: Path) -> Path:
    """Where a source's config.json and tokenizer files live: SRC itself, or the directory of a file / prefix."""
    return src if src.is_dir() else src.parent


def _check_options(to: str, head: str | None, dtype: str | None, max_shard_size: int | str) -> str:
    if to not in TARGETS:
        raise ConversionError(f"unknown target {to!r}; use one of: {', '.join(TARGETS)}")
    if head is not None and head not in HEADS:
        raise ConversionError(f"unknown head {head!r}; known heads: {', '.join(HEADS)}")
    if dtype is not None and dtype not in DTYPES:
        raise ConversionError(f"unknown dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    refusal = dtype_refusal(to, dtype)
    if refusal:
        raise ConversionError(refusal)
    try:
        parse_size(max_shard_size)
    except ValueError as e:
        raise ConversionError(f"--max-shard-size: {e}") from None
    return TARGETS[to]


def _looks_like_a_weights_file(path: Path) -> bool:
    """A name with a checkpoint file's suffix (model.safetensors, tf_model.h5, pytorch_model.bin, ...)."""
    return bool(path.suffix) and not path.is_dir() and any(fmt.recognises(path) for fmt in FORMATS.values())


def _sources(src: Path, config: str | os.PathLike | RemBertConfig | None) -> list[Path]:
    """What the conversion reads and DST may therefore not replace, symlinks resolved: SRC (a directory, a file or
    a Google prefix), the directory of config.json and tokenizer files, and a --config file."""
    paths = [src, _source_directory(src)]
    if isinstance(config, (str, os.PathLike)):
        paths.append(Path(config))
    return [path.resolve() for path in paths]


def _check_paths(src: Path, dst: Path, force: bool, config: str | os.PathLike | RemBertConfig | None = None) -> Path:
    """Refuse what would lose data, before anything is written; remove what killed runs left. Returns DST as an
    absolute path."""
    if not src.exists() and not Path(f"{src}.index").is_file():
        raise ConversionError(f"{src}: no such model directory, file or TensorFlow checkpoint prefix")
    target = Path(os.path.abspath(dst))  # "." and "out/" get a name; a symlink stays a symlink
    cwd = Path.cwd().resolve()
    if not target.name or target.resolve() == cwd or target.resolve() in cwd.parents:
        raise ConversionError(f"{dst}: DST would replace the current directory (or /); name a directory for it")
    if _looks_like_a_weights_file(target):
        weights = get_format(TARGETS["pt"]).file_names[0], get_format(TARGETS["tf"]).file_names[0]
        raise ConversionError(
            f"{dst}: DST is a directory (it receives config.json and {weights[0]} or {weights[1]}), but "
            f"{target.name!r} is a weights file's name; name the output directory instead"
        )
    resolved = target.resolve()  # links in DST and its parents followed: where the files would really go
    source_dir = src.resolve() if src.is_dir() else None
    for source in _sources(src, config):
        if resolved == source or resolved in source.parents:
            raise ConversionError(f"{dst}: DST would replace the source {src} or part of it; choose another DST")
    if source_dir is not None and source_dir in resolved.parents:
        raise ConversionError(
            f"{dst}: DST is inside the source directory {src}; choose a DST outside it (e.g. beside it)"
        )
    clean_leftovers(target)
    if not force and not is_empty(target):
        raise OutputExistsError(f"{dst}: exists and is not empty; pass --force to replace it")
    return target


def _load_config(src: Path, config: str | os.PathLike | RemBertConfig | None) -> RemBertConfig:
    if isinstance(config, RemBertConfig):
        return config
    path = Path(config) if config is not None else _source_directory(src) / CONFIG_NAME
    if config is None and not path.is_file():
        raise ConversionError(
            f"{path}: no such config file; a Google TF checkpoint (or a bare weights file) needs --config CONFIG_JSON"
        )
    try:
        return RemBertConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ConversionError(str(e)) from None


# -- writing ------------------------------------------------------------------------------------------------


def _write_config(directory: Path, config: RemBertConfig, plan: ConversionPlan, fmt: str) -> Path:
    saved = config.replace()
    head = get_head(plan.head)
    saved.extra["architectures"] = [head.pt_class if fmt == TARGETS["pt"] else head.tf_class]
    saved.extra["torch_dtype"] = plan.dtype.name
    return saved.save_pretrained(directory)


def _write_weights(
    directory: Path,
    checkpoint: SpecCheckpoint,
    plan: ConversionPlan,
    fmt: str,
    max_shard_size: int | str,
    progress: bool | None,
) -> list[Path]:
    live = progress if progress is not None else (None if plan.nbytes >= LARGE_BYTES else False)
    name = get_format(fmt).file_names[0]
    with ProgressBar(plan.nbytes, f"writing {name}", live=live) as bar:
        try:
            return write_weights(
                directory, fmt, plan.entries, checkpoint.read, plan.head, plan.dtype, max_shard_size, bar.update
            )
        except OSError as e:
            if e.filename is None and "cannot write tensor" not in str(e):
                raise OSError(e.errno, f"{directory}: writing {name} failed ({e.strerror or e})") from e
            raise


def _copy_tokenizer(src: Path, directory: Path) -> list[str]:
    source_dir = _source_directory(src)
    copied = []
    for name in TOKENIZER_FILES:
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, directory / name)
            copied.append(name)
    return copied


def _verify(
    src: Path,
    staging: Path,
    config: RemBertConfig,
    plan: ConversionPlan,
    tolerance: float | None,
    log: Callable[[str], None],
) -> VerifyResult:
    """Compare models from SRC and the staged output; the default tolerance follows what the cast did."""
    from .verify import TOLERANCES, verify

    if tolerance is None:
        tolerance = TOLERANCES["lossless"] if plan.lossless else TOLERANCES[plan.dtype.name]
    return verify(src, staging, config, plan.head, plan.head_complete, tolerance, log)


# -- the conversion ----------------------------------------------------------------------------------------


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    to: str,
    *,
    config: str | os.PathLike | RemBertConfig | None = None,
    head: str | None = None,
    dtype: str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    verify: bool = False,
    tolerance: float | None = None,
    force: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> ConversionReport:
    """Convert the checkpoint at `src` into a model directory `dst` for `to` ("pt": model.safetensors,
    "tf": tf_model.h5), with config.json and the source's tokenizer files.

    `config`: a config.json path (or RemBertConfig) to use instead of SRC's own; required for Google checkpoints.
    `head`: keep only this head's weights (see rembert_spec.weights.HEADS); default: the head that wrote SRC.
    `dtype`: float32, float16 or bfloat16 (pt only); default: the source's dtype.
    `verify`: compare PyTorch and TensorFlow models from SRC and DST on a sample batch before installing DST.
    `force`: replace a non-empty DST (only once the new one is complete). `progress`: None = a bar on a
    terminal for large checkpoints, True / False = always / never. Raises ConversionError (a ValueError),
    CheckpointError (a ValueError) or OSError, naming the tensor or file; SRC is never written to.
    """
    started = time.monotonic()
    src, dst = Path(src), Path(dst)
    fmt = _check_options(to, head, dtype, max_shard_size)
    target = _check_paths(src, dst, force, config)
    config = _load_config(src, config)
    with open_checkpoint(src, config) as checkpoint:
        plan = make_plan(checkpoint, config, fmt, head, dtype)
        staging = Staging.create(target)
        try:
            report = _write_output(staging.path, src, dst, checkpoint, config, plan, fmt, max_shard_size, progress)
            if verify:
                report.verification = _verify(src, staging.path, config, plan, tolerance, log)
                _check_verification(report, dst, started)
            staging.install()
        except BaseException:
            staging.discard()
            raise
    report.seconds = time.monotonic() - started
    return report


def _write_output(
    directory: Path,
    src: Path,
    dst: Path,
    checkpoint: SpecCheckpoint,
    config: RemBertConfig,
    plan: ConversionPlan,
    fmt: str,
    max_shard_size: int | str,
    progress: bool | None,
) -> ConversionReport:
    """Write config.json, the weights and the tokenizer files into `directory`; report them as DST's."""
    files = [_write_config(directory, config, plan, fmt)]
    files += _write_weights(directory, checkpoint, plan, fmt, max_shard_size, progress)
    copied = _copy_tokenizer(src, directory)
    return ConversionReport(
        src=src,
        dst=dst,
        source_format=checkpoint.format,
        target_format=fmt,
        head=plan.head,
        head_detected=plan.head_detected,
        dtype=plan.dtype.name,
        tensors=len(plan.entries),
        bytes=plan.nbytes,
        files=[dst / p.name for p in files] + [dst / name for name in copied],
        tokenizer_files=copied,
        skipped=plan.skipped,
        dropped=plan.dropped,
        initialised_at_load=plan.initialised_at_load,
        notes=list(plan.notes),
    )


def _check_verification(report: ConversionReport, dst: Path, started: float) -> None:
    result = report.verification
    if result is not None and not result.ok:
        report.seconds = time.monotonic() - started
        raise VerificationFailed(
            f"{dst}: --verify: max abs difference {result.max_abs_difference:.3g} is above the limit "
            f"{result.limit:.3g}; DST was not written",
            report,
        )
