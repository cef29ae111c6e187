"""A progress bar for long commands, drawn on a terminal only.

``ProgressBar.for_stream(stream, label)`` gives a bar when ``stream`` is a TTY and None when it
is piped or redirected (a log file or a script reading stderr gets no carriage returns).
The bar is redrawn in place with ``\\r`` when the shown percentage changes, at most every
``min_interval_s``, and ended with a newline by ``close()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(
        self,
        stream: TextIO,
        label: str,
        min_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.label = label
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._shown: int | None = None
        self._last = float("-inf")
        self._drawn = False

    @classmethod
    def for_stream(cls, stream: TextIO, label: str) -> ProgressBar | None:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(stream, label) if tty else None

    def __call__(self, fraction: float) -> None:
        percent = int(max(0.0, min(1.0, fraction)) * 100)
        now = self.clock()
        if percent == self._shown or (percent < 100 and now - self._last < self.min_interval_s):
            return
        self._shown, self._last = percent, now
        filled = WIDTH * percent // 100
        bar = "#" * filled + "-" * (WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}%")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Ends the bar's line (if one was drawn), so the next message starts on its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
