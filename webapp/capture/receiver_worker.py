"""A receiver worker process: the stream receivers of some modules, away from the engine's hub.

Started by :class:`webapp.capture.workers.ReceiverPool` as ``python -m
webapp.capture.receiver_worker FD`` (a fresh interpreter, never a fork of the engine), with one
end of a Unix socket pair as its control line. Each stream is
a :class:`~webapp.capture.receiver.StreamReceiver` writing its ``<name>.<n>.stream`` file itself,
exactly as in the engine, and on eventlet as there (``LANXI_ASYNC`` decides, as for every
command). Back up the line go small messages only: progress (bytes received and
written, stream time covered, drops) ten times a second, the live view's events (levels,
decimated waveforms, data-quality changes, stream statistics), every block of the signals the
engine watches (and only those are decoded), and each receiver's end and final figures.

The live view's messages are dropped when the engine falls behind (never the progress, the
data-quality changes or the ends); receiving never waits for the engine. The engine gone (the
line ends), the worker closes every receiver (all received bytes reach the disk) and exits.

The line's format is :mod:`webapp.capture.workerwire`'s.
"""

from __future__ import annotations

if __name__ == "__main__":  # a worker runs its receivers on eventlet, as the engine does
    from webapp.cli import _monkey_patch

    _monkey_patch()

import contextlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from typing import Any  # noqa: E402

from webapp.capture.events import DataQualityChanged, Event  # noqa: E402
from webapp.capture.levels import LiveModule  # noqa: E402
from webapp.capture.receiver import StreamReceiver  # noqa: E402
from webapp.capture.workerwire import read_message, send_message  # noqa: E402

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.1
"""How often a worker reports each receiver's figures (well under the drain's 0.3 s quiet)."""
LIVE_BACKLOG = 256
"""Live-view messages queued for the engine beyond which more are dropped."""
INTERPRETATIONS_EVERY = 10
"""Progress reports between two repeats of the signals' interpretations."""


class Outbox:
    """Messages to the engine, sent by a thread of their own so no receiver ever waits on the
    line. Progress, ends and data-quality changes go first; live-view messages (levels,
    waveforms, watched blocks) wait behind them and are dropped (and counted) beyond
    :data:`LIVE_BACKLOG` while the engine is behind."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dropped = 0
        self._urgent: deque[tuple[Any, ...]] = deque()
        self._live: deque[tuple[Any, ...]] = deque()
        self._closing = False
        self._cond = threading.Condition()
        self.broken = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def put(self, message: tuple[Any, ...], *, droppable: bool = False) -> None:
        with self._cond:
            if not droppable:
                self._urgent.append(message)
            elif len(self._live) >= LIVE_BACKLOG:
                self.dropped += 1
                return
            else:
                self._live.append(message)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._urgent and not self._live and not self._closing:
                    self._cond.wait()
                if self._urgent:
                    message = self._urgent.popleft()
                elif self._live:
                    message = self._live.popleft()
                else:
                    return
            try:
                send_message(self.sock, message)
            except OSError:
                self.broken.set()
                return

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)


def receiver_state(r: StreamReceiver) -> dict[str, Any]:
    """What the engine's stand-in of a receiver shows (see ``RemoteReceiver.update``)."""
    f = r.file
    return {
        "received": r.received,
        "receives": r.receives,
        "bytes": f.bytes if f is not None else r.received,
        "written": f.written if f is not None else r.received,
        "idle_s": r.idle_s,
        "covered": r.tap.covered_ticks(),
        "first_ticks": r.tap.first_ticks,
        "signal_messages": r.tap.signal_messages,
        "drops": [dict(d) for d in r.drops],
    }


def final_state(r: StreamReceiver, close_error: str | None) -> dict[str, Any]:
    state = receiver_state(r)
    state.update(
        digest=r.file.digest if r.file is not None else "",
        missing=r.tap.missing_samples(),
        abandoned=r.abandoned,
        unread_bytes=r.unread_bytes,
        loss=r.loss,
        close_error=close_error,
        interpretations=dict(r.tap.interpretations),
        tps={sid: r.tap.tps(sid) for sid in r.tap.interpretations},
        live=(r.live.bytes_received, r.live.overruns),
    )
    return state


class Worker:
    """The receivers of one worker process and the line to the engine."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = Outbox(sock)
        self.receivers: dict[int, StreamReceiver] = {}
        self.lives: dict[str, LiveModule] = {}
        self._lock = threading.Lock()
        self._closers: list[threading.Thread] = []
        self._done = threading.Event()

    # --- from the engine --------------------------------------------------------------------

    def serve(self) -> None:
        self.out.put(("ready", os.getpid()))
        progress = threading.Thread(target=self._progress_loop, name="progress", daemon=True)
        progress.start()
        try:
            while True:
                try:
                    message = read_message(self.sock)
                except OSError:
                    message = None
                if message is None or message[0] == "exit":
                    break
                try:
                    self._handle(message)
                except Exception as exc:  # a bad request must not end the other receivers
                    log.exception("receiver worker: %s failed", message[0])
                    self.out.put(("failed", message[0], message[1] if len(message) > 1 else None,
                                  f"{type(exc).__name__}: {exc}"))  # fmt: skip
        finally:
            self._close_all()
            self._done.set()
            progress.join(2)
            self.out.close()

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "open":
            self._open(message[1], message[2])
            return
        if kind in ("waveforms", "overload"):
            live = self.lives.get(message[1])
            if live is None:
                return
            if kind == "waveforms":
                live.waveform_channels = message[2]
            elif kind == "overload":
                live.overload(message[2], message[3])
            return
        r = self.receivers.get(message[1])
        if r is None:
            return
        if kind == "start":
            r.start()
        elif kind == "expect_end":
            r.expect_end = True
        elif kind == "touch":
            r.last_data = time.monotonic()
        elif kind == "watch":
            self._watch(message[1], r, set(message[2]))
        elif kind == "close":
            closer = threading.Thread(target=self._close, args=(message[1], r), daemon=True)
            self._closers.append(closer)
            closer.start()

    def _open(self, rid: int, spec: dict[str, Any]) -> None:
        host, port, timeout = spec["host"], spec["port"], spec["timeout"]
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            self.out.put(("opened", rid, exc.strerror or str(exc)))
            return
        sock.settimeout(None)
        key = spec["module"]
        live = self.lives.get(key)
        if live is None:
            live = LiveModule(
                key,
                self._publish,
                levels=spec["levels"],
                levels_interval_s=spec["levels_interval_s"],
            )
            live.waveform_channels = spec["waveform_channels"]
            self.lives[key] = live
        only: int | None = spec["channel"]
        signal_channel: dict[int, int] = spec["signal_channel"]

        def channel_of(sid: int) -> int:
            return only if only is not None else signal_channel.get(sid, sid)

        def reconnect() -> socket.socket:
            again = socket.create_connection((host, port), timeout=timeout)
            again.settimeout(None)
            return again

        try:
            r = StreamReceiver(
                key,
                sock,
                spec["path"],
                live,
                channel_of,
                self._ended,
                label=spec["label"],
                channel=only,
                reconnect=reconnect if spec["reconnect"] else None,
                on_reconnect=lambda _r, drop, _rid=rid: self.out.put(("reconnected", _rid, drop)),
            )
        except BaseException as exc:
            sock.close()
            self.out.put(("opened", rid, f"{type(exc).__name__}: {exc}"))
            return
        r.channels = list(spec["channels"])
        r.rid = rid  # type: ignore[attr-defined]
        with self._lock:
            self.receivers[rid] = r
        self.out.put(("opened", rid, None))

    def _watch(self, rid: int, r: StreamReceiver, sids: set[int]) -> None:
        r.unwatch("engine")
        for sid in sids:
            r.watch(sid, "engine", lambda s, t, raw, _rid=rid: self._block(_rid, s, t, raw))

    # --- to the engine ----------------------------------------------------------------------

    def _publish(self, event: Event) -> None:
        self.out.put(("event", event), droppable=not isinstance(event, DataQualityChanged))

    def _block(self, rid: int, sid: int, t: int, raw: Any) -> None:
        self.out.put(("block", rid, sid, t, raw), droppable=True)

    def _ended(self, r: StreamReceiver, error: str | None) -> None:
        self.out.put(("ended", r.rid, error, receiver_state(r), time.monotonic()))  # type: ignore[attr-defined]

    def _close(self, rid: int, r: StreamReceiver) -> None:
        error: str | None = None
        try:
            r.close()
        except OSError as exc:
            error = str(exc)
        self.out.put(("closed", rid, final_state(r, error), time.monotonic()))

    def _progress_loop(self) -> None:
        rounds = 0
        while not self._done.wait(PROGRESS_INTERVAL_S):
            with self._lock:
                receivers = list(self.receivers.items())
            if not receivers:
                continue
            rounds += 1
            states = {rid: receiver_state(r) for rid, r in receivers}
            if rounds % INTERPRETATIONS_EVERY == 1:
                for rid, r in receivers:
                    states[rid]["interpretations"] = dict(r.tap.interpretations)
                    states[rid]["tps"] = {sid: r.tap.tps(sid) for sid in r.tap.interpretations}
            lives = {k: (v.bytes_received, v.overruns) for k, v in self.lives.items()}
            self.out.put(("progress", states, lives, self.out.dropped, time.monotonic()))

    def _close_all(self) -> None:
        """The engine is gone or said exit: every receiver closed, its bytes on disk."""
        with self._lock:
            receivers = list(self.receivers.values())
        for r in receivers:
            r.expect_end = True
            with contextlib.suppress(Exception):
                r.close()
        for closer in self._closers:
            closer.join(30)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="receiver worker: %(message)s")
    sock = socket.socket(fileno=int(args[0]))
    sock.setblocking(True)  # an engine on eventlet made its socket pair non-blocking
    Worker(sock).serve()
    with contextlib.suppress(OSError):
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
