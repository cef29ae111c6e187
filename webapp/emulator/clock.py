"""The emulated module clock: host UTC in 2^-32 s ticks, and the absolute block grid.

Real modules stamp their stream with PTP time (UTC, 2^-32 s ticks). The emulator's PTP time is
the host's UTC clock, so every emulated module in every process on this machine agrees on it
and streams started together carry identical header times.
"""

from __future__ import annotations

import time

from webapp.openapi.stream import TICKS_PER_SECOND, ticks_from_ns, ticks_per_sample


def now_ticks() -> int:
    return ticks_from_ns(time.time_ns())


def seconds_to_ticks(seconds: float) -> int:
    return int(round(seconds * TICKS_PER_SECOND))


def block_ticks(sample_rate: int, block_values: int) -> int:
    """Duration of one SignalData block; blocks start on multiples of it (absolute grid)."""
    return block_values * ticks_per_sample(sample_rate)


def next_grid_time(ticks: int, grid: int) -> int:
    """The first multiple of ``grid`` at or after ``ticks``."""
    return -(-ticks // grid) * grid


def elapsed_text(seconds: int) -> str:
    """HH:MM:SS as recordingStatus.timeElapsed shows it."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
