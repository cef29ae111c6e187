"""Live frequency response: cross spectra between a reference and response channels, for the
FRFs somebody looks at, while monitoring or recording.

Each FRF a viewer shows (:data:`FrfKey`: reference channel, up to three response channels on any
modules of the session, and the lines) has every block of its channels decoded (the receivers'
watchers, as the sound level meters). Channels of one session are sample-synchronous (one
module, or modules on one PTP time grid), so the blocks are aligned by their time stamps: the
common part of every channel goes to a :class:`webapp.dsp.frf.FrfAverager` (Hann, half
overlap, ``2.56 × lines`` samples per segment: lines up to the bandwidth, as the live spectra).
A gap on any channel (lost data, a new measurement) drops the partial segment and starts the
alignment again, so no segment ever spans a gap.

A few times a second the mean auto and cross spectra of the segments since the last time go
out as a :class:`~webapp.capture.events.CrossSpectra` event; each viewer averages them itself
(its own count and reset) and forms H1, H2 and the coherence. The work per block is one or two
FFTs of the segment length per channel: small slices on the receivers' own time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from webapp.capture.events import CrossSpectra, Event
from webapp.capture.levels import RAW_FULL_SCALE
from webapp.openapi.stream import SignalInterpretation, ticks_per_sample

if TYPE_CHECKING:
    from webapp.capture.session import Session
    from webapp.dsp.frf import FrfAverager

Channel = tuple[str, int]
FrfKey = tuple[Channel, tuple[Channel, ...], int]
"""(reference (module, channel), responses, lines)."""
PUBLISH_INTERVAL_S = 0.25
MAX_BUFFER_S = 4.0
"""A channel further ahead of the others than this loses its oldest samples (the alignment
starts again): a module's stream that stalls cannot make the others' buffers grow."""


def key_text(key: FrfKey) -> str:
    """``ADDR/1>ADDR/2,ADDR/3@1600``: the FRF's name in events and viewers' choices."""
    (ra, rc), responses, lines = key
    return f"{ra}/{rc}>" + ",".join(f"{a}/{c}" for a, c in responses) + f"@{lines}"


class LiveFrf:
    """The aligned blocks and the averager of one FRF."""

    def __init__(self, key: FrfKey, publish: Callable[[Event], None]) -> None:
        self.key = key
        self.name = key_text(key)
        self.channels: list[Channel] = [key[0], *key[1]]
        self.lines = key[2]
        self._publish = publish
        self._lock = threading.Lock()
        n = len(self.channels)
        self._start: list[int | None] = [None] * n
        self._data: list[np.ndarray] = [np.zeros(0)] * n
        self._units: list[str] = [""] * n
        self._rate: float | None = None
        self._tps = 0
        self._averager: FrfAverager | None = None
        self._next = 0.0
        self.restarts = 0
        """How often a gap made the alignment start again (tests, diagnostics)."""

    def block(
        self, index: int, t: int, raw: np.ndarray, interp: SignalInterpretation | None
    ) -> None:
        """A decoded block (raw Q23 values, first sample at ``t`` ticks) of channel ``index``."""
        if interp is None or not interp.sample_rate:
            return
        x = raw * (interp.scale_factor / RAW_FULL_SCALE) + interp.offset
        with self._lock:
            if float(interp.sample_rate) != self._rate:
                # The first block, or a new session at another bandwidth (one rate per session).
                if self._rate is not None:
                    self._restart()
                self._begin(float(interp.sample_rate))
            self._units[index] = interp.unit
            self._append(index, t, x)
            self._feed()
            taken = self._take_due()
        if taken is not None:
            self._publish(taken)

    def _begin(self, rate: float) -> None:
        from webapp.dsp.frf import FrfAverager
        from webapp.dsp.spectrum import fft_size

        self._rate = rate
        self._tps = ticks_per_sample(int(rate))
        self._averager = FrfAverager(rate, len(self.channels) - 1, nperseg=fft_size(self.lines))

    def _restart(self) -> None:
        self._start = [None] * len(self.channels)
        self._data = [np.zeros(0)] * len(self.channels)
        if self._averager is not None:
            self._averager.restart()
        self.restarts += 1

    def _append(self, index: int, t: int, x: np.ndarray) -> None:
        start = self._start[index]
        if start is not None and t != start + self._data[index].size * self._tps:
            self._restart()  # a gap (or a new measurement) on this channel
            start = None
        if start is None:
            self._start[index], self._data[index] = t, x
        else:
            self._data[index] = np.concatenate((self._data[index], x))
        limit = int(MAX_BUFFER_S * (self._rate or 0))
        if self._data[index].size > limit > 0:
            cut = self._data[index].size - limit
            self._data[index] = self._data[index][cut:]
            self._start[index] = (self._start[index] or 0) + cut * self._tps

    def _feed(self) -> None:
        starts = self._start
        if any(s is None for s in starts) or self._averager is None:
            return
        common = max(s for s in starts if s is not None)
        for i, s in enumerate(starts):
            assert s is not None
            if s < common:
                k = min((common - s) // self._tps, self._data[i].size)
                self._data[i] = self._data[i][k:]
                starts[i] = s + k * self._tps
        n = min(d.size for d in self._data)
        if n == 0 or len({s for s in starts}) != 1:
            return
        self._averager.add(self._data[0][:n], np.vstack([d[:n] for d in self._data[1:]]))
        for i in range(len(self._data)):
            self._data[i] = self._data[i][n:]
            starts[i] = (starts[i] or 0) + n * self._tps

    def _take_due(self) -> CrossSpectra | None:
        now = time.monotonic()
        if now < self._next or self._averager is None:
            return None
        got = self._averager.take()
        if got is None:
            return None
        self._next = now + PUBLISH_INTERVAL_S
        gxx, gyy, gxy, segments = got
        keep = self.lines + 1
        parts = [gxx[:keep]]
        for r in range(gyy.shape[0]):
            parts += [gyy[r, :keep], gxy[r, :keep].real, gxy[r, :keep].imag]
        (ra, rc), responses, lines = self.key
        return CrossSpectra(
            key=self.name,
            reference={"module": ra, "channel": rc},
            responses=[{"module": a, "channel": c} for a, c in responses],
            lines=lines,
            df=(self._rate or 0.0) / self._averager.nperseg,
            sample_rate=self._rate or 0.0,
            segments=segments,
            units={"reference": self._units[0], "responses": self._units[1:]},
            data=np.concatenate(parts).astype("<f4").tobytes(),
        )


class LiveFrfs:
    """The FRFs viewers look at, wired to the session's receivers."""

    def __init__(self, publish: Callable[[Event], None]) -> None:
        self._publish = publish
        self._lock = threading.Lock()
        self._wanted: frozenset[FrfKey] = frozenset()
        self.live: dict[FrfKey, LiveFrf] = {}
        self._wired: list[tuple[Any, str]] = []

    def want(self, keys: Iterable[FrfKey]) -> None:
        self._wanted = frozenset(
            ((str(r[0]), int(r[1])), tuple((str(a), int(c)) for a, c in rs), int(n))
            for r, rs, n in keys
        )

    def wire(self, s: Session) -> None:
        """Watch the channels of every wanted FRF on the session's receivers (nothing else)."""
        with self._lock:
            for receiver, name in self._wired:
                receiver.unwatch(name)
            self._wired = []
            live: dict[FrfKey, LiveFrf] = {}
            modules = {m.address: m for m in s.modules}
            for key in sorted(self._wanted):
                frf = self.live.get(key) or LiveFrf(key, self._publish)
                live[key] = frf
                for index, (address, channel) in enumerate(frf.channels):
                    m = modules.get(address)
                    found = m.stream_of(channel) if m is not None else None
                    if found is None:
                        continue  # not in this session or not enabled: the FRF stays empty
                    receiver, sid = found
                    name = f"frf:{frf.name}:{index}"

                    def on_block(
                        signal: int, t: int, raw: np.ndarray, _f: LiveFrf = frf,
                        _i: int = index, _r: Any = receiver,
                    ) -> None:  # fmt: skip
                        _f.block(_i, t, raw, _r.tap.interpretations.get(signal))

                    receiver.watch(sid, name, on_block)
                    self._wired.append((receiver, name))
            self.live = live
