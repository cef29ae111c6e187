"""Live view of one module's stream: levels, a decimated waveform, data quality, byte rate.

Fed by the module's stream receiver(s) with the few blocks that are displayed; never used for
storage. Levels are computed from one block per signal per interval (about 5 per second), not
from every sample: the live path decodes only what a viewer sees, so the writing never waits.
RMS and peak are therefore those of the latest block of each signal (4096 samples, 31 ms at
51.2 kHz), which is what a meter needs.

Each level is a :func:`webapp.openapi.units.readout`: RMS and peak in the signal's unit, dB re
its ISO 1683 reference, dBFS re the range's full scale (from the stream's scale factor, which the
module derives from the setup's range), the highest peak since the measurement started (peak
hold) and an overload latch. The latch is set by clipping in
a decoded block, by the stream's Clipped flag and by the module's own analog-overload report
(``overload``); it holds for the measurement (a new one starts with a new ``LiveModule``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from webapp.capture.events import DataQualityChanged, Event, Levels, StreamStats, Waveform
from webapp.openapi import units
from webapp.openapi.stream import Validity, validity_names

LEVELS_INTERVAL_S = 0.2
LIVE_BLOCKS_PER_S = 1000.0
"""Budget for the whole capture: with many channels each is decoded less often than
LEVELS_INTERVAL_S (1000 channels: once a second) so the live view never crowds out receiving."""


def levels_interval(channels: int) -> float:
    """Seconds between two decoded blocks of one signal for a capture of ``channels``."""
    return max(LEVELS_INTERVAL_S, channels / LIVE_BLOCKS_PER_S)


STATS_INTERVAL_S = 1.0
WAVEFORM_POINTS = 2048
"""At most this many points per Waveform event (a block is averaged down to it)."""

RAW_FULL_SCALE = 1 << 23
"""Q23: the converter's full scale; a raw value at either end of it is clipped."""

OVERLOAD_CLIPPED = "clipped in the data"
OVERLOAD_FLAG = "the stream flagged the data as clipped"
OVERLOAD_REPORTED = "the module reported an input overload"


def db_of(rms: float, unit: str) -> float | None:
    """dB re the unit's ISO 1683 reference (:mod:`webapp.openapi.units`), to 0.01 dB; None for
    silence."""
    level = units.db(rms, unit)
    return None if level is None else round(level, 2)


def decimate(values: np.ndarray, points: int = WAVEFORM_POINTS) -> tuple[np.ndarray, int]:
    """Average groups of samples so at most ``points`` remain (a boxcar against aliasing);
    returns the values as float32 and the decimation factor."""
    factor = max(1, math.ceil(len(values) / points))
    if factor == 1:
        return values.astype(np.float32), 1
    usable = len(values) - len(values) % factor
    if factor == 2:
        pairs = values[:usable]
        return ((pairs[0::2] + pairs[1::2]) * 0.5).astype(np.float32), 2
    return values[:usable].reshape(-1, factor).mean(axis=1).astype(np.float32), factor


class LiveModule:
    """Live state of one module during a recording; shared by its receivers (one per socket).

    ``channel_of(signal_id)`` maps stream signal IDs to physical channels; the orchestrator
    provides it from the applied setup (multi-socket receivers pass their channel directly).
    """

    def __init__(
        self,
        module: str,
        publish: Callable[[Event], None],
        *,
        levels: bool = True,
        levels_interval_s: float = LEVELS_INTERVAL_S,
        stats_interval_s: float = STATS_INTERVAL_S,
    ) -> None:
        self.module = module
        self._publish = publish
        self.levels_enabled = levels
        self.levels_interval_s = levels_interval_s
        self.stats_interval_s = stats_interval_s
        self.waveform_channels: frozenset[int] | None = None
        """Channels whose blocks also go out as Waveform events; None means every channel."""
        self._lock = threading.Lock()
        self._levels: dict[int, dict[str, Any]] = {}
        self._overload: dict[int, str] = {}
        """Channels whose overload latch is set, with the first reason."""
        self._hold: dict[int, float] = {}
        """Highest peak of each channel since the measurement started (the meter's peak hold)."""
        self._validity: dict[int, int] = {}
        self.bytes_received = 0
        self.overruns = 0
        self._next_levels = time.monotonic()
        self._next_stats = time.monotonic() + stats_interval_s
        self._stats_bytes = 0
        self._stats_time = time.monotonic()

    # --- called by receivers ----------------------------------------------------------------

    def wants_block(self) -> bool:
        """True when the next block of each signal should be decoded for display."""
        return self.levels_enabled

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n

    def block(
        self,
        channel: int,
        raw: np.ndarray,
        scale: float,
        offset: float,
        unit: str,
        sample_rate: int | None,
    ) -> None:
        """A decoded block of ``channel``: raw Q23 values, physical = raw / 2^23 * scale + offset.

        Levels come from the raw integers (one float conversion, one dot product, two integer
        reductions) so a block costs tens of microseconds."""
        k = scale / RAW_FULL_SCALE
        count = len(raw)
        clipped = False
        if count:
            top, bottom = int(raw.max()), int(raw.min())
            clipped = top >= RAW_FULL_SCALE - 1 or bottom <= -RAW_FULL_SCALE
            wide = raw.astype(np.float64)
            rms = math.sqrt(float(np.dot(wide, wide)) / count) * abs(k)
            peak = max(abs(top), abs(bottom)) * abs(k)
            if offset:
                wide = wide * k + offset
                rms = math.sqrt(float(np.dot(wide, wide)) / count)
                peak = max(abs(top * k + offset), abs(bottom * k + offset))
                k = 1.0
        else:
            wide, rms, peak = None, 0.0, 0.0
        full = units.full_scale_of(scale) if scale else None
        entry = units.readout(rms, peak, unit, full, 2)
        entry["channel"] = channel
        entry["clipped"] = clipped
        with self._lock:
            hold = max(self._hold.get(channel, 0.0), peak)
            self._hold[channel] = hold
            entry["peak_hold"] = hold
            hold_dbfs = units.dbfs(hold, full)
            entry["peak_hold_dbfs"] = None if hold_dbfs is None else round(hold_dbfs, 2)
            if clipped:
                self._overload.setdefault(channel, OVERLOAD_CLIPPED)
            reason = self._overload.get(channel)
            entry["overload"] = reason is not None
            entry["overload_reason"] = reason
            self._levels[channel] = entry
        wanted = self.waveform_channels
        if wide is not None and sample_rate and (wanted is None or channel in wanted):
            reduced, factor = decimate(wide)
            self._publish(
                Waveform(
                    module=self.module,
                    channel=channel,
                    sample_rate=sample_rate / factor,
                    unit=unit,
                    values=reduced * np.float32(k),
                )
            )

    def quality(self, channel: int, signal_id: int, validity: int, stream_time_s: float) -> None:
        with self._lock:
            previous = self._validity.get(channel, 0)
            self._validity[channel] = validity
            if validity & Validity.OVERRUN:
                self.overruns += 1
            if validity & Validity.CLIPPED:
                self._latch(channel, OVERLOAD_FLAG)
        if validity != previous:
            self._publish(
                DataQualityChanged(
                    module=self.module,
                    channel=channel,
                    signal_id=signal_id,
                    validity=validity,
                    flags=validity_names(validity),
                    stream_time_s=stream_time_s,
                )
            )

    def overload(self, channel: int, reason: str = OVERLOAD_REPORTED) -> None:
        """The module reported an analog overload on ``channel`` (its ``anol`` fault)."""
        with self._lock:
            self._latch(channel, reason)

    def _latch(self, channel: int, reason: str) -> None:
        self._overload.setdefault(channel, reason)
        entry = self._levels.get(channel)
        if entry is not None and not entry.get("overload"):
            self._levels[channel] = {**entry, "overload": True, "overload_reason": reason}

    @property
    def overloaded(self) -> dict[int, str]:
        """Channels whose overload latch is set, with the reason it was set."""
        with self._lock:
            return dict(self._overload)

    def tick(self, now: float | None = None) -> bool:
        """Publish levels / stats when their interval has passed. Returns True when a new
        round of blocks should be decoded (the levels were just published)."""
        now = time.monotonic() if now is None else now
        levels_due = stats_due = False
        with self._lock:
            if now >= self._next_levels and self._levels:
                self._next_levels = now + self.levels_interval_s
                levels_due = True
                snapshot = [self._levels[c] for c in sorted(self._levels)]
            if now >= self._next_stats:
                stats_due = True
                elapsed = max(now - self._stats_time, 1e-9)
                rate = (self.bytes_received - self._stats_bytes) / elapsed
                self._stats_bytes = self.bytes_received
                self._stats_time = now
                self._next_stats = now + self.stats_interval_s
                total = self.bytes_received
        if levels_due and self.levels_enabled:
            self._publish(Levels(module=self.module, levels=snapshot))
        if stats_due:
            self._publish(StreamStats(module=self.module, bytes_received=total, rate_bps=rate))
        return levels_due

    def final_stats(self) -> None:
        """Last StreamStats with the final byte count (rate over the last interval)."""
        now = time.monotonic()
        with self._lock:
            elapsed = max(now - self._stats_time, 1e-9)
            rate = (self.bytes_received - self._stats_bytes) / elapsed
            total = self.bytes_received
        self._publish(StreamStats(module=self.module, bytes_received=total, rate_bps=rate))

    @property
    def validity(self) -> dict[int, int]:
        with self._lock:
            return dict(self._validity)
