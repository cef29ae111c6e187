"""Sound level meters on the live stream, for the channels somebody looks at.

A channel a viewer shows (``Orchestrator.watch_waveforms``) has every block decoded and fed to
a :class:`webapp.dsp.slm.SoundLevelMeter` (weighted and time-weighted levels, Leq, max, peak,
1/1- and 1/3-octave bands); its figures go out as :class:`SoundLevels` events a few times a
second. Nobody looking: nothing is decoded beyond the plain levels. The running figures (Leq,
LAFmax, peaks) start again with each recording (:meth:`LiveAcoustics.reset`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from webapp.capture.events import Event, SoundLevels, Spectrum
from webapp.capture.levels import RAW_FULL_SCALE
from webapp.openapi.stream import SignalInterpretation

if TYPE_CHECKING:  # scipy.signal loads only once somebody watches a channel (start-up time)
    from webapp.dsp.slm import SoundLevelMeter
    from webapp.dsp.spectrum import SpectrumAverager

ACOUSTICS_INTERVAL_S = 0.25


class LiveAcoustics:
    """The sound level meters of one module's analysed channels."""

    def __init__(self, module: str, publish: Callable[[Event], None]) -> None:
        self.module = module
        self._publish = publish
        self._lock = threading.Lock()
        self.meters: dict[int, SoundLevelMeter] = {}
        self._next: dict[int, float] = {}
        self.spectra: dict[tuple[int, str, int], SpectrumAverager | None] = {}
        """Per (channel, window, lines) a viewer asked for: its averager (made at the first
        block, when the rate is known)."""

    def analyse(self, channel: int, raw: np.ndarray, interp: SignalInterpretation | None) -> None:
        """A decoded block of ``channel`` (raw Q23 values)."""
        if interp is None or not interp.sample_rate:
            return
        meter = self.meters.get(channel)
        if meter is None:
            from webapp.dsp.slm import SoundLevelMeter

            meter = SoundLevelMeter(interp.sample_rate, interp.unit)
            with self._lock:
                self.meters[channel] = meter
        x = raw * (interp.scale_factor / RAW_FULL_SCALE) + interp.offset
        meter.feed(x)
        mine = [k for k in list(self.spectra) if k[0] == channel]
        for key in mine:
            averager = self.spectra.get(key)
            if averager is None:
                from webapp.dsp.spectrum import SpectrumAverager

                averager = SpectrumAverager(interp.sample_rate, key[1], key[2])
                self.spectra[key] = averager
            averager.feed(x)
        now = time.monotonic()
        if now >= self._next.get(channel, 0.0):
            self._next[channel] = now + ACOUSTICS_INTERVAL_S
            self._publish(SoundLevels(module=self.module, channel=channel, levels=meter.snapshot()))
            for key in mine:
                averager = self.spectra.get(key)
                got = averager.take() if averager is not None else None
                if averager is None or got is None:
                    continue
                ms, frames = got
                self._publish(
                    Spectrum(
                        module=self.module, channel=channel, window=key[1], lines=key[2],
                        df=averager.df, enbw_hz=averager.enbw_hz, frames=frames,
                        unit=interp.unit, ms=ms.astype("<f4").tobytes(),
                    )
                )  # fmt: skip

    def want_spectra(self, wanted: set[tuple[int, str, int]]) -> None:
        """The (channel, window, lines) spectra viewers look at; others are dropped."""
        with self._lock:
            for key in list(self.spectra):
                if key not in wanted:
                    del self.spectra[key]
            for key in wanted:
                self.spectra.setdefault(key, None)

    def keep_only(self, channels: set[int]) -> None:
        """Forget the meters of channels nobody looks at any more."""
        with self._lock:
            for c in list(self.meters):
                if c not in channels:
                    del self.meters[c]

    def reset(self) -> None:
        """A recording starts: Leq, max and peaks run from here."""
        with self._lock:
            for meter in self.meters.values():
                meter.reset()
