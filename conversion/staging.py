"""Output directories that appear complete or not at all.

The converter writes into a staging directory beside DST, named `.DST.rembert-convert-tmp-<pid>-<random>`, and
moves it into place only when everything is written. Replacing an existing DST (`--force`) swaps the two
directories atomically (Linux `renameat2(RENAME_EXCHANGE)`), then deletes the old one; where the swap is not
available the old DST is first renamed to `.DST.rembert-convert-old-<pid>-<random>` and restored by the next run
if a kill came between the two renames. A run killed at any point leaves only such dot-names behind, and the
next run for the same DST removes them (when the process that made them is gone).

>>> stage = Staging.create(Path("out"))  # doctest: +SKIP
>>> (stage.path / "config.json").write_text("{}")  # doctest: +SKIP
>>> stage.install()  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

TMP_MARKER = "rembert-convert-tmp"
OLD_MARKER = "rembert-convert-old"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputExistsError(FileExistsError):
    """DST exists and holds something; the converter replaces it only when asked to (`force`)."""


def _stage_name(dst: Path, marker: str) -> str:
    return f".{dst.name}.{marker}-{os.getpid()}-"


def _stage_pattern(dst: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(dst.name)}\.({TMP_MARKER}|{OLD_MARKER})-(\d+)-\w+")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def leftovers(dst: Path) -> list[Path]:
    """Staging and old directories of earlier runs for `dst` whose process is gone."""
    dst = Path(dst)
    if not dst.parent.is_dir():
        return []
    pattern = _stage_pattern(dst)
    found = []
    for path in sorted(dst.parent.iterdir()):
        match = pattern.fullmatch(path.name)
        if match and not _alive(int(match.group(2))):
            found.append(path)
    return found


def clean_leftovers(dst: Path) -> list[Path]:
    """Remove what killed runs left beside `dst`; an old DST whose replacement never landed is put back."""
    dst = Path(dst)
    removed = []
    for path in leftovers(dst):
        if OLD_MARKER in path.name and not dst.exists() and not dst.is_symlink():
            os.replace(path, dst)
            continue
        _remove(path)
        removed.append(path)
    return removed


def is_empty(path: Path) -> bool:
    """True when `path` does not exist or is an empty directory: nothing there to lose."""
    if not path.exists() and not path.is_symlink():
        return True
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2). False where the system or filesystem cannot."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, f"cannot swap {a} and {b}: {os.strerror(code)}")


@dataclass
class Staging:
    """A staging directory for `dst`; `install` moves it into place, `discard` removes it."""

    dst: Path
    path: Path

    @classmethod
    def create(cls, dst: Path) -> Staging:
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=_stage_name(dst, TMP_MARKER), dir=dst.parent))
        return cls(dst, path)

    def _settle_permissions(self) -> None:
        """Temporary files are private (0600 / 0700); the installed output gets the usual umask-based modes."""
        umask = os.umask(0)
        os.umask(umask)
        self.path.chmod(0o777 & ~umask)
        for child in self.path.rglob("*"):
            if not child.is_symlink():
                child.chmod((0o777 if child.is_dir() else 0o666) & ~umask)

    def install(self) -> None:
        """Move the complete staging directory to `dst`, replacing what is there only now."""
        self._settle_permissions()
        if is_empty(self.dst):
            if self.dst.exists():
                self.dst.rmdir()
            os.replace(self.path, self.dst)
            return
        if _exchange(self.path, self.dst):
            _remove(self.path)  # now the old DST
            return
        old = Path(tempfile.mkdtemp(prefix=_stage_name(self.dst, OLD_MARKER), dir=self.dst.parent))
        old.rmdir()
        os.replace(self.dst, old)
        try:
            os.replace(self.path, self.dst)
        except BaseException:
            os.replace(old, self.dst)  # put the old DST back before giving up
            raise
        _remove(old)

    def discard(self) -> None:
        _remove(self.path)
