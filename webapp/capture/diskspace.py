"""Disk space for a capture: the expected data rate, the check before a capture starts, and the
cheap periodic check while it records.

One rule, one place: the rate a capture writes at comes from :func:`stream_rate`; the margin
the folder must hold before a start is ``CaptureSettings.disk_margin_s`` seconds of it; while
recording, less than that left is warned about once and less than :func:`reserve_bytes` stops
the capture cleanly, so the modules are stopped, the streams drained and closed and
``capture.json`` written before the disk runs out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webapp.capture.settings import SettingsError
from webapp.openapi.model import BLOCK_VALUES
from webapp.openapi.stream import HEADER_SIZE

SIGNAL_DATA_PREFIX = 8
"""Bytes of a SignalData message between its header and its values (count, reserved, signal
id, number of values)."""
BYTES_PER_VALUE = 3
"""Int24 samples."""
CAPTURE_JSON_ALLOWANCE = 1 << 20
"""Room kept for writing capture.json at the end (its temporary copy and the final one)."""
STOP_RESERVE_S = 3.0
"""Seconds of data still arriving after the stop is decided: the stop requests, the master
stopped last, the drain."""
DISK_STOP = "stopped before the disk ran out"
"""How the reason of a capture stopped for a full disk begins."""
CHECK_INTERVAL_S = 0.5
"""How often free space is looked at while recording (one statvfs, not one per write)."""


class DiskSpaceError(SettingsError):
    """The capture folder cannot take the capture; the message names the path and figures."""

    def __init__(self, message: str) -> None:
        super().__init__("folder", message)


def stream_rate(channels: int, sample_rate: int) -> float:
    """Bytes per second that ``channels`` signals at ``sample_rate`` write: 24-bit values in
    SignalData messages of :data:`BLOCK_VALUES` values, each with its header and prefix."""
    per_message = HEADER_SIZE + SIGNAL_DATA_PREFIX + BYTES_PER_VALUE * BLOCK_VALUES
    return channels * sample_rate * per_message / BLOCK_VALUES


def expected_rate(s: Any) -> float:
    """Bytes per second a session's capture writes: its enabled channels (all of each module
    but those its settings disable, until the setup says) at its sample rate."""
    channels = 0
    for m in s.modules:
        if m.channels:
            channels += len(m.channels)
            continue
        total = m.info.input_channels if m.info is not None else 0
        overrides = s.settings.channel_overrides(m.address)
        channels += sum(
            1
            for c in range(1, total + 1)
            if getattr(overrides.get(c), "enabled", True) is not False
        )
    return stream_rate(channels, s.sample_rate)


def reserve_bytes(rate: float) -> int:
    """Free space below which a recording is stopped: what still arrives while it stops, and
    room for capture.json."""
    return int(rate * STOP_RESERVE_S) + CAPTURE_JSON_ALLOWANCE


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use in ``folder``'s file system."""
    return shutil.disk_usage(folder).free


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _existing(folder: Path) -> Path:
    """The folder, or the nearest parent of it that exists (where it would be created)."""
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            return candidate
    return Path(".")


def check_folder(folder: Path, rate: float, margin_s: float) -> None:
    """Before anything is sent to a module: the folder (or the parent it would be made in) is
    writable and its file system has room for ``margin_s`` seconds at ``rate`` plus the stop
    reserve. Creates nothing. Raises :class:`DiskSpaceError` naming the path and figures."""
    where = _existing(Path(folder))
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=where)
    except OSError as exc:
        raise DiskSpaceError(
            f"the capture folder {folder} cannot be written ({where}: {exc.strerror or exc})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    free = free_bytes(where)
    need = int(rate * margin_s) + reserve_bytes(rate)
    if free < need:
        raise DiskSpaceError(
            f"{where} has {_mb(free)} free; the capture needs at least {_mb(need)} "
            f"({margin_s:g} s at the expected {_mb(rate)}/s, plus {_mb(reserve_bytes(rate))} "
            "to stop and write capture.json)"
        )


class DiskWatch:
    """While recording: looks at the free space every :data:`CHECK_INTERVAL_S` and says when
    it gets low (once) and when the recording must stop."""

    def __init__(
        self,
        folder: Path,
        rate: float,
        margin_s: float,
        clock: Callable[[], float],
        free: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.folder = Path(folder)
        self.rate = rate
        self.margin_s = margin_s
        self._clock = clock
        self._free = free
        self._next = 0.0
        self.warned = False
        self.reserve = reserve_bytes(rate)
        self.left_s: float | None = None
        """Seconds of recording left at the last check (None before the first)."""

    def check(self) -> tuple[str | None, str | None]:
        """(a warning to give now, or None; a reason to stop now, or None)."""
        now = self._clock()
        if now < self._next:
            return None, None
        self._next = now + CHECK_INTERVAL_S
        try:
            free = self._free(self.folder)
        except OSError as exc:
            return None, f"the capture folder {self.folder} cannot be read: {exc.strerror or exc}"
        left_s = (free - self.reserve) / self.rate if self.rate > 0 else float("inf")
        self.left_s = max(0.0, left_s)
        if free < self.reserve:
            return None, (
                f"the disk of {self.folder} is nearly full ({_mb(free)} free, "
                f"{_mb(self.reserve)} kept to stop and write capture.json)"
            )
        if not self.warned and left_s < self.margin_s:
            self.warned = True
            return (
                f"the disk of {self.folder} is getting full: {_mb(free)} free, about "
                f"{max(0.0, left_s):.0f} s of recording left at {_mb(self.rate)}/s",
                None,
            )
        return None, None
