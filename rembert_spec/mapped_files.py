"""Models whose weights live on a checkpoint file's pages, and what is said when someone changes that file in place.

`from_pretrained` gives a model the checkpoint's copy-on-write pages as its weights, without a copy: they are read
from the file when first touched, and copied only when training writes them. Replacing the file by a rename (as
this library's writers, `mv`, `git checkout` and Hugging Face's downloads do) is safe: the model keeps the old
file's pages. Writing into the file in place (`cp other.safetensors model.safetensors`, `truncate`, a tool that
rewrites it) is not: wherever training has not written, the model now reads the new bytes, and after a truncation
a forward that reaches a page past the new end kills the process (SIGBUS), as with every memory-mapping loader.

This module remembers which live models map which files (as `FileStamp`s: inode, size, modification time) and
looks again at the next `from_pretrained` (a warning naming each model and file, once) and at `save_pretrained`
of such a model (an error before anything is read when the file was truncated, which would crash the save; a
warning when it was rewritten, as the saved weights may mix the two files). `from_pretrained(..., mmap=False)`
gives a model memory of its own instead, read once, and none of this applies.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from .tensor_reader import CheckpointError, FileStamp

logger = logging.getLogger("rembert")

_ADVICE = (
    "load it again, or with mmap=False to give the model a private copy that later changes to the file cannot reach"
)


@dataclass
class _Mapped:
    model: weakref.ref
    model_name: str
    files: tuple[FileStamp, ...]
    told: set[tuple[str, str]]  # (file, change) already warned about


_LIVE: list[_Mapped] = []


def keep(model: object, model_name: str, files: Sequence[FileStamp]) -> None:
    """Remember that `model` keeps (some of) its weights on the pages of `files`."""
    _LIVE[:] = [entry for entry in _LIVE if entry.model() is not None]
    if files:
        _LIVE.append(_Mapped(weakref.ref(model), model_name, tuple(files), set()))


def _changes(entry: _Mapped) -> list[tuple[FileStamp, str]]:
    return [(stamp, change) for stamp in entry.files if (change := stamp.change()) is not None]


def _sentence(entry: _Mapped, stamp: FileStamp, change: str) -> str:
    consequence = (
        "its weights that training had not changed lived on the pages now cut off, and reading them ends the "
        "process (SIGBUS)"
        if change.startswith("truncated")
        else "its weights that training had not changed now read the new bytes"
    )
    return (
        f"{stamp.path} was {change} after {entry.model_name} was loaded from it, and that model keeps its weights "
        f"on the file's pages: {consequence}; {_ADVICE}"
    )


def warn_about_changed_files() -> None:
    """Warn, once per model and change, about live models whose checkpoint file was changed in place."""
    for entry in _LIVE:
        if entry.model() is None:
            continue
        for stamp, change in _changes(entry):
            if (str(stamp.path), change) not in entry.told:
                entry.told.add((str(stamp.path), change))
                logger.warning(_sentence(entry, stamp, change))


def check_before_save(model: object) -> None:
    """Before `model` is saved: refuse if a file it maps was truncated (reading it would crash the process); warn
    if one was rewritten in place (what is saved may mix the old file's values and the new one's)."""
    for entry in _LIVE:
        if entry.model() is not model:
            continue
        for stamp, change in _changes(entry):
            if change.startswith("truncated"):
                raise CheckpointError(f"cannot save: {_sentence(entry, stamp, change)}")
            logger.warning(f"saving anyway: {_sentence(entry, stamp, change)}")


__all__ = ["check_before_save", "keep", "warn_about_changed_files"]
