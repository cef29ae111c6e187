"""Socket.IO: the full state on connect, then coalesced changes pushed as they happen.

One sender (a greenlet under eventlet, a thread otherwise) serves every connected browser. A
change to the shared :class:`LiveState` wakes it at once; it waits at most
:data:`MIN_INTERVAL_S` after its previous push (so a burst of changes becomes one push of the
latest values), asks what changed since then and emits one ``update`` packet holding every
changed topic and the new log entries, encoded once, to every viewer that is up to date
(python-socketio sends one encoded packet to a list of recipients): a push is one socket
write per viewer, however many topics changed. Values are latest-value slots: a viewer that cannot keep up (more than
:data:`MAX_PENDING_PACKETS` Engine.IO packets still queued) is left out of the push and, once
it has drained, gets what it missed on its own, in one catch-up of the latest values. The
orchestrator's publish therefore never waits on any viewer, and one slow viewer never delays
another. Waveforms go the same way, grouped by the channel viewers chose.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import request
from flask_socketio import SocketIO, emit

from webapp.capture.livefrf import FrfKey, key_text
from webapp.capture.schemas import FieldError
from webapp.engine import schemas
from webapp.engine.control import RequestError
from webapp.engine.state import LiveState
from webapp.web import bodies
from webapp.web.access import identity as auth

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.04
"""The shortest time between two pushes: changes within it are coalesced to latest values."""
IDLE_WAKE_S = 0.5
"""The sender looks at least this often even without changes (a viewer that has drained)."""
MAX_PENDING_PACKETS = 16
"""A client with more Engine.IO packets than this still queued is left out of a push."""
UPDATE_EVENT = "update"
"""The event of a push: ``{"topics": {topic: new value, ...}, "log": [entry, ...]}``."""


@dataclass
class _Viewer:
    sid: str
    seq: int
    log_id: int
    wave_seq: int = 0
    wave_key: tuple[str, int] | None = None
    """The channel whose waveform this viewer shows (None: the master's first channel)."""
    spectrum: tuple[str, int] = ("hann", 1600)
    """The window and lines of this viewer's live spectrum (of the same channel)."""
    compare: tuple[tuple[str, int], ...] = ()
    """More channels whose spectra (in the same settings) this viewer overlays."""
    spec_seqs: dict[tuple[str, int] | None, int] = field(default_factory=dict)
    """Per spectrum channel (None: the default one), the sequence number last sent."""
    frf: FrfKey | None = None
    """The live FRF this viewer shows (None: none)."""
    frf_seq: int = 0


class LiveHub:
    """Keeps one sender per connected Socket.IO client."""

    def __init__(
        self,
        socketio: SocketIO,
        state: LiveState,
        min_interval_s: float = MIN_INTERVAL_S,
        watch_waveforms: Any = None,
        watch_spectra: Any = None,
        on_viewer_count: Any = None,
        watch_frfs: Any = None,
    ):
        self.socketio = socketio
        # None: this hub's count is the "viewers" topic; else the count goes there (a web
        # process of several: the engine sums every process's count into the topic).
        self._on_viewer_count = on_viewer_count
        self.state = state
        # Decoding a waveform costs the receivers CPU, so the orchestrator decodes only the
        # channels some viewer shows (``Orchestrator.watch_waveforms``); None: no such hook,
        # the orchestrator keeps its own ``waveforms`` setting.
        self._watch = watch_waveforms
        self._watch_spectra = watch_spectra
        self._spectra: frozenset[tuple[str, int, str, int]] | None = None
        self._watch_frfs = watch_frfs
        self._frfs: frozenset[FrfKey] | None = None
        self._watched: frozenset[tuple[str, int]] | None = None
        self._watch_version: tuple[Any, ...] | None = None
        self._selection_version = 0
        self._watch_lock = threading.Lock()
        self.interval = min_interval_s
        self._viewers: dict[str, _Viewer] = {}
        self._lock = threading.Lock()
        self._pushed: tuple[int, int] = (state.seq, state.log_id)
        """The state marks (topic seq, log id) of the last push: viewers at these are up to
        date and get the next push; others get a catch-up of their own first."""
        self._wake = threading.Event()
        self._sender: Any = None
        state.on_change = self._wake.set

    # --- connection bookkeeping ------------------------------------------------------------

    def connect(self, sid: str) -> dict[str, Any]:
        """Register a viewer; returns the snapshot it must get first."""
        snapshot = self.state.snapshot()
        viewer = _Viewer(sid=sid, seq=snapshot["seq"], log_id=self.state.log_id)
        with self._lock:
            self._viewers[sid] = viewer
            count = len(self._viewers)
        snapshot["log_id"] = viewer.log_id
        if self._on_viewer_count is None:
            snapshot["viewers"] = {"count": count}
        self._count_changed(count)
        self._selection_changed()
        with self._lock:
            if self._sender is None:
                self._sender = self.socketio.start_background_task(self._send_loop)
        self._wake.set()
        return snapshot

    def disconnect(self, sid: str) -> None:
        with self._lock:
            self._viewers.pop(sid, None)
            count = len(self._viewers)
        self._count_changed(count)
        self._selection_changed()

    def _count_changed(self, count: int) -> None:
        if self._on_viewer_count is None:
            self.state.set_topic("viewers", {"count": count})
        else:
            self._on_viewer_count(count)

    def select_waveform(self, sid: str, module: str | None, channel: int | None) -> None:
        """This viewer's channel for the live waveform; each viewer chooses its own (the
        orchestrator decimates every channel, so one viewer's choice never changes another's)."""
        with self._lock:
            viewer = self._viewers.get(sid)
        if viewer is None:
            return
        viewer.wave_key = (module, channel) if module is not None and channel is not None else None
        viewer.wave_seq = 0  # send the new channel's latest block at once
        viewer.spec_seqs = {}
        self._selection_changed()
        self._wake.set()

    def select_spectrum(
        self, sid: str, window: str, lines: int, compare: tuple[tuple[str, int], ...] = ()
    ) -> None:
        """This viewer's spectrum settings (window, lines) for the channel it shows, and the
        channels it overlays in the same settings."""
        with self._lock:
            viewer = self._viewers.get(sid)
        if viewer is None:
            return
        viewer.spectrum = (window, lines)
        viewer.compare = compare
        viewer.spec_seqs = {}
        self._selection_changed()
        self._wake.set()

    def select_frf(self, sid: str, key: FrfKey | None) -> None:
        """This viewer's live FRF (None: none); computed only while some viewer shows it."""
        with self._lock:
            viewer = self._viewers.get(sid)
        if viewer is None:
            return
        viewer.frf = key
        viewer.frf_seq = 0
        self._selection_changed()
        self._wake.set()

    def frfs_watched(self) -> frozenset[FrfKey]:
        with self._lock:
            return frozenset(v.frf for v in self._viewers.values() if v.frf is not None)

    # --- which waveforms the orchestrator decodes ------------------------------------------

    def _selection_changed(self) -> None:
        with self._watch_lock:
            self._selection_version += 1
        self.refresh_watch()

    def watched(self) -> frozenset[tuple[str, int]]:
        """Every channel some viewer shows: the chosen ones, and the default channel (the
        master's first) when a viewer chose none."""
        with self._lock:
            keys = [v.wave_key for v in self._viewers.values()]
        channels = {k for k in keys if k is not None}
        if any(k is None for k in keys):
            default = self.state.default_wave_target()
            if default is not None:
                channels.add(default)
        return frozenset(channels)

    def refresh_watch(self) -> None:
        """Tell the orchestrator which waveforms to decode, when that may have changed (a
        viewer came, went or chose; a capture started; the rig or setup changed). Cheap when
        nothing changed: every sender calls it at each tick."""
        if self._watch is None:
            return
        with self._watch_lock:
            version = (self._selection_version, *self.state.watch_version())
            if version == self._watch_version:
                return
            self._watch_version = version
            channels = self.watched()
            spectra = self.spectra_watched()
            frfs = self.frfs_watched()
            if self._watch_frfs is not None and frfs != self._frfs:
                self._frfs = frfs
                try:
                    self._watch_frfs(frfs)
                except Exception:
                    log.exception("choosing the live FRFs to compute failed")
            if self._watch_spectra is not None and spectra != self._spectra:
                self._spectra = spectra
                try:
                    self._watch_spectra(spectra)
                except Exception:
                    log.exception("choosing the spectra to compute failed")
            if channels == self._watched:
                return
            self._watched = channels
            # Called under the lock: two senders that each saw a different selection must
            # apply them in order, or the older one could land last and stay in force.
            try:
                self._watch(channels)
            except Exception:
                log.exception("choosing the waveforms to decode failed")

    def spectra_watched(self) -> frozenset[tuple[str, int, str, int]]:
        """Every (channel, window, lines) some viewer's spectrum shows."""
        with self._lock:
            viewers = list(self._viewers.values())
        default = self.state.default_wave_target()
        out = set()
        for v in viewers:
            window, lines = v.spectrum
            for key in self._spectrum_keys(v):
                channel = key if key is not None else default
                if channel is not None:
                    out.add((channel[0], channel[1], window, lines))
        return frozenset(out)

    @staticmethod
    def _spectrum_keys(v: _Viewer) -> list[tuple[str, int] | None]:
        """The channels of a viewer's spectrum: the one it shows first, then its overlays."""
        return [v.wave_key, *(k for k in v.compare if k != v.wave_key)]

    def viewers_sids(self) -> list[str]:
        """The connected viewers' Socket.IO ids, in the order they connected."""
        with self._lock:
            return list(self._viewers)

    @property
    def viewer_count(self) -> int:
        with self._lock:
            return len(self._viewers)

    # --- sending ---------------------------------------------------------------------------

    def _pending(self, sid: str) -> int:
        """Engine.IO packets still queued for this client (0 when that cannot be known)."""
        try:
            server = self.socketio.server
            eio_sid = server.manager.eio_sid_from_sid(sid, "/")
            sock = server.eio.sockets.get(eio_sid)
            return sock.queue.qsize() if sock is not None else 0
        except Exception:  # test clients have no Engine.IO socket
            return 0

    def _send_loop(self) -> None:
        """The one sender: wakes on a change (or every :data:`IDLE_WAKE_S`), never sooner
        than :attr:`interval` after its previous push."""
        last = 0.0
        while True:
            self._wake.wait(IDLE_WAKE_S)
            self._wake.clear()
            early = last + self.interval - time.monotonic()
            if early > 0:
                self.socketio.sleep(early)
            last = time.monotonic()
            try:
                self.refresh_watch()
                self.push()
            except Exception:
                log.exception("pushing to the viewers failed")

    def push(self) -> None:
        """Send what changed since the last push: once to every viewer that is up to date,
        a catch-up of its own to a viewer that had fallen behind (or connected in between)."""
        with self._lock:
            viewers = list(self._viewers.values())
        before = self._pushed
        seq, changed, entries, log_id = self.state.changes_since(*before)
        self._pushed = (seq, log_id)
        ready = [v for v in viewers if self._pending(v.sid) <= MAX_PENDING_PACKETS]
        current: list[str] = []
        for v in ready:
            if (v.seq, v.log_id) == before:
                current.append(v.sid)
            else:
                # Latest values of what changed since its own marks, and the log entries it
                # has not had, up to this push's.
                _, missed, missed_entries, _ = self.state.changes_since(
                    v.seq, v.log_id, upto_log=log_id
                )
                self._emit(missed, missed_entries, [v.sid])
            v.seq, v.log_id = seq, log_id
        self._emit(changed, entries, current)
        self._push_waveforms(ready)
        self._push_spectra(ready)
        self._push_frfs(ready)

    def _emit(self, changed: dict[str, Any], entries: list[dict[str, Any]], to: list[str]) -> None:
        """One ``update`` packet with every changed topic and the new log entries: a push costs
        each viewer's socket one write, however many topics changed (a capture changes four
        to six of them a few times a second)."""
        if not to or not (changed or entries):
            return
        payload: dict[str, Any] = {"topics": changed}
        if entries:
            payload["log"] = entries
        self.socketio.emit(UPDATE_EVENT, payload, to=to)

    def _push_waveforms(self, viewers: list[_Viewer]) -> None:
        """Each viewer's chosen channel's newest block, if it has not had it. ``values`` is
        bytes (float32 LE): Socket.IO sends it as a binary attachment."""
        found = []
        for v in viewers:
            seq, wave = self.state.waveform_since(v.wave_seq, v.wave_key)
            if wave is not None:
                v.wave_seq = seq
                found.append((seq, wave, v.sid))
        self._emit_grouped("waveform", found)

    def _push_spectra(self, viewers: list[_Viewer]) -> None:
        """Each viewer's newest spectrum in its settings, if it has not had it."""
        found = []
        for v in viewers:
            for key in self._spectrum_keys(v):
                seq, item = self.state.spectrum_since(v.spec_seqs.get(key, 0), key, *v.spectrum)
                if item is not None:
                    v.spec_seqs[key] = seq
                    found.append((seq, item, v.sid))
        self._emit_grouped("spectrum", found)

    def _push_frfs(self, viewers: list[_Viewer]) -> None:
        """Each viewer's live FRF's newest cross spectra, if it has not had them."""
        found = []
        for v in viewers:
            if v.frf is None:
                continue
            seq, item = self.state.frf_since(v.frf_seq, key_text(v.frf))
            if item is not None:
                v.frf_seq = seq
                found.append((seq, item, v.sid))
        self._emit_grouped("frf", found)

    def _emit_grouped(self, event: str, found: list[tuple[int, dict[str, Any], str]]) -> None:
        """One emit per item (its sequence number names it), to every viewer due to get it."""
        items: dict[int, dict[str, Any]] = {}
        groups: dict[int, list[str]] = {}
        for seq, item, sid in found:
            items[seq] = item
            groups.setdefault(seq, []).append(sid)
        for seq, sids in groups.items():
            self.socketio.emit(event, items[seq], to=sids)


def register(socketio: SocketIO, hub: LiveHub, control: Any) -> None:
    """Socket.IO handlers: connection, waveform choice and the control events."""

    @socketio.on("connect")
    def on_connect(auth_data: Any = None) -> bool | None:
        if auth.socket_role() is None:
            return False  # refused: anonymous clients get nothing when access control is on
        emit("state", hub.connect(request.sid))
        return None

    @socketio.on("disconnect")
    def on_disconnect(*_: Any) -> None:
        hub.disconnect(request.sid)

    def choice_of(model: Any, data: Any) -> tuple[Any, dict[str, Any] | None]:
        """A viewer's choice checked by its model: (choice, None) or (None, the refusal)."""
        try:
            return schemas.check(model, bodies.check_object(data)), None
        except bodies.BodyError as exc:
            return None, {
                "ok": False,
                "status": exc.status,
                "error": exc.message,
                "field": exc.field,
            }
        except FieldError as exc:
            return None, {"ok": False, "status": 400, "error": exc.message, "field": exc.field}

    @socketio.on("select-waveform")
    def on_select_waveform(data: Any) -> dict[str, Any]:
        choice, refusal = choice_of(schemas.WaveformChoice, data)
        if refusal is not None:
            return refusal
        module, channel = choice.module, choice.channel
        hub.select_waveform(request.sid, module, channel)
        return {"ok": True, "module": module, "channel": channel}

    @socketio.on("select-spectrum")
    def on_select_spectrum(data: Any) -> dict[str, Any]:
        choice, refusal = choice_of(schemas.SpectrumChoice, data)
        if refusal is not None:
            return refusal
        compare = tuple((c.module, c.channel) for c in choice.compare)
        hub.select_spectrum(request.sid, choice.window, choice.lines, compare)
        return {
            "ok": True,
            "window": choice.window,
            "lines": choice.lines,
            "compare": [{"module": m, "channel": c} for m, c in compare],
        }

    @socketio.on("select-frf")
    def on_select_frf(data: Any) -> dict[str, Any]:
        choice, refusal = choice_of(schemas.FrfChoice, data)
        if refusal is not None:
            return refusal
        key: FrfKey | None = None
        if choice.reference is not None:
            key = (
                (choice.reference.module, choice.reference.channel),
                tuple((r.module, r.channel) for r in choice.responses),
                choice.lines,
            )
        hub.select_frf(request.sid, key)
        return {"ok": True, "key": key_text(key) if key is not None else None}

    def controlled(name: str, role: str, action: Any) -> None:
        def handler(data: Any = None) -> dict[str, Any]:
            have = auth.socket_role()
            if not auth.role_at_least(have, role):
                return {"ok": False, "error": f"this needs the {role} role", "status": 403}
            try:
                body = bodies.check_object(data)
            except bodies.BodyError as exc:
                return {"ok": False, "status": exc.status, "error": exc.message, "field": exc.field}
            try:
                return control.socket_action(action, body)
            except RequestError as exc:  # e.g. no capture engine answers (503)
                return {"ok": False, "status": exc.status, **exc.to_json()}

        handler.__name__ = f"on_{name.replace(':', '_')}"
        socketio.on_event(name, handler)

    controlled("capture:arm", "operator", "arm")
    controlled("capture:start", "operator", "start")
    controlled("capture:stop", "operator", "stop")
    controlled("capture:disarm", "operator", "disarm")
    controlled("capture:monitor", "operator", "monitor")
    controlled("capture:record", "operator", "record")
    controlled("capture:stop-recording", "operator", "stop-recording")
    controlled("capture:trigger", "operator", "trigger")
    controlled("generator:start", "operator", "generator-start")
    controlled("generator:stop", "operator", "generator-stop")
