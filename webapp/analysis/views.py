"""What the capture page plots: decimated time data, spectra and the quality timeline.

Everything here returns plain JSON-ready dicts and bounds its work by the number of points a
screen can show, not by the length of the capture:

* ``time_data``: a window of one channel. When it holds more samples than ``points`` allow, each
  point is the min and max of its bin (a min/max envelope shows every peak a screen could show);
  zoomed in far enough it returns the samples themselves. Wide windows are served from a
  per-channel overview (min/max of every 4096 samples, computed once per capture and cached) so
  an overview of an hour-long capture does not read an hour of samples.
* ``spectrum``: an averaged (Welch, Hann) RMS spectrum of a window, from at most
  ``MAX_SEGMENTS`` segments spread evenly over it; levels in dB re the unit's ISO 1683
  reference (:mod:`webapp.openapi.units`: 20 µPa, 1 µm/s², ...), written out in the answer.
* ``quality_timeline``: per channel, the intervals with validity flags set and the gaps.

Times are seconds from the capture's start (``Capture.start_ticks``).
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from webapp.analysis.model import TICKS_PER_SECOND, Channel
from webapp.analysis.reader import Capture
from webapp.openapi import units
from webapp.openapi.stream import validity_names

OVERVIEW_BIN = 4096
MAX_POINTS = 5000
MAX_SEGMENTS = 64
SPECTRUM_AVERAGES = ("linear", "peak")
NFFT_CHOICES = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
SPECTRUM_WINDOWS = {
    "hann": np.hanning,
    "flattop": lambda n: signal.get_window("flattop", n, fftbins=False),
    "uniform": np.ones,
}


@dataclass
class Overview:
    """Min/max of every OVERVIEW_BIN samples of a channel (NaN where nothing was recorded)."""

    lo: np.ndarray
    hi: np.ndarray


class OverviewCache:
    """Overviews of one capture's channels, computed on first use in one pass over the files."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._data: dict[str, Overview] | None = None

    def get(self, key: str) -> Overview:
        with self._lock:
            if self._data is None:
                self._data = _overviews(self.cap)
            return self._data[key]


def _overviews(cap: Capture) -> dict[str, Overview]:
    out = {}
    for ch in cap.channels:
        bins = -(-ch.length // OVERVIEW_BIN)
        out[ch.key] = Overview(np.full(bins, np.nan), np.full(bins, np.nan))
    chunk = OVERVIEW_BIN * 256
    for window in cap.iter_windows(chunk=chunk, dtype=np.float32, reuse=True):
        for key, (i0, values) in window.parts.items():
            ov = out[key]
            # Windows start on the capture's grid, not the channel's bins: split at bin edges.
            first = i0 // OVERVIEW_BIN
            head = min(len(values), (first + 1) * OVERVIEW_BIN - i0)
            _fold(ov, first, values[:head])
            rest = values[head:]
            full = len(rest) // OVERVIEW_BIN
            if full:
                blocks = rest[: full * OVERVIEW_BIN].reshape(full, OVERVIEW_BIN)
                with _quiet():
                    lo = np.nanmin(blocks, axis=1)
                    hi = np.nanmax(blocks, axis=1)
                _merge(ov, first + 1, lo, hi)
            if len(rest) > full * OVERVIEW_BIN:
                _fold(ov, first + 1 + full, rest[full * OVERVIEW_BIN :])
    return out


def _fold(ov: Overview, b: int, values: np.ndarray) -> None:
    if len(values) and b < len(ov.lo):
        with _quiet():
            _merge(ov, b, np.array([np.nanmin(values)]), np.array([np.nanmax(values)]))


def _merge(ov: Overview, b: int, lo: np.ndarray, hi: np.ndarray) -> None:
    n = min(len(lo), len(ov.lo) - b)
    ov.lo[b : b + n] = np.fmin(ov.lo[b : b + n], lo[:n])
    ov.hi[b : b + n] = np.fmax(ov.hi[b : b + n], hi[:n])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'All-NaN slice' warning (a bin inside a gap is legitimately empty)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _window(
    cap: Capture, ch: Channel, start_s: float | None, end_s: float | None
) -> tuple[int, int]:
    """Sample indices [i0, i1) of a channel for a window in seconds from the capture start."""
    ref = cap.start_ticks
    t0 = ch.start_ticks if start_s is None else ref + round(start_s * TICKS_PER_SECOND)
    t1 = ch.end_ticks if end_s is None else ref + round(end_s * TICKS_PER_SECOND)
    i0 = min(max(ch.index_at(t0), 0), ch.length)
    i1 = min(max(ch.index_at(t1), i0), ch.length)
    return i0, i1


def _seconds(cap: Capture, ch: Channel, index: int) -> float:
    return (ch.start_ticks - cap.start_ticks + index * ch.ticks_per_sample) / TICKS_PER_SECOND


def _json_values(a: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else v for v in a.tolist()]


def time_data(
    cap: Capture,
    key: str,
    start_s: float | None = None,
    end_s: float | None = None,
    points: int = 2000,
    overview: OverviewCache | None = None,
) -> dict[str, Any]:
    ch = cap.channel(key)
    points = max(10, min(int(points), MAX_POINTS))
    i0, i1 = _window(cap, ch, start_s, end_s)
    n = i1 - i0
    base = {
        "channel": key,
        **units.describe(ch.unit),
        "sample_rate": ch.sample_rate,
        "start_index": i0,
        "samples": n,
        "channel_start_s": _seconds(cap, ch, 0),
        "channel_end_s": _seconds(cap, ch, ch.length),
    }
    if n <= points:
        values = cap.read(key, i0, i1, np.float64)
        t = _seconds(cap, ch, i0) + np.arange(n) / ch.sample_rate
        return {**base, "mode": "samples", "t": t.tolist(), "values": _json_values(values)}
    per = -(-n // points)
    if overview is not None and per >= 4 * OVERVIEW_BIN:
        ov = overview.get(key)
        b0, b1 = i0 // OVERVIEW_BIN, -(-i1 // OVERVIEW_BIN)
        group = -(-(b1 - b0) // points)
        lo = _group(ov.lo[b0:b1], group, np.fmin)
        hi = _group(ov.hi[b0:b1], group, np.fmax)
        step = group * OVERVIEW_BIN
        t = _seconds(cap, ch, b0 * OVERVIEW_BIN) + np.arange(len(lo)) * step / ch.sample_rate
        return {
            **base,
            "mode": "minmax",
            "bin": step,
            "t": t.tolist(),
            "min": _json_values(lo),
            "max": _json_values(hi),
        }
    lo_parts, hi_parts = [], []
    # Slices of whole bins, about 2 M values each: a long window never sits in memory at once.
    slab = per * max(1, (1 << 21) // per)
    for a in range(i0, i1, slab):
        b = min(i1, a + slab)
        values = cap.read(key, a, b, np.float32)
        bins = -(-len(values) // per)
        padded = np.full(bins * per, np.nan, np.float32)
        padded[: len(values)] = values
        with _quiet():
            lo_parts.append(np.nanmin(padded.reshape(bins, per), axis=1))
            hi_parts.append(np.nanmax(padded.reshape(bins, per), axis=1))
    lo = np.concatenate(lo_parts).astype(np.float64)
    hi = np.concatenate(hi_parts).astype(np.float64)
    t = _seconds(cap, ch, i0) + np.arange(len(lo)) * per / ch.sample_rate
    return {
        **base,
        "mode": "minmax",
        "bin": per,
        "t": t.tolist(),
        "min": _json_values(lo),
        "max": _json_values(hi),
    }


def _group(a: np.ndarray, group: int, fn: Any) -> np.ndarray:
    if group <= 1:
        return a.copy()
    bins = -(-len(a) // group)
    padded = np.full(bins * group, np.nan)
    padded[: len(a)] = a
    return fn.reduce(padded.reshape(bins, group), axis=1)


def spectrum(
    cap: Capture,
    key: str,
    start_s: float | None = None,
    end_s: float | None = None,
    nfft: int = 8192,
    window_name: str = "hann",
    average: str = "linear",
) -> dict[str, Any]:
    """Averaged RMS spectrum of a window (Hann, flat top or uniform; 50 % overlap when the
    window is short). Lines are amplitude-correct: a tone on a line reads its RMS; with flat
    top also between lines (within 0.01 dB). ``average`` is ``linear`` (the mean square over
    the segments) or ``peak`` (each line's largest over the segments: peak hold). Lines end at
    the measurement bandwidth (sample rate / 2.56): above it the module's anti-alias filter
    leaves nothing to read."""
    ch = cap.channel(key)
    if average not in SPECTRUM_AVERAGES:
        raise ValueError(f"average must be one of {', '.join(SPECTRUM_AVERAGES)}")
    if nfft not in NFFT_CHOICES:
        raise ValueError(f"nfft must be one of {', '.join(map(str, NFFT_CHOICES))}")
    if window_name not in SPECTRUM_WINDOWS:
        raise ValueError(f"window must be one of {', '.join(SPECTRUM_WINDOWS)}")
    i0, i1 = _window(cap, ch, start_s, end_s)
    n = i1 - i0
    nfft = min(nfft, 1 << max(0, (n.bit_length() - 1))) if n else nfft
    if n < 16:
        return {
            "channel": key,
            **units.describe(ch.unit),
            "freq": [],
            "db": [],
            "rms": [],
            "segments": 0,
        }
    possible = (n - nfft) // (nfft // 2) + 1
    count = min(MAX_SEGMENTS, possible)
    starts = np.linspace(i0, i1 - nfft, count).astype(np.int64) if count > 1 else [i0]
    window = SPECTRUM_WINDOWS[window_name](nfft)
    power = np.zeros(nfft // 2 + 1)
    used = 0
    for s in starts:
        seg = cap.read(key, int(s), int(s) + nfft, np.float64)
        if np.isnan(seg).any():
            continue  # a gap: skip the segment rather than smear it
        seg = seg - seg.mean()
        spec = np.fft.rfft(seg * window)
        if average == "peak":
            np.maximum(power, np.abs(spec) ** 2, out=power)
        else:
            power += np.abs(spec) ** 2
        used += 1
    freq = np.fft.rfftfreq(nfft, 1 / ch.sample_rate)
    if not used:
        return {
            "channel": key,
            **units.describe(ch.unit),
            "freq": freq.tolist(),
            "db": [],
            "rms": [],
            "segments": 0,
        }
    # RMS per line: |X|^2 / (sum w)^2, doubled for one-sided lines except DC and Nyquist.
    ms = power / (1 if average == "peak" else used) / window.sum() ** 2
    ms[1:-1] *= 2
    bandwidth = ch.sample_rate / 2.56
    last = int(np.searchsorted(freq, bandwidth, side="right"))
    freq, ms = freq[:last], ms[:last]
    rms = np.sqrt(ms)
    ref = units.reference(ch.unit)
    with np.errstate(divide="ignore"):
        db = 20 * np.log10(np.maximum(rms, 1e-30) / ref.value)
    return {
        "channel": key,
        **units.describe(ch.unit),
        "nfft": nfft,
        "window": window_name,
        "average": average,
        "bandwidth_hz": bandwidth,
        "resolution_hz": ch.sample_rate / nfft,
        "segments": used,
        "window_start_s": _seconds(cap, ch, i0),
        "window_end_s": _seconds(cap, ch, i1),
        "freq": freq.tolist(),
        "rms": rms.tolist(),
        "db": db.tolist(),
    }


def quality_timeline(cap: Capture) -> dict[str, Any]:
    """Per channel: intervals under validity flags and gaps, in seconds from the start."""
    start, end = cap.span()
    ref = cap.start_ticks
    channels = []
    for ch in cap.channels:
        intervals = []
        changes = sorted(ch.quality, key=lambda q: q.pos)
        stops = [q.pos for q in changes[1:]] + [ch.length] if changes else []
        for q, stop in zip(changes, stops, strict=True):
            if not q.validity:
                continue
            intervals.append(
                {
                    "start_s": _seconds(cap, ch, q.pos),
                    "end_s": _seconds(cap, ch, max(q.pos + 1, stop)),
                    "validity": q.validity,
                    "flags": validity_names(q.validity),
                }
            )
        gaps = [
            {
                "start_s": _seconds(cap, ch, g.pos),
                "end_s": _seconds(cap, ch, g.pos + g.missing),
                "missing": g.missing,
            }
            for g in ch.gaps
        ]
        channels.append(
            {
                "key": ch.key,
                "start_s": _seconds(cap, ch, 0),
                "end_s": _seconds(cap, ch, ch.length),
                "intervals": intervals,
                "gaps": gaps,
            }
        )
    return {
        "start_s": (start - ref) / TICKS_PER_SECOND,
        "end_s": (end - ref) / TICKS_PER_SECOND,
        "channels": channels,
    }
