"""Octave and one-third-octave bands of IEC 61260-1:2014 (base 10), and a multirate filter bank.

Mid-band frequencies: ``fm = 1000 · G^(x/b)`` with ``G = 10^(3/10)``, for odd ``b`` (1 and 3),
band edges ``fm · G^(∓1/(2b))``; nominal frequencies (Annex E) label them. Bands are kept
below the measurement bandwidth (upper edge at most 0.4 × fs).

Each band is a Butterworth band-pass of order 4 per edge (8 poles) designed by
scipy.signal.butter, which puts the edges at −3 dB exactly, at the rate it runs at. The bank is
multirate, as octave-band analysers are: the signal is low-passed and decimated by 2 again and
again (one elliptic anti-alias filter, the same at every stage: flat to 0.005 dB below
:data:`STAGE_BAND` × the rate after decimation, 90 dB down from where anything would fold onto
that), and each band runs at the lowest rate of that chain where its upper edge is at most
:data:`STAGE_BAND` × the rate. So a band's filter runs on about 6 to 12 samples per period of
its mid-band frequency rather than on every input sample, and the whole bank costs about as
much as two or three band filters at the full rate. A band's level is the mean square of its
band signal at its own rate: the same as at the full rate, since the band lies far below that
rate's Nyquist frequency.

:meth:`OctaveBank.response` gives the chain's response to a sine at the input (each
anti-alias stage it passes, the folding of what lies above a stage's Nyquist frequency, and the
band filter); tests/dsp/test_octaves.py checks it against the class 1 limits on relative
attenuation for every band at the LAN-XI rates, and checks that sines fed through the bank read
what it says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from webapp.dsp.sos import SosFilter

G = 10 ** (3 / 10)
REFERENCE_HZ = 1000.0
ORDER = 4

STAGE_BAND = 0.15
"""A band runs at the lowest rate ``fs / 2^d`` of the chain where its upper edge is at most
this fraction of that rate (the bands too high for it run at the full rate). Low enough that
the band-pass keeps the shape it has at the full rate within about 1 dB on its skirts an
octave either side (at 0.3 the upper skirt grows up to 5 dB steeper: still class 1, but a
tone would read less in the band below its own than before), for no measurable cost."""
ANTI_ALIAS_RIPPLE_DB = 0.005
ANTI_ALIAS_STOP_DB = 90.0

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
    """The band's filter designed at rate ``fs`` (the bank runs it at :func:`stage`'s rate)."""
    return signal.butter(ORDER, [band.lower, band.upper], btype="bandpass", fs=fs, output="sos")


def stage(band: Band, fs: float) -> int:
    """How many times the bank halves the rate ``fs`` before the band's filter."""
    d = 0
    while band.upper <= STAGE_BAND * fs / 2 ** (d + 1):
        d += 1
    return d


@lru_cache(maxsize=1)
def anti_alias_sos() -> np.ndarray:
    """The low-pass before each decimation by 2, in units of the rate before it: flat below
    STAGE_BAND × the rate after it, stopped where anything would fold below that."""
    passband, stopband = STAGE_BAND, 1 - STAGE_BAND  # in units of the Nyquist frequency
    n, wn = signal.ellipord(passband, stopband, ANTI_ALIAS_RIPPLE_DB, ANTI_ALIAS_STOP_DB)
    return signal.ellip(n, ANTI_ALIAS_RIPPLE_DB, ANTI_ALIAS_STOP_DB, wn, output="sos")


def _fold(f: np.ndarray, fs: float) -> np.ndarray:
    """The frequency a sine at ``f`` has once sampled at ``fs`` (0 … fs/2)."""
    f = np.mod(f, fs)
    return np.where(f > fs / 2, fs - f, f)


class OctaveBank:
    """Band levels of a signal fed block after block: mean square per band since the last
    :meth:`take` (every filter state and the decimation phase carried over)."""

    def __init__(self, fraction: int, fs: float) -> None:
        self.fraction = fraction
        self.fs = fs
        self.bands = bands(fraction, fs)
        self._stage = [stage(b, fs) for b in self.bands]
        self.stages = max(self._stage, default=0)
        """Decimations by 2 in the chain."""
        self._by_stage: list[list[int]] = [[] for _ in range(self.stages + 1)]
        for i, d in enumerate(self._stage):
            self._by_stage[d].append(i)
        self._sos = [band_sos(b, fs / 2**d) for b, d in zip(self.bands, self._stage, strict=True)]
        self._filters = [SosFilter(s) for s in self._sos]
        self._lp = [SosFilter(anti_alias_sos()) for _ in range(self.stages)]
        self._phase = [0] * self.stages
        """Per decimation: the index in the next block of the first sample it keeps."""

        self._energy = np.zeros(len(self.bands))
        self._count = np.zeros(self.stages + 1, dtype=np.int64)
        """Samples per stage since the last take."""

    def rate(self, i: int) -> float:
        """The rate band ``i``'s filter runs at."""
        return self.fs / 2 ** self._stage[i]

    def feed(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        for d, members in enumerate(self._by_stage):
            if d:
                y = self._lp[d - 1](x)
                p = self._phase[d - 1]
                x = y[p::2]
                self._phase[d - 1] = (p - len(y)) % 2
            if not len(x):
                break  # a block too short to reach the lower stages this time
            self._count[d] += len(x)
            for i in members:
                y = self._filters[i](x)
                self._energy[i] += float(np.dot(y, y))

    def take(self) -> np.ndarray | None:
        """Mean square per band since the last take (None when nothing was fed). A band whose
        rate got no sample since then (a few input samples only) reads NaN and keeps
        counting towards the next take."""
        if not self._count[0]:
            return None
        count = self._count[self._stage]
        out = np.full(len(self.bands), np.nan)
        have = count > 0
        out[have] = self._energy[have] / count[have]
        self._energy[have] = 0.0
        self._count[self._count > 0] = 0
        return out

    def response(self, f: float | np.ndarray) -> np.ndarray:
        """The gain (linear, per band × frequency) the chain applies to a sine at ``f`` Hz
        (below fs/2) at the input: the anti-alias filters on its way down, each at the
        frequency the sine has at that stage's rate, then the band's filter."""
        f = np.atleast_1d(np.asarray(f, dtype=float))
        gain_at_stage = [np.ones_like(f)]
        at = [f]
        for d in range(self.stages):
            rate = self.fs / 2**d
            h = np.abs(signal.sosfreqz(anti_alias_sos(), worN=at[d], fs=rate)[1])
            gain_at_stage.append(gain_at_stage[d] * h)
            at.append(_fold(at[d], rate / 2))
        out = np.empty((len(self.bands), len(f)))
        for i, d in enumerate(self._stage):
            h = np.abs(signal.sosfreqz(self._sos[i], worN=at[d], fs=self.fs / 2**d)[1])
            out[i] = gain_at_stage[d] * h
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
