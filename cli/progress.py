"""A one-line progress display on stderr for long reads, silent when stderr is not a terminal.

The line shares the terminal with what the command prints: :func:`clear_progress` erases it
before each piece of output (the next report draws it again below), so a listing never reads
``listing 96.0 KiB … 193 entries# layer 0``.
"""

from __future__ import annotations

import sys
import time
from typing import ClassVar, TextIO

from layerpeek.core.layers.progress import Progress
from layerpeek.core.text import human_size

_MIN_INTERVAL = 0.1  # redraw at most ten times a second


class ProgressLine:
    """Shows bytes, rate and entries while a layer is read; scripts see nothing.

    Used as the service's progress callback; ``close()`` erases the line.
    """

    shown: ClassVar[ProgressLine | None] = None
    """The line on the terminal now, if any: what :func:`clear_progress` erases."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label = label
        self._started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._drawn < _MIN_INTERVAL:
            return
        self._drawn = now
        self._draw(self.render(progress, now - self._started))

    def render(self, progress: Progress, elapsed: float) -> str:
        """``label  12.0 MiB of 40.0 MiB  8.1 MiB/s  1,234 entries``."""
        done = human_size(progress.bytes_read)
        of = f" of {human_size(progress.total)}" if progress.total else ""
        rate = human_size(int(progress.bytes_read / elapsed)) + "/s" if elapsed > 0 else ""
        entries = f"  {progress.entries:,} entries" if progress.entries else ""
        return f"{self.label}  {done}{of}  {rate}{entries}"

    def _draw(self, text: str) -> None:
        padding = " " * max(0, self._width - len(text))
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self._width = len(text)
        ProgressLine.shown = self

    def erase(self) -> None:
        """Blank the line and put the cursor back at its start."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
        if ProgressLine.shown is self:
            ProgressLine.shown = None

    def close(self) -> None:
        self.erase()


def clear_progress() -> None:
    """Erase the progress line, if one is drawn, before output reaches the terminal."""
    if ProgressLine.shown is not None:
        ProgressLine.shown.erase()
