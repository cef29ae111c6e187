"""Frequency weightings A, C and Z of IEC 61672-1:2013, as digital filters.

The analog weightings are defined by their poles (IEC 61672-1, Annex E): f1 = 20.598997 Hz,
f2 = 107.65265 Hz, f3 = 737.86223 Hz, f4 = 12194.217 Hz,

    C(s) = s² / ((s + ω1)² (s + ω4)²)
    A(s) = s⁴ / ((s + ω1)² (s + ω2) (s + ω3) (s + ω4)²)

each normalised to 0 dB at 1 kHz. The digital filter is made of two parts:

* the zeros and the low poles (f1, f2, f3) by the bilinear transform at the sample rate
  (scipy.signal.bilinear_zpk, second-order sections): they lie far below Nyquist, where the
  transform is exact to a few thousandths of a dB;
* the double pole at f4 (12.2 kHz), a gentle low-pass that the bilinear transform would bend
  by several dB near Nyquist at the lower LAN-XI rates, as a linear-phase FIR filter whose
  magnitude follows the analog one (least squares, scipy.signal.firls, 63 taps).

So the filter meets the analog weighting to within 0.1 dB up to the measurement bandwidth at
every LAN-XI rate (tests/dsp/test_weighting.py checks every frequency of IEC 61672-1 Table 3,
and the class 1 limits). The FIR delays the signal by 31 samples, which no level notices. Z is
no filter.

A is C times s² / ((s + ω2)(s + ω3)), and the bilinear transform maps each pole and zero on
its own, so the sound level meter makes A from its C-weighted signal with one more section
(:func:`a_from_c_sos`): the same filter as :func:`weighting_parts` ("A"), at a fraction of the
cost (tests/dsp/test_weighting.py checks that they agree).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import signal

from webapp.dsp.sos import SosFilter

F1, F2, F3, F4 = 20.598997, 107.65265, 737.86223, 12194.217
WEIGHTINGS = ("A", "C", "Z")


def analog_db(weighting: str, f: float | np.ndarray) -> np.ndarray:
    """The analog weighting in dB at frequency ``f`` (Hz), 0 dB at 1 kHz (IEC 61672-1 E.2)."""
    f = np.asarray(f, dtype=float)

    def raw(fr: np.ndarray) -> np.ndarray:
        f2 = fr * fr
        c = (F4**2 * f2) / ((f2 + F1**2) * (f2 + F4**2))
        if weighting == "C":
            return 20 * np.log10(c)
        if weighting == "A":
            a = c * f2 / np.sqrt((f2 + F2**2) * (f2 + F3**2))
            return 20 * np.log10(a)
        if weighting == "Z":
            return np.zeros_like(fr)
        raise ValueError(f"weighting must be A, C or Z, not {weighting!r}")

    return raw(f) - raw(np.asarray(1000.0))


FIR_TAPS = 63


@lru_cache(maxsize=32)
def weighting_parts(weighting: str, fs: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(second-order sections of the low part, FIR taps of the f4 part), together 0 dB at
    1 kHz; None for Z."""
    if weighting == "Z":
        return None
    w1, w2, w3 = (2 * math.pi * f for f in (F1, F2, F3))
    if weighting == "C":
        zeros, poles = [0.0, 0.0], [-w1, -w1]
    elif weighting == "A":
        zeros, poles = [0.0] * 4, [-w1, -w1, -w2, -w3]
    else:
        raise ValueError(f"weighting must be A, C or Z, not {weighting!r}")
    z, p, k = signal.bilinear_zpk(zeros, poles, 1.0, fs)
    sos = signal.zpk2sos(z, p, k)
    # f4²/(f² + f4²) by least squares over the whole band, piecewise linear on a fine grid
    grid = np.linspace(0.0, fs / 2, 513)
    shape = F4**2 / (grid**2 + F4**2)
    taps = signal.firls(FIR_TAPS, np.repeat(grid, 2)[1:-1], np.repeat(shape, 2)[1:-1], fs=fs)
    gain = abs(signal.sosfreqz(sos, worN=[1000.0], fs=fs)[1][0]) * abs(
        signal.freqz(taps, worN=[1000.0], fs=fs)[1][0]
    )
    sos = sos.copy()
    sos[0, :3] /= gain  # 0 dB at 1 kHz
    return sos, taps


@lru_cache(maxsize=32)
def a_from_c_sos(fs: float) -> np.ndarray:
    """The section that turns the digital C weighting into the digital A weighting: the two
    zeros and the poles at f2 and f3 of A that C has not, 0 dB at 1 kHz."""
    w2, w3 = (2 * math.pi * f for f in (F2, F3))
    z, p, k = signal.bilinear_zpk([0.0, 0.0], [-w2, -w3], 1.0, fs)
    sos = signal.zpk2sos(z, p, k)
    sos[0, :3] /= abs(signal.sosfreqz(sos, worN=[1000.0], fs=fs)[1][0])
    return sos


class Fir:
    """A FIR filter block after block (numpy's convolution, the tail carried over)."""

    def __init__(self, taps: np.ndarray) -> None:
        self.taps = np.asarray(taps, dtype=float)
        self._tail = np.zeros(len(self.taps) - 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros(0)
        y = np.convolve(x, self.taps)
        y[: len(self._tail)] += self._tail
        self._tail = y[len(x) :]
        return y[: len(x)]


def digital_db(weighting: str, fs: float, f: float | np.ndarray) -> np.ndarray:
    """The digital filter's response in dB at ``f``."""
    parts = weighting_parts(weighting, fs)
    f = np.atleast_1d(np.asarray(f, dtype=float))
    if parts is None:
        return np.zeros_like(f)
    sos, taps = parts
    h = signal.sosfreqz(sos, worN=f, fs=fs)[1] * signal.freqz(taps, worN=f, fs=fs)[1]
    return 20 * np.log10(np.abs(h))


class WeightingFilter:
    """A weighting applied block after block (the filter state carries over)."""

    def __init__(self, weighting: str, fs: float) -> None:
        self.weighting = weighting
        self.parts = weighting_parts(weighting, fs)
        if self.parts is not None:
            sos, taps = self.parts
            self._sos = SosFilter(sos)
            self._fir = Fir(taps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.parts is None:
            return x
        return self._fir(self._sos(x))
