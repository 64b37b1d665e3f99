"""A one-line progress bar on stderr, redrawn in place, for conversions large enough to wait for.

>>> import io
>>> out = io.StringIO()
>>> bar = ProgressBar(2 * 10**9, "writing tf_model.h5", stream=out, live=True, min_interval=0)
>>> bar.update(10**9)
>>> bar.close()
>>> out.getvalue().splitlines()[-1].split("|")[0].strip()
'writing tf_model.h5 100%'
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Below this many bytes a conversion takes a blink; no bar.
LARGE_BYTES = 100 * 10**6
_WIDTH = 24


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file sizes are usually shown)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class ProgressBar:
    """`update(n)` after each n bytes written; `close()` draws the final state and ends the line.

    Drawing happens only when `live` (by default: when the stream is a terminal), at most every
    `min_interval` seconds.
    """

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        live: bool | None = None,
        min_interval: float = 0.1,
    ):
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.live = self._is_terminal(self.stream) if live is None else live
        self.min_interval = min_interval
        self.done = 0
        self._start = time.monotonic()
        self._drawn_at = -float("inf")
        self._closed = False

    @staticmethod
    def _is_terminal(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.live and now - self._drawn_at >= self.min_interval:
            self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(fraction * _WIDTH)
        elapsed = max(now - self._start, 1e-9)
        rate = human_bytes(self.done / elapsed)
        line = (
            f"{self.label} {fraction:4.0%} |{'#' * filled}{'.' * (_WIDTH - filled)}| "
            f"{human_bytes(self.done)} / {human_bytes(self.total)}  {rate}/s"
        )
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()

    def close(self, complete: bool = True) -> None:
        """End the line; `complete` draws 100% (an aborted run keeps the bar where it stopped)."""
        if self._closed:
            return
        self._closed = True
        if self.live:
            self.done = max(self.done, self.total) if complete else self.done
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(complete=exc_type is None)
