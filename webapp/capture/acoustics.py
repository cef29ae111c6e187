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

import numpy as np

from webapp.capture.events import Event, SoundLevels
from webapp.dsp.slm import SoundLevelMeter
from webapp.openapi.stream import SignalInterpretation

ACOUSTICS_INTERVAL_S = 0.25
RAW_FULL_SCALE = 1 << 23


class LiveAcoustics:
    """The sound level meters of one module's analysed channels."""

    def __init__(self, module: str, publish: Callable[[Event], None]) -> None:
        self.module = module
        self._publish = publish
        self._lock = threading.Lock()
        self.meters: dict[int, SoundLevelMeter] = {}
        self._next: dict[int, float] = {}

    def analyse(self, channel: int, raw: np.ndarray, interp: SignalInterpretation | None) -> None:
        """A decoded block of ``channel`` (raw Q23 values)."""
        if interp is None or not interp.sample_rate:
            return
        meter = self.meters.get(channel)
        if meter is None:
            meter = SoundLevelMeter(interp.sample_rate, interp.unit)
            with self._lock:
                self.meters[channel] = meter
        meter.feed(raw * (interp.scale_factor / RAW_FULL_SCALE) + interp.offset)
        now = time.monotonic()
        if now >= self._next.get(channel, 0.0):
            self._next[channel] = now + ACOUSTICS_INTERVAL_S
            self._publish(SoundLevels(module=self.module, channel=channel, levels=meter.snapshot()))

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
