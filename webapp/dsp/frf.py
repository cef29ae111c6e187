"""Frequency response functions: H1, H2 and coherence between a reference and responses.

Welch's method: the signals are cut into segments of ``nperseg`` samples (``overlap`` of them
shared), each windowed (Hann by default, scipy.signal.get_window) and transformed; the one-sided
auto spectra Gxx, Gyy and the cross spectrum Gxy = conj(X)·Y are averaged linearly over the
segments. Then

* H1 = Gxy / Gxx  (unbiased by noise on the response),
* H2 = Gyy / Gyx  (unbiased by noise on the reference),
* γ² = |Gxy|² / (Gxx · Gyy), the ordinary coherence (1 for a noise-free linear system).

The same :class:`FrfAverager` serves a recording (fed everything at once) and the live view
(fed block by block, keeping the part of a segment not yet complete), so both give the same
numbers. Reference and responses must be sample-synchronous (one module, or modules sharing
PTP time) and of one sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

DEFAULT_SEGMENT = 4096
DEFAULT_OVERLAP = 0.5
CHUNK_SEGMENTS = 32


@dataclass(frozen=True)
class FrfResult:
    frequency: np.ndarray
    """Hz, 0 … fs/2 in steps of fs/nperseg."""
    h1: np.ndarray
    """Complex, one row per response channel (response unit per reference unit)."""
    h2: np.ndarray
    coherence: np.ndarray
    averages: int
    gxx: np.ndarray
    """Reference auto spectrum (power spectral density, unit²/Hz)."""
    gyy: np.ndarray
    """Response auto spectra, one row per response."""


class FrfAverager:
    """Linear averaging of auto and cross spectra over whole segments, block by block."""

    def __init__(
        self,
        sample_rate: float,
        responses: int,
        nperseg: int = DEFAULT_SEGMENT,
        overlap: float = DEFAULT_OVERLAP,
        window: str = "hann",
    ) -> None:
        if nperseg < 8:
            raise ValueError("an FRF needs segments of at least 8 samples")
        if not 0 <= overlap < 1:
            raise ValueError("the overlap must be at least 0 and below 1")
        if responses < 1:
            raise ValueError("an FRF needs at least one response channel")
        self.sample_rate = float(sample_rate)
        self.nperseg = nperseg
        self.step = max(1, int(round(nperseg * (1 - overlap))))
        self.window = signal.get_window(window, nperseg)
        # Density scaling (as scipy.signal.welch): cancels in H and γ², makes G a PSD.
        self._scale = 2.0 / (self.sample_rate * float(np.sum(self.window**2)))
        self.responses = responses
        self.reset()

    def reset(self) -> None:
        bins = self.nperseg // 2 + 1
        self._x = np.zeros(0)
        self._y = np.zeros((self.responses, 0))
        self.gxx = np.zeros(bins)
        self.gyy = np.zeros((self.responses, bins))
        self.gxy = np.zeros((self.responses, bins), dtype=complex)
        self.averages = 0

    def restart(self) -> None:
        """A discontinuity (a gap): drop the partial segment, keep the averages so far."""
        self._x = np.zeros(0)
        self._y = np.zeros((self.responses, 0))

    def add(self, reference: np.ndarray, responses: np.ndarray) -> None:
        """Append samples: reference (n,) and responses (responses, n), equally long."""
        x = np.asarray(reference, dtype=np.float64)
        y = np.atleast_2d(np.asarray(responses, dtype=np.float64))
        if y.shape != (self.responses, x.size):
            raise ValueError(
                f"expected {self.responses} response signals of {x.size} samples, got {y.shape}"
            )
        self._x = np.concatenate([self._x, x])
        self._y = np.concatenate([self._y, y], axis=1)
        n = self.nperseg
        count = 0 if self._x.size < n else 1 + (self._x.size - n) // self.step
        if not count:
            return
        for first in range(0, count, CHUNK_SEGMENTS):  # bounded memory on long recordings
            starts = np.arange(first, min(count, first + CHUNK_SEGMENTS)) * self.step
            index = starts[:, None] + np.arange(n)[None, :]
            xs = signal.detrend(self._x[index], type="constant", axis=-1) * self.window
            ys = signal.detrend(self._y[:, index], type="constant", axis=-1) * self.window
            fx = np.fft.rfft(xs, axis=-1)
            fy = np.fft.rfft(ys, axis=-1)
            self.gxx += np.sum(np.abs(fx) ** 2, axis=0)
            self.gyy += np.sum(np.abs(fy) ** 2, axis=1)
            self.gxy += np.sum(np.conj(fx)[None, :, :] * fy, axis=1)
        self.averages += count
        used = count * self.step
        self._x = self._x[used:]
        self._y = self._y[:, used:]

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        """The mean Gxx, Gyy, Gxy per segment (one-sided densities, unit²/Hz) of the segments
        since the last take, and their count; None when none is complete. The sums start
        again; the partial segment is kept (the live FRF: its viewers do the averaging)."""
        if not self.averages:
            return None
        k = self._scale / self.averages
        gxx, gyy, gxy = self.gxx * k, self.gyy * k, self.gxy * k
        gxx[0] /= 2
        gyy[:, 0] /= 2
        gxy[:, 0] /= 2
        count = self.averages
        self.gxx = np.zeros_like(self.gxx)
        self.gyy = np.zeros_like(self.gyy)
        self.gxy = np.zeros_like(self.gxy)
        self.averages = 0
        return gxx, gyy, gxy, count

    def result(self) -> FrfResult:
        if not self.averages:
            raise ValueError(
                f"no complete segment yet: an FRF needs at least {self.nperseg} samples"
            )
        k = self._scale / self.averages
        gxx, gyy, gxy = self.gxx * k, self.gyy * k, self.gxy * k
        gxx[[0, -1]] /= 2  # one-sided: DC and Nyquist are not doubled
        gyy[:, [0, -1]] /= 2
        gxy[:, [0, -1]] /= 2
        with np.errstate(divide="ignore", invalid="ignore"):
            h1 = gxy / gxx[None, :]
            h2 = gyy / np.conj(gxy)
            coherence = np.abs(gxy) ** 2 / (gxx[None, :] * gyy)
        frequency = np.fft.rfftfreq(self.nperseg, 1.0 / self.sample_rate)
        return FrfResult(frequency, h1, h2, np.nan_to_num(coherence), self.averages, gxx, gyy)


def frf(
    reference: np.ndarray,
    responses: np.ndarray,
    sample_rate: float,
    nperseg: int = DEFAULT_SEGMENT,
    overlap: float = DEFAULT_OVERLAP,
    window: str = "hann",
) -> FrfResult:
    """H1, H2 and coherence of whole recordings (reference (n,), responses (m, n) or (n,))."""
    y = np.atleast_2d(responses)
    averager = FrfAverager(sample_rate, y.shape[0], nperseg, overlap, window)
    averager.add(reference, y)
    return averager.result()


def peak(frequency: np.ndarray, h: np.ndarray, low: float = 0.0, high: float = np.inf) -> float:
    """The frequency of the largest |H| between low and high, refined by a parabola through
    the three bins around it (in dB)."""
    band = np.flatnonzero((frequency >= low) & (frequency <= high))
    if band.size == 0:
        raise ValueError("no FRF line in that frequency range")
    mag = np.abs(h[band])
    i = int(np.argmax(mag))
    if 0 < i < band.size - 1 and np.all(mag[i - 1 : i + 2] > 0):
        a, b, c = 20 * np.log10(mag[i - 1 : i + 2])
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
        df = frequency[1] - frequency[0]
        return float(frequency[band[i]] + shift * df)
    return float(frequency[band[i]])
