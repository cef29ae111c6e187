"""Octave and one-third-octave bands of IEC 61260-1:2014 (base 10), and a filter bank.

Mid-band frequencies: ``fm = 1000 · G^(x/b)`` with ``G = 10^(3/10)``, for odd ``b`` (1 and 3),
band edges ``fm · G^(∓1/(2b))``; nominal frequencies (Annex E) label them. Each band is a
Butterworth band-pass of order 4 per edge (8 poles) designed by scipy.signal.butter at the
sample rate, which puts the edges at −3 dB exactly and meets the class 1 limits on relative
attenuation (tests/dsp/test_octaves.py checks every band below the bandwidth against them).
Bands are kept below the measurement bandwidth (upper edge at most 0.4 × fs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

G = 10 ** (3 / 10)
REFERENCE_HZ = 1000.0
ORDER = 4

NOMINAL_THIRD = (
    25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250,
    1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000,
)  # fmt: skip
"""Nominal one-third-octave mid-band frequencies, 25 Hz to 20 kHz (IEC 61260-1 Annex E)."""


@dataclass(frozen=True)
class Band:
    x: int
    """Band number: fm = 1000 · G^(x/b)."""
    fraction: int
    nominal: float

    @property
    def mid(self) -> float:
        return REFERENCE_HZ * G ** (self.x / self.fraction)

    @property
    def lower(self) -> float:
        return self.mid * G ** (-1 / (2 * self.fraction))

    @property
    def upper(self) -> float:
        return self.mid * G ** (1 / (2 * self.fraction))

    @property
    def label(self) -> str:
        n = self.nominal
        return f"{n / 1000:g}k" if n >= 1000 else f"{n:g}"


def bands(fraction: int, fs: float, low: float = 22.0) -> list[Band]:
    """The bands of 1/``fraction`` octave (1 or 3) from about 25 Hz up to the bandwidth."""
    if fraction not in (1, 3):
        raise ValueError("bands are 1/1 or 1/3 octave")
    out = []
    for nominal in NOMINAL_THIRD:
        x = round(math.log(nominal / REFERENCE_HZ, G) * 3)
        if fraction == 1:
            if x % 3:
                continue
            band = Band(x // 3, 1, nominal)
        else:
            band = Band(x, 3, nominal)
        if band.mid >= low and band.upper <= 0.4 * fs:
            out.append(band)
    return out


@lru_cache(maxsize=256)
def band_sos(band: Band, fs: float) -> np.ndarray:
    return signal.butter(ORDER, [band.lower, band.upper], btype="bandpass", fs=fs, output="sos")


class OctaveBank:
    """Band levels of a signal fed block after block: mean square per band since the last
    :meth:`take` (and the filter states carried over)."""

    def __init__(self, fraction: int, fs: float) -> None:
        self.fraction = fraction
        self.fs = fs
        self.bands = bands(fraction, fs)
        self._sos = [band_sos(b, fs) for b in self.bands]
        self._zi = [np.zeros((s.shape[0], 2)) for s in self._sos]
        self._energy = np.zeros(len(self.bands))
        self._count = 0

    def feed(self, x: np.ndarray) -> None:
        for i, sos in enumerate(self._sos):
            y, self._zi[i] = signal.sosfilt(sos, x, zi=self._zi[i])
            self._energy[i] += float(np.dot(y, y))
        self._count += len(x)

    def take(self) -> np.ndarray | None:
        """Mean square per band since the last take (None when nothing was fed)."""
        if not self._count:
            return None
        out = self._energy / self._count
        self._energy = np.zeros(len(self.bands))
        self._count = 0
        return out


def band_levels(
    x: np.ndarray, fs: float, fraction: int, skip_s: float = 0.0
) -> tuple[list[Band], np.ndarray]:
    """Mean square per band of a whole signal (the analysis page), leaving out the first
    ``skip_s`` seconds of the filters' output (their settling)."""
    x = np.asarray(x, dtype=float)
    bank = OctaveBank(fraction, fs)
    skip = min(len(x), int(skip_s * fs))
    if skip:
        bank.feed(x[:skip])
        bank.take()
    bank.feed(x[skip:])
    ms = bank.take()
    return bank.bands, ms if ms is not None else np.zeros(len(bank.bands))
