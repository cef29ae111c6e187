"""A sound level meter per IEC 61672-1 on a stream of blocks, and the band levels beside it.

Fed every block of one channel (in its unit, Pa for a microphone), it keeps:

* frequency-weighted signals A, C and Z (:mod:`webapp.dsp.weighting`; A made from C with
  one more section);
* time-weighted levels Fast (τ = 0.125 s) and Slow (τ = 1 s): the exponential average of the
  squared weighted signal, ``y[n] = a·y[n−1] + (1−a)·x²[n]`` with ``a = e^(−1/(τ·fs))``, on
  every sample (LAF, LAS, LCF, LZF at the end of the latest block);
* since :meth:`reset` (the start of the recording): LAeq, LCeq, LZeq (energy average), LAFmax
  (the highest Fast A-weighted level on any sample), LCpeak and LZpeak (the highest absolute
  weighted sample);
* 1/1- and 1/3-octave band levels (Z-weighted, :mod:`webapp.dsp.octaves`) over the time since
  the last snapshot.

dB figures are re the unit's ISO 1683 reference (20 µPa for Pa, :mod:`webapp.openapi.units`).
The first :data:`SETTLE_S` after the meter starts (a new measurement) count for none of the
running figures: the filters start from rest, and their onset transient (up to a few tenths of
a dB on a peak) is no part of the sound. A :meth:`reset` later (a new recording) needs none.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from webapp.dsp.octaves import OctaveBank
from webapp.dsp.sos import SosFilter, first_order
from webapp.dsp.weighting import WEIGHTINGS, WeightingFilter, a_from_c_sos, analog_db
from webapp.openapi import units

TAU_S = {"F": 0.125, "S": 1.0}
SETTLE_S = 0.5


def _db(mean_square: float, ref: float) -> float | None:
    if not mean_square > 0 or not math.isfinite(mean_square):
        return None
    return round(10 * math.log10(mean_square / (ref * ref)), 2)


class TimeWeighting:
    """The exponential average of ``channels`` squared signals at once (state carried over)."""

    def __init__(self, tau_s: float, fs: float, channels: int = 1) -> None:
        a = math.exp(-1.0 / (tau_s * fs))
        self._filter = SosFilter(first_order(1.0 - a, -a), channels)

    def __call__(self, squared: np.ndarray) -> np.ndarray:
        return self._filter(squared)


FAST = (("A", "F"), ("C", "F"), ("Z", "F"))
"""The Fast levels, filtered together (one signal each, A, C, Z)."""


class SoundLevelMeter:
    def __init__(self, fs: float, unit: str = "Pa", octaves: bool = True) -> None:
        self.fs = fs
        self.unit = unit
        self.ref = units.reference(unit).value
        self._c = WeightingFilter("C", fs)
        self._a_from_c = SosFilter(a_from_c_sos(fs))
        self._fast = TimeWeighting(TAU_S["F"], fs, channels=len(FAST))
        self._slow = TimeWeighting(TAU_S["S"], fs)
        self.banks = {b: OctaveBank(b, fs) for b in (1, 3)} if octaves else {}
        self.now: dict[tuple[str, str], float] = {}
        self._settle = int(SETTLE_S * fs)
        self.reset()

    def reset(self) -> None:
        """Start the running figures (Leq, max, peak) again: a new recording."""
        self.since = time.time()
        self.samples = 0
        self.energy = {w: 0.0 for w in WEIGHTINGS}
        self.fmax = 0.0
        self.peak = {w: 0.0 for w in WEIGHTINGS}

    def feed(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        if not len(x):
            return
        c = self._c(x)
        weighted = {"A": self._a_from_c(c), "C": c, "Z": x}
        skip = min(self._settle, len(x))  # the filters' onset: no part of the running figures
        self._settle -= skip
        squared = np.empty((len(FAST), len(x)))
        for row, (w, _t) in enumerate(FAST):
            y = weighted[w]
            np.multiply(y, y, out=squared[row])
            if len(x) > skip:
                self.energy[w] += float(squared[row, skip:].sum())
                self.peak[w] = max(self.peak[w], float(np.abs(y[skip:]).max()))
        fast = self._fast(squared)
        slow = self._slow(squared[0])
        self.now[("A", "F")] = float(fast[0, -1])
        self.now[("A", "S")] = float(slow[-1])
        self.now[("C", "F")] = float(fast[1, -1])
        self.now[("Z", "F")] = float(fast[2, -1])
        if len(x) > skip:
            self.fmax = max(self.fmax, float(fast[0, skip:].max()))
        self.samples += len(x) - skip
        for bank in self.banks.values():
            bank.feed(x)

    def snapshot(self) -> dict[str, Any]:
        ref = self.ref
        n = max(self.samples, 1)
        out: dict[str, Any] = {
            "unit": self.unit,
            "reference": units.reference(self.unit).db_label,
            "since": self.since,
            "duration_s": round(self.samples / self.fs, 3),
        }
        for (w, t), ms in self.now.items():
            out[f"L{w}{t}"] = _db(ms, ref)
        for w in WEIGHTINGS:
            out[f"L{w}eq"] = _db(self.energy[w] / n, ref)
            out[f"L{w}peak"] = _db(self.peak[w] ** 2, ref)
        out["LAFmax"] = _db(self.fmax, ref)
        bands: dict[str, Any] = {}
        for fraction, bank in self.banks.items():
            ms = bank.take()
            if ms is None:
                continue
            bands[str(fraction)] = {
                "labels": [b.label for b in bank.bands],
                "mid_hz": [round(b.mid, 3) for b in bank.bands],
                "Z": [_db(v, ref) for v in ms],
                "A_correction": [round(float(analog_db("A", b.mid)), 2) for b in bank.bands],
                "C_correction": [round(float(analog_db("C", b.mid)), 2) for b in bank.bands],
            }
        out["bands"] = bands
        return out
