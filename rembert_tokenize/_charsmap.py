"""Checks for sentencepiece's ``precompiled_charsmap`` before any native code walks it.

The blob is ``[u32 trie size][trie: u32 units][NUL-separated replacement strings]``. The trie is a
darts-clone double array. Both sentencepiece and ``tokenizers`` index the array without bounds checks
(``tokenizers`` panics, sentencepiece may crash), so a corrupted blob must be refused up front. Lookups
only ever walk keys of at most 5 bytes (one grapheme under 6 bytes, or one character), so checking every
node reachable within 5 steps, for every possible byte, covers every access either library can make.
"""

from __future__ import annotations

import struct

import numpy as np

_MAX_KEY_BYTES = 5
_LABELS = np.arange(1, 256, dtype=np.int64)


def _offset(units: np.ndarray) -> np.ndarray:
    return (units >> 10) << ((units & (1 << 9)) >> 6)


def _label(units: np.ndarray) -> np.ndarray:
    return units & ((1 << 31) | 0xFF)


def split_precompiled_charsmap(blob: bytes) -> tuple[np.ndarray, bytes]:
    """Return the trie units and the replacement-string pool; raise ValueError if the layout is wrong."""
    if len(blob) < 4:
        raise ValueError("precompiled_charsmap is shorter than its 4-byte header")
    (trie_bytes,) = struct.unpack("<I", blob[:4])
    if trie_bytes % 4 or trie_bytes == 0 or 4 + trie_bytes > len(blob):
        raise ValueError("precompiled_charsmap has an impossible trie size")
    units = np.frombuffer(blob, dtype="<u4", count=trie_bytes // 4, offset=4).astype(np.int64)
    pool = blob[4 + trie_bytes :]
    try:
        pool.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("precompiled_charsmap replacement strings are not valid UTF-8") from None
    return units, pool


def validate_precompiled_charsmap(blob: bytes) -> None:
    """Raise ValueError unless every lookup in the charsmap stays inside the array and the string pool."""
    units, pool = split_precompiled_charsmap(blob)
    size = len(units)
    pool_bytes = np.frombuffer(pool, dtype=np.uint8)
    bases = _offset(units[:1])
    if bases[0] >= size:
        raise ValueError("precompiled_charsmap trie root points outside the array")
    visited = set()
    for _ in range(_MAX_KEY_BYTES):
        bases = np.array([b for b in np.unique(bases).tolist() if b not in visited], dtype=np.int64)
        if bases.size == 0:
            return
        visited.update(bases.tolist())
        positions = (bases[:, None] ^ _LABELS[None, :]).ravel()
        if positions.max() >= size:
            raise ValueError("precompiled_charsmap trie points outside the array")
        matched = positions[_label(units[positions]) == np.tile(_LABELS, len(bases))]
        children = matched ^ _offset(units[matched])
        if children.size and children.max() >= size:
            raise ValueError("precompiled_charsmap trie points outside the array")
        leaves = children[((units[matched] >> 8) & 1) == 1]
        _check_leaf_values(units[leaves] & ((1 << 31) - 1), pool_bytes)
        bases = children


def _check_leaf_values(values: np.ndarray, pool: np.ndarray) -> None:
    if values.size == 0:
        return
    if values.max() > len(pool):
        raise ValueError("precompiled_charsmap rule points outside the replacement strings")
    inside = values[values < len(pool)]
    if np.any((pool[inside] & 0xC0) == 0x80):
        raise ValueError("precompiled_charsmap rule points into the middle of a character")
