"""The streams of a session: a receiver per stream port of every module (writing the capture's
files, or keeping a ring for monitoring; in worker processes for a large rig), their drops,
reconnections and failures, the drain after the stop and the closing with what each lost. A
base class of :class:`webapp.capture.recording.Recording`."""

from __future__ import annotations

import threading
import time
from typing import Any

from webapp.capture import store
from webapp.capture.events import Error, Event, Warning
from webapp.capture.live_selection import LiveSelection
from webapp.capture.receiver import StreamReceiver
from webapp.capture.session import PendingCapture, Session, StreamFailure, parallel
from webapp.capture.workerpools import WorkerReceivers

DRAIN_IDLE_S = 0.3
"""After the stop, a stream that has been quiet this long has delivered everything."""


class StreamConnections(WorkerReceivers, LiveSelection):
    """Stream receivers of :class:`~webapp.capture.orchestrator.Orchestrator` (which provides the
    state and the event publishing declared here)."""

    _cond: threading.Condition
    _status_version: int

    def _publish(self, event: Event) -> None:
        raise NotImplementedError

    def _connect_streams(
        self,
        s: Session,
        pending: PendingCapture | None,
        capture: store.CaptureRecord | None,
        ring_retention_ticks: int | None = None,
    ) -> None:
        """A receiver per stream port of every module: writing ``pending``'s files (and naming
        them in ``capture``), or, without them, keeping a ring for monitoring."""
        if pending is not None:
            pending.folder.mkdir(parents=True, exist_ok=True)
        self._new_live_views(s)
        # A large rig's recording: its receivers in worker processes (webapp.capture.workers).
        pool = self._recording_pool(s) if pending is not None else None
        for m in s.modules:
            if pool is not None:
                assert m.live is not None
                m.live = pool.live_for(m.number, m.live)
            record = capture.modules[m.number - 1] if capture is not None else None
            if record is not None:
                record.setup, record.transducers = m.setup, m.transducers
                record.files = []
            signal_channel = dict(enumerate(m.channels, start=1))
            for i, port in enumerate(m.ports):
                only: int | None = m.channels[i] if s.settings.multi_socket else None
                if only is not None:
                    channels = [only]

                    def channel_of(_sid: int, _c: int = only) -> int:
                        return _c
                else:
                    channels = list(m.channels)

                    def channel_of(sid: int, _map: dict[int, int] = signal_channel) -> int:
                        return _map.get(sid, sid)

                name = stream_file_name(pending.name, m.number, only) if pending else None
                if pool is not None and pending is not None and name is not None:
                    self._open_in_worker(
                        pool, s, m, port, pending.folder / name, only, channels, signal_channel
                    )
                    if record is not None:
                        record.files.append(store.FileRecord(file=name, channels=channels))
                    continue
                sock = m.client.connect_stream(port)
                assert m.live is not None
                try:
                    receiver = StreamReceiver(
                        m.address,
                        sock,
                        pending.folder / name if pending is not None and name else None,
                        m.live,
                        channel_of,
                        lambda r, err, _s=s: self._receiver_ended(_s, r, err),
                        label=f"{m.address} port {port}",
                        channel=only,
                        ring_retention_ticks=ring_retention_ticks,
                        reconnect=(
                            (lambda _m=m, _p=port: _m.client.connect_stream(_p))
                            if s.settings.on_stream_drop == "reconnect"
                            else None
                        ),
                        on_reconnect=self._stream_reconnected,
                    )
                except BaseException:
                    # No receiver owns the socket yet, so _close_streams would leave it open.
                    sock.close()
                    raise
                receiver.channels = channels
                m.receivers.append(receiver)
                if record is not None and name is not None:
                    record.files.append(store.FileRecord(file=name, channels=channels))
        self._analyse_watched(s)

    def _stream_reconnected(self, receiver: StreamReceiver, drop: dict[str, Any]) -> None:
        """A stream that dropped and (with ``on_stream_drop`` reconnect) was connected again:
        the user hears of it at once; the samples it missed are counted when the capture ends.
        (One that could not be connected again ends its receiver: _receiver_ended reports it.)"""
        where = f"module {receiver.module}"
        if receiver.channel is not None:
            where += f" channel {receiver.channel}"
        self._publish(
            Warning(
                message=(
                    f"{where}: its stream dropped after {drop['after_bytes']} bytes "
                    f"({drop['error']}); connected again after {drop['reconnect_s']:g} s; the "
                    f"samples it missed are counted as lost in {receiver.target}"
                ),
                module=receiver.module,
            )
        )

    def _receiver_ended(self, s: Session, receiver: StreamReceiver, error: str | None) -> None:
        if error is None:
            return
        message = f"module {receiver.module}: {error}"
        if receiver.channel is not None:
            # Multi-socket: one stream of several per module; say which channel and file.
            message = (
                f"module {receiver.module} channel {receiver.channel} ({receiver.target}): {error}"
            )
        failure = StreamFailure(message, receiver.module)
        failure.reported = True
        with self._cond:
            if s.stream_failure is None:
                s.stream_failure = failure
            self._status_version += 1
            self._cond.notify_all()
        # Reported the moment it happens, before the capture is wound down.
        self._publish(Error(message=message, module=receiver.module, request="stream"))

    def _drain(self, s: Session) -> None:
        """After the stop: let every stream deliver what is still in flight."""
        receivers = [r for m in s.modules for r in m.receivers]
        for r in receivers:
            r.expect_end = True
        deadline = time.monotonic() + s.settings.state_timeout_s
        while time.monotonic() < deadline:
            busy = [r for r in receivers if not r.ended.is_set() and r.idle_s < DRAIN_IDLE_S]
            if not busy:
                return
            time.sleep(DRAIN_IDLE_S / 3)
        self._publish(Warning(message="streams were still delivering data when they were closed"))

    def _close_streams(self, s: Session, capture: store.CaptureRecord) -> list[str]:
        """Close every receiver; returns a sentence per stream that lost bytes in closing."""

        def close(r: StreamReceiver) -> None:
            try:
                r.close()  # the final fsync of many big files: in parallel, off the hub
            except OSError as exc:
                self._publish(
                    Warning(message=f"closing {r.file.path.name} failed: {exc}", module=r.module)
                )

        receivers = [r for m in s.modules for r in m.receivers]
        parallel(receivers, close)
        self._end_recording_pool()
        losses: list[str] = []
        for r in receivers:
            if r.loss is not None:
                # A receiver given up on in closing: the user must learn that bytes are missing.
                note = f"module {r.module}: {r.loss}"
                self._publish(Warning(message=note, module=r.module))
                losses.append(note)
        for m in s.modules:
            record = capture.modules[m.number - 1]
            for f, r in zip(record.files, m.receivers, strict=False):
                f.bytes, f.sha256 = r.file.bytes, r.file.digest
                f.drops = [{**d, "t": round(d["t"], 3)} for d in r.drops]
                f.lost_samples = lost_samples(r, m.channels if r.channel is None else [r.channel])
                if r.discarded_bytes:
                    losses.append(
                        f"module {r.module}: {r.discarded_bytes} bytes of unfinished messages "
                        f"cut off {f.file} where its stream dropped"
                    )
            record.first_ticks = m.first_ticks()
            if m.live is not None:
                m.live.final_stats()
        return losses


def stream_file_name(name: str, module: int, channel: int | None = None) -> str:
    """``NAME.<n>.stream`` (single socket), ``NAME.<n>.ch<c>.stream`` (one per channel)."""
    if channel is not None:
        return f"{name}.{module}.ch{channel}.stream"
    return f"{name}.{module}.stream"


def lost_samples(
    receiver: StreamReceiver, channels: list[int], missing: dict[int, int] | None = None
) -> dict[str, int]:
    """Samples missing per channel (``"channel number": count``) where a block began later
    than the one before it ended (a dropped stream connected again, blocks the module dropped);
    only channels that miss any. ``missing`` per signal id (default: the receiver's own)."""
    lost: dict[str, int] = {}
    if missing is None:
        missing = receiver.tap.missing_samples()
    for sid, count in missing.items():
        key = str(channels[sid - 1] if 0 < sid <= len(channels) else sid)
        lost[key] = lost.get(key, 0) + count
    return lost
