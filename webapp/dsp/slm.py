"""A sound level meter per IEC 61672-1 on a stream of blocks, and the band levels beside it.

Fed every block of one channel (in its unit, Pa for a microphone), it keeps:

* frequency-weighted signals A, C and Z (:mod:`webapp.dsp.weighting`);
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
from scipy import signal

from webapp.dsp.octaves import OctaveBank
from webapp.dsp.weighting import WeightingFilter, analog_db
from webapp.openapi import units

TAU_S = {"F": 0.125, "S": 1.0}
SETTLE_S = 0.5


def _db(mean_square: float, ref: float) -> float | None:
    if not mean_square > 0 or not math.isfinite(mean_square):
        return None
    return round(10 * math.log10(mean_square / (ref * ref)), 2)


class TimeWeighting:
    def __init__(self, tau_s: float, fs: float) -> None:
        a = math.exp(-1.0 / (tau_s * fs))
        self.b, self.a = [1.0 - a], [1.0, -a]
        self._zi = np.zeros(1)

    def __call__(self, squared: np.ndarray) -> np.ndarray:
        y, self._zi = signal.lfilter(self.b, self.a, squared, zi=self._zi)
        return y


class SoundLevelMeter:
    def __init__(self, fs: float, unit: str = "Pa", octaves: bool = True) -> None:
        self.fs = fs
        self.unit = unit
        self.ref = units.reference(unit).value
        self.weights = {w: WeightingFilter(w, fs) for w in ("A", "C", "Z")}
        self.timed = {
            ("A", "F"): TimeWeighting(TAU_S["F"], fs),
            ("A", "S"): TimeWeighting(TAU_S["S"], fs),
            ("C", "F"): TimeWeighting(TAU_S["F"], fs),
            ("Z", "F"): TimeWeighting(TAU_S["F"], fs),
        }
        self.banks = {b: OctaveBank(b, fs) for b in (1, 3)} if octaves else {}
        self.now: dict[tuple[str, str], float] = {}
        self._settle = int(SETTLE_S * fs)
        self.reset()

    def reset(self) -> None:
        """Start the running figures (Leq, max, peak) again: a new recording."""
        self.since = time.time()
        self.samples = 0
        self.energy = {w: 0.0 for w in self.weights}
        self.fmax = 0.0
        self.peak = {w: 0.0 for w in self.weights}

    def feed(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        if not len(x):
            return
        weighted = {w: f(x) for w, f in self.weights.items()}
        skip = min(self._settle, len(x))  # the filters' onset: no part of the running figures
        self._settle -= skip
        for w, y in weighted.items():
            sq = y * y
            counted = y[skip:]
            if len(counted):
                self.energy[w] += float(np.dot(counted, counted))
                self.peak[w] = max(self.peak[w], float(np.abs(counted).max()))
            for (tw, tt), tf in self.timed.items():
                if tw == w:
                    out = tf(sq)
                    self.now[(tw, tt)] = float(out[-1])
                    if (tw, tt) == ("A", "F") and len(out) > skip:
                        self.fmax = max(self.fmax, float(out[skip:].max()))
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
        for w in self.weights:
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
