"""A Hugging Face Hub cache directory written for tests, in the layout huggingface_hub itself keeps.

huggingface_hub writes its cache only while downloading, and no test reaches the network, so the tests lay out
the documented structure themselves: `models--owner--name/blobs/<etag>` holds each file's bytes,
`snapshots/<commit>/<path>` links to its blob, and `refs/<revision>` names the commit. `add_repo` checks the
result with huggingface_hub's own `scan_cache_dir`, which refuses a layout it does not recognise; everything
that reads it afterwards is huggingface_hub's real code, run with HF_HUB_OFFLINE=1 (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import huggingface_hub


def files_of(directory: Path, prefix: str = "") -> dict[str, Path]:
    """Every file under `directory`, keyed by its path in a repo (under `prefix`, a subfolder)."""
    return {
        f"{prefix}{path.relative_to(directory).as_posix()}": path
        for path in sorted(Path(directory).rglob("*"))
        if path.is_file()
    }


def add_repo(cache_dir: Path, repo_id: str, files: Mapping[str, Path | bytes], revision: str = "main") -> str:
    """Put `files` (path in the repo -> a file or its bytes) in the cache as the commit `revision` points to;
    returns the commit hash."""
    contents = {name: (data if isinstance(data, bytes) else Path(data).read_bytes()) for name, data in files.items()}
    commit = hashlib.sha1(b"".join(name.encode() + hashlib.sha256(c).digest() for name, c in sorted(contents.items())))
    commit = commit.hexdigest()
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        etag = hashlib.sha256(content).hexdigest()
        blob = repo / "blobs" / etag
        blob.write_bytes(content)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    cached = {r.repo_id: r for r in huggingface_hub.scan_cache_dir(cache_dir).repos}
    assert repo_id in cached and commit in {r.commit_hash for r in cached[repo_id].revisions}
    return commit
