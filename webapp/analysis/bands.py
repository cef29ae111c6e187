"""Octave and one-third-octave band levels of a window of a stored channel (the analysis page),
with the window's A-, C- and Z-weighted equivalent levels: the same filters as the live view
(:mod:`webapp.dsp`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from webapp.analysis.reader import Capture
from webapp.dsp.octaves import band_levels
from webapp.dsp.weighting import WEIGHTINGS, WeightingFilter, analog_db
from webapp.openapi import units

MAX_SAMPLES = 1 << 22
"""At most this many samples are filtered (32 s at 131072 S/s): a longer window is analysed
over its middle part, which the answer says."""
SETTLE_S = 0.25
"""The filters' first quarter second is left out of the levels when the window is long enough
(an onset transient is no part of the signal)."""


def _db(ms: float, ref: float) -> float | None:
    return round(10 * float(np.log10(ms / ref**2)), 2) if ms > 0 else None


def window_bands(
    cap: Capture,
    key: str,
    start_s: float | None,
    end_s: float | None,
    fraction: int = 3,
) -> dict[str, Any]:
    if fraction not in (1, 3):
        raise ValueError("fraction must be 1 (octaves) or 3 (one-third octaves)")
    from webapp.analysis.views import _window

    ch = cap.channel(key)
    i0, i1 = _window(cap, ch, start_s, end_s)
    note = ""
    if i1 - i0 > MAX_SAMPLES:
        middle = (i0 + i1) // 2
        i0, i1 = middle - MAX_SAMPLES // 2, middle + MAX_SAMPLES // 2
        note = f"the middle {MAX_SAMPLES / ch.sample_rate:.1f} s of the window"
    x = cap.read(key, i0, i1, np.float64)
    gaps = int(np.isnan(x).sum())
    if gaps:
        x = np.nan_to_num(x)  # lost samples count as silence (and the answer says how many)
    ref = units.reference(ch.unit)
    fs = ch.sample_rate
    skip = SETTLE_S if len(x) > 4 * SETTLE_S * fs else 0.0
    found, ms = band_levels(x, fs, fraction, skip_s=skip)
    start = int(skip * fs)
    overall = {}
    for w in WEIGHTINGS:
        y = WeightingFilter(w, fs)(x)[start:]
        overall[f"L{w}eq"] = _db(float(np.mean(y * y)), ref.value) if len(y) else None
    return {
        "channel": key,
        **units.describe(ch.unit),
        "fraction": fraction,
        "samples": int(i1 - i0),
        "lost_samples": gaps,
        "note": note,
        "labels": [b.label for b in found],
        "mid_hz": [round(b.mid, 3) for b in found],
        "Z": [_db(float(v), ref.value) for v in ms],
        "A_correction": [round(float(analog_db("A", b.mid)), 2) for b in found],
        "C_correction": [round(float(analog_db("C", b.mid)), 2) for b in found],
        **overall,
    }
