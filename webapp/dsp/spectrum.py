"""Averaged spectra of a live channel, in the settings an analyser offers: lines, window.

A spectrum of ``lines`` lines ends at the measurement bandwidth (fs / 2.56, as LAN-XI's
bandwidths are defined): an FFT of ``2.56 × lines`` samples, lines 0…``lines``, spacing
``fs / N``. Frames overlap by half (none with the uniform window). Each line holds the mean
square of the frames since the last :meth:`SpectrumAverager.take`, scaled so that a sinusoid
on a line reads its RMS² (amplitude-correct: divided by the window's coherent gain squared,
one-sided lines doubled). Flat top keeps a tone between lines within 0.01 dB of its level
(a calibrator reads 94.0 dB re 20 µPa wherever its line falls); Hann reads up to 1.4 dB low
between lines but separates close tones; uniform suits transients that fit the frame. The
equivalent noise bandwidth (``enbw_hz``) turns a line into a spectral density (PSD = line /
ENBW). Averaging over time (linear, exponential, peak hold) is the viewer's, over these.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

WINDOWS = {"hann": "hann", "flattop": "flattop", "uniform": "boxcar"}
LINES = (400, 800, 1600, 3200, 6400)
BANDWIDTH_RATIO = 2.56


def fft_size(lines: int) -> int:
    return round(lines * BANDWIDTH_RATIO)


class SpectrumAverager:
    def __init__(self, fs: float, window: str, lines: int) -> None:
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
        if lines not in LINES:
            raise ValueError(f"lines must be one of {', '.join(map(str, LINES))}, not {lines}")
        self.fs = fs
        self.window = window
        self.lines = lines
        self.n = fft_size(lines)
        self.hop = self.n if window == "uniform" else self.n // 2
        self.w = signal.get_window(WINDOWS[window], self.n, fftbins=True)
        self.df = fs / self.n
        self.enbw_hz = fs * float(np.sum(self.w**2)) / float(np.sum(self.w)) ** 2
        self._scale = 2.0 / float(np.sum(self.w)) ** 2
        self._buf = np.empty(0)
        self._acc = np.zeros(lines + 1)
        self._frames = 0

    def feed(self, x: np.ndarray) -> None:
        buf = np.concatenate((self._buf, np.asarray(x, dtype=float)))
        start = 0
        while len(buf) - start >= self.n:
            frame = buf[start : start + self.n]
            spec = np.fft.rfft((frame - frame.mean()) * self.w)[: self.lines + 1]
            self._acc += (spec.real**2 + spec.imag**2) * self._scale
            self._frames += 1
            start += self.hop
        self._buf = buf[start:]

    def take(self) -> tuple[np.ndarray, int] | None:
        """(mean square per line, frames averaged) since the last take; None when no frame."""
        if not self._frames:
            return None
        out = self._acc / self._frames
        out[0] /= 2  # DC has no negative twin
        frames = self._frames
        self._acc = np.zeros(self.lines + 1)
        self._frames = 0
        return out, frames
