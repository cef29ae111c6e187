"""Stream receivers in worker processes, so ingest uses the machine's cores (``receiver_workers``).

With one worker (the default on small rigs) every receiver runs in the engine as before. With
``N`` > 1, :class:`ReceiverPool` starts N worker processes (:mod:`webapp.capture.receiver_worker`,
each a fresh interpreter, never a fork) for a recording, gives each module to one of them
(all of a module's stream sockets to the same one) and puts a :class:`RemoteReceiver` in the
module's place of each :class:`~webapp.capture.receiver.StreamReceiver`: the orchestrator works
on it as on a local receiver (start, expect the end, watch a signal, stall and drain checks,
close, the file's bytes and SHA-256, drops, lost samples), and its :class:`RemoteLive` stands in
for the module's live view (bytes received, overruns; the overload latch and the waveform
choice go to the worker). The engine's hub then runs only the status long polls, the live view
and the web: nothing on it can slow a receiver, and the receivers no longer share one core.

A worker that dies is a stream failure of each of its modules (the capture is wound down and
its modules stopped, as for a dropped stream): its files hold what it wrote, and the bytes it
had received beyond that are counted as lost in capture.json's reason.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import webapp
from webapp import runtime
from webapp.capture.events import Event
from webapp.capture.levels import OVERLOAD_REPORTED, LiveModule
from webapp.capture.receiver import CLOSE_LIMIT_S
from webapp.capture.store import sha256_of
from webapp.capture.workerwire import read_message, send_message
from webapp.openapi.client import ModuleError
from webapp.openapi.stream import SignalInterpretation

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
OPEN_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 10.0


class RemoteFile:
    """The engine's view of a stream file a worker writes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.bytes = 0
        self.written = 0
        self.digest = ""


class RemoteTap:
    """The engine's view of a worker receiver's :class:`~webapp.capture.tap.StreamTap`."""

    def __init__(self) -> None:
        self.covered = 0
        self.first_ticks: int | None = None
        self.signal_messages = 0
        self.interpretations: dict[int, SignalInterpretation] = {}
        self.partial = 0
        self._tps: dict[int, int] = {}
        self._missing: dict[int, int] = {}

    def covered_ticks(self) -> int:
        return self.covered

    def tps(self, sid: int) -> int:
        return self._tps.get(sid, 0)

    def missing_samples(self) -> dict[int, int]:
        """Known once the receiver is closed (the worker counts the gaps)."""
        return dict(self._missing)


class RemoteLive(LiveModule):
    """A module's live view whose receivers run in a worker: the worker publishes the levels,
    waveforms, data-quality changes and statistics; this one holds the byte and overrun counts
    it reports and passes the overload latch and the waveform choice on."""

    def __init__(self, base: LiveModule, worker: WorkerProcess) -> None:
        self._worker: WorkerProcess | None = None
        self._waveform_channels: frozenset[int] | None = None
        super().__init__(
            base.module,
            base._publish,
            levels=base.levels_enabled,
            levels_interval_s=base.levels_interval_s,
            stats_interval_s=base.stats_interval_s,
        )
        self._waveform_channels = base.waveform_channels
        self._worker = worker

    @property  # type: ignore[override]
    def waveform_channels(self) -> frozenset[int] | None:
        return self._waveform_channels

    @waveform_channels.setter
    def waveform_channels(self, channels: frozenset[int] | None) -> None:
        self._waveform_channels = channels
        if self._worker is not None:
            self._worker.send(("waveforms", self.module, channels))

    def overload(self, channel: int, reason: str = OVERLOAD_REPORTED) -> None:
        super().overload(channel, reason)
        if self._worker is not None:
            self._worker.send(("overload", self.module, channel, reason))


class RemoteReceiver:
    """Stands in the engine for a :class:`~webapp.capture.receiver.StreamReceiver` running in
    a worker (the attributes and methods the orchestrator uses, from the worker's reports)."""

    ring = None

    def __init__(
        self,
        worker: WorkerProcess,
        rid: int,
        module: str,
        path: Path,
        on_end: Callable[[Any, str | None], None],
        *,
        label: str,
        channel: int | None,
        channels: list[int],
        on_reconnect: Callable[[Any, dict[str, Any]], None] | None,
        live: LiveModule,
    ) -> None:
        self.worker = worker
        self.live = live
        """The module's live view in the engine (bytes received and overruns reported)."""
        self.rid = rid
        self.module = module
        self.label = label
        self.channel = channel
        self.channels = channels
        self.file = RemoteFile(path)
        self.tap = RemoteTap()
        self.received = 0
        self.receives = 0
        self.drops: list[dict[str, Any]] = []
        self.ended = threading.Event()
        self.error: str | None = None
        self.abandoned = False
        self.unread_bytes: int | None = None
        self.closed = threading.Event()
        """Set once the final figures are in (from the worker, or from the disk if it died)."""
        self._on_end = on_end
        self._on_reconnect = on_reconnect
        self._loss: str | None = None
        self._close_error: str | None = None
        self._expect_end = False
        self._data_at = time.monotonic()
        self._touched_at = self._data_at
        self._watchers: dict[int, dict[str, Callable[[int, int, np.ndarray], None]]] = {}
        self._end_lock = threading.Lock()

    # --- what the orchestrator asks ---------------------------------------------------------

    @property
    def expect_end(self) -> bool:
        return self._expect_end

    @expect_end.setter
    def expect_end(self, value: bool) -> None:
        if value and not self._expect_end:
            self.worker.send(("expect_end", self.rid))
        self._expect_end = value

    @property
    def last_data(self) -> float:
        return max(self._data_at, self._touched_at)

    @last_data.setter
    def last_data(self, when: float) -> None:
        """Stall watching starts now (the measurement was just started)."""
        self._touched_at = when
        self.worker.send(("touch", self.rid))

    @property
    def idle_s(self) -> float:
        return time.monotonic() - self.last_data

    @property
    def bytes(self) -> int:
        return self.file.bytes

    @property
    def discarded_bytes(self) -> int:
        return sum(int(d.get("discarded_bytes", 0)) for d in self.drops)

    @property
    def target(self) -> str:
        return self.file.path.name

    @property
    def loss(self) -> str | None:
        return self._loss

    def start(self) -> None:
        self.worker.send(("start", self.rid))

    def watch(self, sid: int, key: str, fn: Callable[[int, int, np.ndarray], None]) -> None:
        self._watchers.setdefault(sid, {})[key] = fn
        self._send_watched()

    def unwatch(self, key: str, sid: int | None = None) -> None:
        for s, fns in self._watchers.items():
            if sid is None or s == sid:
                fns.pop(key, None)
        self._send_watched()

    def _send_watched(self) -> None:
        self.worker.send(("watch", self.rid, sorted(s for s, f in self._watchers.items() if f)))

    def close(self, timeout: float = 5.0) -> None:
        """Close in the worker (its file written out and fsynced) and take the final figures."""
        if not self.closed.is_set():
            self.expect_end = True
            self.worker.send(("close", self.rid))
            if not self.closed.wait(CLOSE_LIMIT_S + max(timeout, 30.0)):
                self.worker.kill(f"closing {self.target} took longer than {CLOSE_LIMIT_S:g} s")
                self.closed.wait(EXIT_TIMEOUT_S)
        if self._close_error:
            raise OSError(self._close_error)

    # --- what the worker reports ------------------------------------------------------------

    def update(self, state: dict[str, Any], sent_at: float) -> None:
        """The worker's figures as of ``sent_at`` (its monotonic clock: the system's)."""
        self.received = state["received"]
        self.receives = state["receives"]
        self.file.bytes = state["bytes"]
        self.file.written = state["written"]
        self._data_at = sent_at - state["idle_s"]
        tap = self.tap
        tap.covered = state["covered"]
        tap.first_ticks = state["first_ticks"]
        tap.signal_messages = state["signal_messages"]
        self.drops = state["drops"]
        if "interpretations" in state:
            tap.interpretations = state["interpretations"]
            tap._tps = state["tps"]

    def block(self, sid: int, t: int, raw: np.ndarray) -> None:
        for fn in list(self._watchers.get(sid, {}).values()):
            fn(sid, t, raw)

    def reconnected(self, drop: dict[str, Any]) -> None:
        self.drops.append(drop)
        if self._on_reconnect is not None:
            self._on_reconnect(self, drop)

    def end(self, error: str | None) -> None:
        with self._end_lock:
            if self.ended.is_set():
                return
            self.error = error
            self.ended.set()
        self._on_end(self, error)

    def finish(self, final: dict[str, Any], sent_at: float) -> None:
        self.update(final, sent_at)
        self.file.digest = final["digest"]
        self.tap._missing = final["missing"]
        self.abandoned = final["abandoned"]
        self.unread_bytes = final["unread_bytes"]
        self._loss = final["loss"]
        self._close_error = final["close_error"]
        self.live.bytes_received, self.live.overruns = final["live"]  # the module's, final
        self.closed.set()

    def worker_died(self, why: str) -> None:
        """The worker ended before this receiver was closed: the file holds what it wrote; the
        bytes it had received beyond that are lost (counted), and the stream has failed."""
        if self.closed.is_set():
            return
        path = self.file.path
        try:
            size = path.stat().st_size
            self.file.digest = runtime.offload(sha256_of, path, size).hexdigest()
        except OSError:
            size = 0
        lost = max(0, self.received - size)
        self.file.bytes = self.file.written = size
        self.abandoned = True
        unwritten = (
            f"at least {lost} bytes it had received were not written"
            if lost
            else "every byte it had reported received is there"
        )
        self._loss = (
            f"{why}: {size} bytes are in {path.name}; {unwritten}; what the module sent "
            "after that was not received"
        )
        self.closed.set()
        self.end(f"{why} after {self.received} bytes")


class WorkerProcess:
    """One receiver worker process and the engine's end of its control line."""

    def __init__(self, index: int, publish: Callable[[Event], None]) -> None:
        self.index = index
        self.publish = publish
        self.receivers: dict[int, RemoteReceiver] = {}
        self.pid: int | None = None
        self.ready = threading.Event()
        self.gone = threading.Event()
        self.dropped = 0
        """Live-view messages the worker dropped because this engine was behind."""
        self.lateness = 0.0
        """How old the last progress report was when it arrived (seconds)."""
        self._exiting = False
        self._opened: dict[int, tuple[threading.Event, list[str | None]]] = {}
        self._send_lock = threading.Lock()
        ours, theirs = socket.socketpair()
        self.sock = ours
        root = str(Path(webapp.__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
            # eventlet's green DNS (dnspython) is most of a worker's start; a worker resolves
            # a module's name only to connect its stream, before the data flows.
            "EVENTLET_NO_GREENDNS": "yes",
        }
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "webapp.capture.receiver_worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self._reader = runtime.spawn(self._read_loop, name=f"receiver worker {index}")

    @property
    def name(self) -> str:
        return f"receiver process {self.index + 1} (pid {self.pid})"

    def send(self, message: tuple[Any, ...]) -> None:
        if self.gone.is_set():
            return
        try:
            with self._send_lock:
                send_message(self.sock, message)
        except OSError:
            pass  # the reader sees the line end and reports the worker

    def open(self, rid: int, spec: dict[str, Any]) -> str | None:
        """Ask the worker to connect and start a receiver; its error, or None."""
        done = threading.Event()
        answer: list[str | None] = [f"{self.name} did not answer in {OPEN_TIMEOUT_S:g} s"]
        self._opened[rid] = (done, answer)
        if self.gone.is_set():  # (_ended sets every open registered before it saw gone)
            return f"{self.name} has ended"
        self.send(("open", rid, spec))
        done.wait(OPEN_TIMEOUT_S)
        return answer[0]

    def _read_loop(self) -> None:
        while True:
            try:
                message = read_message(self.sock)
            except Exception as exc:  # a broken line or a garbled message: the worker is lost
                log.warning("%s: %s", self.name, exc)
                message = None
            if message is None:
                break
            try:
                self._dispatch(message)
            except Exception:
                log.exception("%s: handling %s failed", self.name, message[0])
        self._ended()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "progress":
            _, states, lives, self.dropped, sent_at = message
            self.lateness = time.monotonic() - sent_at
            for rid, state in states.items():
                r = self.receivers.get(rid)
                if r is not None and not r.closed.is_set():
                    r.update(state, sent_at)
            for r in self.receivers.values():
                live = r.live
                counts = lives.get(r.module)
                if counts is not None:
                    live.bytes_received, live.overruns = counts
        elif kind == "event":
            self.publish(message[1])
        elif kind == "block":
            r = self.receivers.get(message[1])
            if r is not None:
                r.block(message[2], message[3], message[4])
        elif kind == "ready":
            self.pid = message[1]
            self.ready.set()
        elif kind == "opened" or (kind == "failed" and message[1] == "open"):
            rid = message[1] if kind == "opened" else message[2]
            waiting = self._opened.pop(rid, None)
            if waiting is not None:
                waiting[1][0] = message[2] if kind == "opened" else message[3]
                waiting[0].set()
        elif kind == "ended":
            r = self.receivers.get(message[1])
            if r is not None:
                r.update(message[3], message[4])
                r.end(message[2])
        elif kind == "reconnected":
            r = self.receivers.get(message[1])
            if r is not None:
                r.reconnected(message[2])
        elif kind == "closed":
            r = self.receivers.get(message[1])
            if r is not None:
                r.finish(message[2], message[3])
        elif kind == "failed":
            log.warning("%s: %s failed: %s", self.name, message[1], message[3])

    def _ended(self) -> None:
        self.gone.set()
        for done, answer in list(self._opened.values()):
            answer[0] = f"{self.name} has ended"
            done.set()
        code = None
        deadline = time.monotonic() + 2.0
        while code is None and time.monotonic() < deadline:
            code = self.proc.poll()
            if code is None:
                time.sleep(0.05)
        if self._exiting and all(r.closed.is_set() for r in self.receivers.values()):
            return
        if code is None:
            how = "stopped answering"
        elif code < 0:
            try:
                how = f"was killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"ended unexpectedly (exit code {code})"
        why = f"{self.name} {how}"
        log.error("%s", why)
        for r in list(self.receivers.values()):
            r.worker_died(why)

    def kill(self, why: str) -> None:
        log.error("%s: %s; ending it", self.name, why)
        if self.proc.poll() is None:
            self.proc.kill()

    def exit(self) -> None:
        """Every receiver closed: let the worker end (killed if it does not)."""
        self._exiting = True
        self.send(("exit",))
        if not self.gone.wait(EXIT_TIMEOUT_S):
            self.kill("it did not end when asked")
            self.gone.wait(EXIT_TIMEOUT_S)
        try:
            self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.sock.close()


class ReceiverPool:
    """The worker processes of one recording and the receivers they run."""

    def __init__(self, count: int, publish: Callable[[Event], None]) -> None:
        self.workers: list[WorkerProcess] = []
        self._next_rid = 0
        try:
            for i in range(count):
                self.workers.append(WorkerProcess(i, publish))
            deadline = time.monotonic() + START_TIMEOUT_S
            for w in self.workers:
                if not w.ready.wait(max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"{w.name} did not start within {START_TIMEOUT_S:g} s")
        except BaseException:
            self.close()
            raise

    def worker_for(self, number: int) -> WorkerProcess:
        """The worker of module ``number`` (1-based): modules dealt in turn."""
        return self.workers[(number - 1) % len(self.workers)]

    def live_for(self, number: int, base: LiveModule) -> RemoteLive:
        return RemoteLive(base, self.worker_for(number))

    def open(
        self,
        number: int,
        client: Any,
        port: int,
        path: Path,
        live: LiveModule,
        on_end: Callable[[Any, str | None], None],
        *,
        label: str,
        channel: int | None,
        channels: list[int],
        signal_channel: dict[int, int],
        reconnect: bool,
        on_reconnect: Callable[[Any, dict[str, Any]], None] | None,
    ) -> RemoteReceiver:
        """A receiver of ``client``'s stream ``port`` into ``path``, in module ``number``'s
        worker; raises the ModuleError a failed connection would."""
        worker = self.worker_for(number)
        self._next_rid += 1
        rid = self._next_rid
        r = RemoteReceiver(
            worker,
            rid,
            client.address,
            path,
            on_end,
            label=label,
            channel=channel,
            channels=channels,
            on_reconnect=on_reconnect,
            live=live,
        )
        worker.receivers[rid] = r
        spec = {
            "host": client.host,
            "port": int(port),
            "timeout": client.timeout,
            "module": client.address,
            "path": str(path),
            "label": label,
            "channel": channel,
            "channels": channels,
            "signal_channel": signal_channel,
            "reconnect": reconnect,
            "levels": live.levels_enabled,
            "levels_interval_s": live.levels_interval_s,
            "waveform_channels": live.waveform_channels,
        }
        error = worker.open(rid, spec)
        if error is not None:
            del worker.receivers[rid]
            raise ModuleError(client.address, f"connect stream port {port}", None, error)
        return r

    def close(self) -> None:
        """End every worker (after its receivers were closed)."""
        for w in self.workers:
            try:
                w.exit()
            except Exception as exc:
                log.warning("%s: ending it failed: %s", w.name, exc)
