"""The small interface every checkpoint format's reader implements: named tensors read one at a time; and the
reader of shards listed by an index file, which any format's reader plugs into.

Readers hand out numpy arrays (memory-mapped where the format allows) so that a consumer — a backend
placing weights in its variables, or the converter writing another format — holds at most one tensor
at a time. Every error raised while reading names the file, and the tensor where there is one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe, or does not fit the model. The message names the file."""


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: np.dtype


class TensorReader:
    """Named tensors in one checkpoint (a file, or a set of shards read as one).

    Subclasses implement `keys`, `info` and `read`. `read` returns an array that may be a read-only
    memory map: copy it if you need to write into it.
    """

    path: Path

    def keys(self) -> list[str]:
        raise NotImplementedError

    def info(self, key: str) -> TensorInfo:
        raise NotImplementedError

    def read(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __contains__(self, key: str) -> bool:
        return key in set(self.keys())

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _missing(self, key: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: no tensor named {key!r}")


class ShardedReader(TensorReader):
    """Shards listed by an index file (model.safetensors.index.json, pytorch_model.bin.index.json) read as one.

    `open_shard(path)` opens one shard with the format's own reader.
    """

    def __init__(self, index_path: str | os.PathLike, open_shard: Callable[[Path], TensorReader]):
        self.path = Path(index_path)
        directory = self.path.parent
        weight_map = _read_index(self.path)
        self._readers: dict[str, TensorReader] = {}
        self._where: dict[str, TensorReader] = {}
        try:
            for filename in dict.fromkeys(weight_map.values()):
                self._readers[filename] = open_shard(_shard_path(self.path, directory, filename))
            for key, filename in weight_map.items():
                reader = self._readers[filename]
                if key not in reader:
                    raise CheckpointError(f"{self.path}: index puts tensor {key!r} in {filename}, which lacks it")
                self._where[key] = reader
        except BaseException:
            self.close()
            raise

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def info(self, key: str) -> TensorInfo:
        if key not in self._where:
            raise self._missing(key)
        return self._where[key].info(key)

    def read(self, key: str) -> np.ndarray:
        if key not in self._where:
            raise self._missing(key)
        return self._where[key].read(key)

    def close(self) -> None:
        for reader in getattr(self, "_readers", {}).values():
            reader.close()


def _read_index(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: shard index is not valid JSON ({e})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CheckpointError(f"{path}: shard index lacks a weight_map of tensor name -> file name")
    return weight_map


def _shard_path(index_path: Path, directory: Path, filename: str) -> Path:
    """A shard must be a file directly inside the model directory: no paths, no links out of it. The one link
    allowed leads where the index's own link leads: a Hugging Face Hub cache snapshot links every file of a repo
    to the repo's blobs."""
    if not filename or filename != Path(filename).name or filename in (".", "..") or "\\" in filename:
        raise CheckpointError(f"{index_path}: refused shard file name {filename!r}: it leaves the model directory")
    path = directory / filename
    if path.is_symlink() or path.exists():
        allowed = {directory.resolve()}
        if index_path.is_symlink():
            allowed.add(index_path.resolve().parent)
        if path.resolve().parent not in allowed or (path.is_symlink() and not index_path.is_symlink()):
            raise CheckpointError(f"{index_path}: refused shard {filename!r}: it is a link")
    return path
