"""What the live path computes for viewers: which channels emit Waveform events, which
channels' blocks are decoded for sound level meters and spectra, which live FRFs are computed.
Nobody looking at a channel: its blocks are not decoded for them. A base class of
:class:`webapp.capture.orchestrator.Orchestrator` (through
:class:`~webapp.capture.recording.Recording`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webapp.capture.acoustics import LiveAcoustics
from webapp.capture.events import Event
from webapp.capture.levels import LiveModule, levels_interval
from webapp.capture.livefrf import FrfKey, LiveFrfs
from webapp.capture.receiver import StreamReceiver
from webapp.capture.session import ModuleRun, Session


class LiveSelection:
    """Waveform, spectrum and FRF choices of :class:`~webapp.capture.orchestrator.Orchestrator`
    (which provides the state and the event publishing declared here)."""

    live_levels: bool
    waveforms: str
    _session: Session | None
    _waveform: tuple[str | None, int | None]
    _watched: frozenset[tuple[str, int]] | None
    _spectra: frozenset[tuple[str, int, str, int]]
    frfs: LiveFrfs

    def _publish(self, event: Event) -> None:
        raise NotImplementedError

    def select_waveform(self, module: str | None, channel: int | None) -> None:
        """With ``waveforms="selected"``: the one channel whose Waveform events are emitted
        (default: the master's first channel). Ignored with ``"all"`` and ``"none"``."""
        self._waveform = (module, channel)
        self._apply_waveform_choice()

    def watch_waveforms(self, channels: Iterable[tuple[str, int]] | None) -> None:
        """Emit Waveform events for exactly these (module address, channel) pairs, e.g. the
        channels viewers have chosen; ``None`` returns to the constructor's ``waveforms``."""
        self._watched = None if channels is None else frozenset((a, int(c)) for a, c in channels)
        self._apply_waveform_choice()

    def watch_spectra(self, spectra: Iterable[tuple[str, int, str, int]]) -> None:
        """Compute averaged spectra for exactly these (module address, channel, window,
        lines), the ones viewers show (:mod:`webapp.dsp.spectrum`)."""
        self._spectra = frozenset((a, int(c), str(w), int(n)) for a, c, w, n in spectra)
        self._apply_waveform_choice()

    def watch_frfs(self, frfs: Iterable[FrfKey]) -> None:
        """Compute the cross spectra of exactly these live FRFs (reference, responses, lines),
        the ones viewers show (:mod:`webapp.capture.livefrf`)."""
        self.frfs.want(frfs)
        self._apply_waveform_choice()

    def _apply_waveform_choice(self) -> None:
        s = self._session
        if s is not None:
            for m in s.modules:
                if m.live is not None:
                    m.live.waveform_channels = self._waveform_channels_for(s, m)
            self._analyse_watched(s)

    def _waveform_channels_for(self, s: Session, m: ModuleRun) -> frozenset[int] | None:
        watched = self._watched
        if watched is not None:
            return frozenset(c for a, c in watched if a == m.address)
        if self.waveforms == "all":
            return None
        if self.waveforms == "none":
            return frozenset()
        module, channel = self._waveform
        if module is None:
            first = m.channels[:1] if m is s.master else []
            return frozenset(first)
        if module != m.address:
            return frozenset()
        return frozenset([channel] if channel is not None else m.channels[:1])

    def _new_live_views(self, s: Session) -> None:
        for m in s.modules:
            m.receivers = []
            m.faults = {}
            m.live = LiveModule(
                m.address,
                self._publish,
                levels=self.live_levels,
                levels_interval_s=levels_interval(sum(len(x.channels) for x in s.modules)),
            )
            m.live.waveform_channels = self._waveform_channels_for(s, m)
            m.acoustics = LiveAcoustics(m.address, self._publish)

    def _analyse_watched(self, s: Session) -> None:
        """Sound level meters for exactly the channels viewers look at (every block of each
        decoded); nobody looking at a channel: its blocks are not decoded for them."""
        watched = set(self._watched or ())
        spectra = self._spectra
        watched |= {(a, c) for a, c, _w, _n in spectra}
        for m in s.modules:
            acoustics = m.acoustics
            if acoustics is None:
                continue
            acoustics.want_spectra({(c, w, n) for a, c, w, n in spectra if a == m.address})
            mine = {c for a, c in watched if a == m.address}
            for r in m.receivers:
                r.unwatch("acoustics")
            for channel in sorted(mine):
                found = m.stream_of(channel)
                if found is None:
                    continue
                receiver, sid = found

                def analyse(
                    signal: int, _t: int, raw: Any, _r: StreamReceiver = receiver,
                    _c: int = channel, _a: LiveAcoustics = acoustics,
                ) -> None:  # fmt: skip
                    _a.analyse(_c, raw, _r.tap.interpretations.get(signal))

                receiver.watch(sid, "acoustics", analyse)
            acoustics.keep_only(mine)
        self.frfs.wire(s)
