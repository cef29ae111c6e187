"""Socket.IO: the full state on connect, then coalesced changes, per client.

Every connected browser gets its own sender (a greenlet under eventlet, a thread otherwise)
that wakes a few times a second, asks the shared :class:`LiveState` what changed since it last
looked and emits only that. Values are latest-value slots, so a viewer that cannot keep up
skips intermediate values: before emitting, the sender looks at how many packets are still
waiting in that client's Engine.IO queue and lets the tick pass if the client is behind. The
orchestrator's publish therefore never waits on any viewer, and one slow viewer never delays
another.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import request
from flask_socketio import SocketIO, emit

from webapp.capture.schemas import FieldError
from webapp.web import auth, bodies, schemas
from webapp.web.state import LiveState

log = logging.getLogger(__name__)

DEFAULT_RATE_HZ = 8.0
MAX_PENDING_PACKETS = 16
"""A client with more Engine.IO packets than this still queued is skipped for a tick."""


@dataclass
class _Viewer:
    sid: str
    seq: int
    log_id: int
    wave_seq: int = 0
    wave_key: tuple[str, int] | None = None
    """The channel whose waveform this viewer shows (None: the master's first channel)."""
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)


class LiveHub:
    """Keeps one sender per connected Socket.IO client."""

    def __init__(
        self,
        socketio: SocketIO,
        state: LiveState,
        rate_hz: float = DEFAULT_RATE_HZ,
        watch_waveforms: Any = None,
    ):
        self.socketio = socketio
        self.state = state
        # Decoding a waveform costs the receivers CPU, so the orchestrator decodes only the
        # channels some viewer shows (``Orchestrator.watch_waveforms``); None: no such hook,
        # the orchestrator keeps its own ``waveforms`` setting.
        self._watch = watch_waveforms
        self._watched: frozenset[tuple[str, int]] | None = None
        self._watch_version: tuple[Any, ...] | None = None
        self._selection_version = 0
        self._watch_lock = threading.Lock()
        self.interval = 1.0 / rate_hz
        self._viewers: dict[str, _Viewer] = {}
        self._lock = threading.Lock()

    # --- connection bookkeeping ------------------------------------------------------------

    def connect(self, sid: str) -> dict[str, Any]:
        """Register a viewer; returns the snapshot it must get first."""
        snapshot = self.state.snapshot()
        viewer = _Viewer(sid=sid, seq=snapshot["seq"], log_id=self.state.log_id)
        with self._lock:
            self._viewers[sid] = viewer
            count = len(self._viewers)
        snapshot["viewers"] = {"count": count}
        snapshot["log_id"] = viewer.log_id
        self.state.set_topic("viewers", {"count": count})
        self._selection_changed()
        self.socketio.start_background_task(self._send_loop, viewer)
        return snapshot

    def disconnect(self, sid: str) -> None:
        with self._lock:
            viewer = self._viewers.pop(sid, None)
            count = len(self._viewers)
        if viewer is not None:
            viewer.stop.set()
            viewer.wake.set()
        self.state.set_topic("viewers", {"count": count})
        self._selection_changed()

    def select_waveform(self, sid: str, module: str | None, channel: int | None) -> None:
        """This viewer's channel for the live waveform; each viewer chooses its own (the
        orchestrator decimates every channel, so one viewer's choice never changes another's)."""
        with self._lock:
            viewer = self._viewers.get(sid)
        if viewer is None:
            return
        viewer.wave_key = (module, channel) if module is not None and channel is not None else None
        viewer.wave_seq = 0  # send the new channel's latest block at once
        self._selection_changed()
        viewer.wake.set()

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
            if channels == self._watched:
                return
            self._watched = channels
            # Called under the lock: two senders that each saw a different selection must
            # apply them in order, or the older one could land last and stay in force.
            try:
                self._watch(channels)
            except Exception:
                log.exception("choosing the waveforms to decode failed")

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

    def _send_loop(self, viewer: _Viewer) -> None:
        # One tick per interval, aligned to a fixed schedule so the rate is rate_hz however
        # long a send takes; a wake (a waveform selection) sends at once, but never sooner
        # than one interval after the previous send, so a client cannot make its sender spin.
        last = time.monotonic()  # the first tick comes after the snapshot sent on connect
        while not viewer.stop.is_set():
            viewer.wake.wait(max(0.0, last + self.interval - time.monotonic()))
            viewer.wake.clear()
            if viewer.stop.is_set():
                break
            early = last + self.interval - time.monotonic()
            if early > 0:
                self.socketio.sleep(early)
            last = time.monotonic()
            self.refresh_watch()
            if self._pending(viewer.sid) > MAX_PENDING_PACKETS:
                continue  # behind: its slots keep the latest values for the next tick
            try:
                self._send_changes(viewer)
            except Exception:
                log.exception("sending to viewer %s failed", viewer.sid)

    def _send_changes(self, viewer: _Viewer) -> None:
        seq, changed, entries, log_id = self.state.changes_since(viewer.seq, viewer.log_id)
        viewer.seq, viewer.log_id = seq, log_id
        for topic, value in changed.items():
            self.socketio.emit(topic, value, to=viewer.sid)
        for entry in entries:
            self.socketio.emit(entry["level"], entry, to=viewer.sid)
        wave_seq, wave = self.state.waveform_since(viewer.wave_seq, viewer.wave_key)
        if wave is not None:
            viewer.wave_seq = wave_seq
            # ``values`` is bytes (float32 LE): Socket.IO sends it as a binary attachment.
            self.socketio.emit("waveform", wave, to=viewer.sid)


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

    @socketio.on("select-waveform")
    def on_select_waveform(data: Any) -> dict[str, Any]:
        try:
            choice = schemas.check(schemas.WaveformChoice, bodies.check_object(data))
        except bodies.BodyError as exc:
            return {"ok": False, "status": exc.status, "error": exc.message, "field": exc.field}
        except FieldError as exc:
            return {"ok": False, "status": 400, "error": exc.message, "field": exc.field}
        module, channel = choice.module, choice.channel
        hub.select_waveform(request.sid, module, channel)
        return {"ok": True, "module": module, "channel": channel}

    def controlled(name: str, role: str, action: Any) -> None:
        def handler(data: Any = None) -> dict[str, Any]:
            have = auth.socket_role()
            if not auth.role_at_least(have, role):
                return {"ok": False, "error": f"this needs the {role} role", "status": 403}
            try:
                body = bodies.check_object(data)
            except bodies.BodyError as exc:
                return {"ok": False, "status": exc.status, "error": exc.message, "field": exc.field}
            return control.socket_action(action, body)

        handler.__name__ = f"on_{name.replace(':', '_')}"
        socketio.on_event(name, handler)

    controlled("capture:arm", "operator", "arm")
    controlled("capture:start", "operator", "start")
    controlled("capture:stop", "operator", "stop")
    controlled("capture:disarm", "operator", "disarm")
