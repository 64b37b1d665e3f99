"""What this test process has mapped where (Linux /proc/self/maps): whether a tensor lives on a file's pages."""

from __future__ import annotations

from pathlib import Path


def mapped_file(address: int) -> str | None:
    """The file mapped at `address` in this process (Linux /proc/self/maps), or None for anonymous memory."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < end:
            return fields[5] if len(fields) > 5 else None
    return None
