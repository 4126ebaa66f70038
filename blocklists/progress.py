"""Progress of long imports: a live counter on a terminal, a plain line now and then elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call with the number of entries read so far; ``phase`` names what is being done."""

    def __init__(self, stream: TextIO | None = None, *, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 5.0)
        self.phase = ""
        self._last = 0.0
        self._started = time.monotonic()

    def start(self, phase: str) -> None:
        self.finish()
        self.phase = phase
        self._started = time.monotonic()
        self._last = 0.0
        if not self.tty:
            self._write(f"{phase}…\n")

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._started
        rate = count / elapsed if elapsed > 0 else 0
        text = f"{self.phase}: {count:,} entries ({rate:,.0f}/s)"
        self._write(f"\r{text}\033[K" if self.tty else f"{text}\n")
        self._shown = True

    def finish(self) -> None:
        if self.tty and self.phase:
            self._write("\n")
        self.phase = ""

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # progress is a courtesy; a closed pipe must not stop the update


class QuietProgress(Progress):
    def __init__(self) -> None:
        super().__init__(interval=1e9)

    def start(self, phase: str) -> None:
        self.phase = phase

    def __call__(self, count: int) -> None:
        return None

    def finish(self) -> None:
        self.phase = ""
