"""Stream receivers: one per stream socket, raw bytes to a file, a few blocks to the live view.

A receiver writes every byte exactly as received (unbuffered ``os.write``, so a crash of this
process loses nothing already received; ``fsync`` runs about once a second off the hub through
:func:`webapp.runtime.offload`) and keeps a running SHA-256, so closing a file is cheap.

The live view must never slow the writing: the receiver's :class:`~webapp.capture.tap.StreamTap`
only follows message boundaries and decodes what is looked at. While monitoring, a receiver
keeps a :class:`~webapp.capture.window.StreamRing` instead of a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from webapp import runtime
from webapp.capture.levels import LiveModule
from webapp.capture.store import sha256_of
from webapp.capture.tap import IndexEntry, StreamTap

__all__ = ["IndexEntry", "StreamFile", "StreamReceiver", "StreamTap"]
from webapp.openapi.stream import (
    SignalInterpretation,
)

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
WRITE_BATCH = 1 << 20
"""Queued bytes that wake a file's writer before its interval is up."""
WRITE_INTERVAL_S = 0.2
SYNC_INTERVAL_S = 1.0
MAX_PENDING = 64 << 20
SOCKET_BUFFER = 4 * 1024 * 1024
RECONNECT_TRIES = 10
RECONNECT_WAIT_S = 0.5
"""A dropped stream is connected again up to this many times, this far apart."""
CLOSE_LIMIT_S = 120.0
"""Longest wait in :meth:`StreamReceiver.close` for a receiver still delivering bytes."""


class StreamFile:
    """A stream file written exactly as received, with a running SHA-256.

    The receiver hands chunks over (:meth:`write` only copies them into a queue); a writer of
    its own writes them out, hashes them and fsyncs about once a second, each batch through
    :func:`webapp.runtime.offload`. Under eventlet a ``write`` to a busy disk, an ``fsync`` or
    the hashing then never stalls the hub that every receiver runs on, and they use the second
    core. Data reaches the operating system within :data:`WRITE_INTERVAL_S`; a receiver that
    is more than :data:`MAX_PENDING` bytes ahead of the disk waits (TCP then holds the data).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        """Bytes handed over by the receiver."""
        self.written = 0
        """Bytes written to the file."""
        self.error: OSError | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._batch_bytes = 0
        self._closing = False
        self._cond = threading.Condition()
        self._writer = runtime.spawn(self._write_loop, name=f"writer {self.path.name}")

    def write(self, data: memoryview) -> None:
        if self.error is not None:
            raise self.error
        chunk = bytes(data)
        with self._cond:
            if self._closing:
                raise ValueError(f"{self.path.name} is closed")
            self._pending.append(chunk)
            self._batch_bytes += len(chunk)
            self._pending_bytes += len(chunk)
            self.bytes += len(chunk)
            if self._pending_bytes >= WRITE_BATCH:
                self._cond.notify_all()
            while self._pending_bytes > MAX_PENDING and self.error is None:
                self._cond.wait(1.0)  # the disk is behind: hold this receiver, not the others

    def _write_loop(self) -> None:
        last_sync = time.monotonic()
        synced = 0
        while True:
            with self._cond:
                if not self._pending and not self._closing:
                    self._cond.wait(WRITE_INTERVAL_S)
                batch, self._pending = self._pending, []
                size, self._batch_bytes = self._batch_bytes, 0
                done = self._closing and not batch
            if batch:
                try:
                    runtime.offload(self._write_batch, batch)
                except Exception as exc:
                    # Any failure must set error: a writer that just died would leave a
                    # receiver held by MAX_PENDING waiting for ever.
                    log.error("writing %s failed: %s", self.path, exc)
                    self.error = (
                        exc if isinstance(exc, OSError) else OSError(f"write failed: {exc!r}")
                    )
                with self._cond:
                    self._pending_bytes -= size
                    self._cond.notify_all()
            now = time.monotonic()
            if self.error is None and self.written != synced and now - last_sync >= SYNC_INTERVAL_S:
                last_sync, synced = now, self.written
                try:
                    runtime.offload(os.fsync, self._fd)
                except OSError as exc:
                    log.warning("fsync of %s failed: %s", self.path, exc)
            if done or self.error is not None:
                return

    def _write_batch(self, batch: list[bytes]) -> None:
        """Runs in a native thread under eventlet: plain blocking calls only."""
        fd = self._fd
        assert fd is not None
        for chunk in batch:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            self.sha256.update(chunk)
            self.written += len(chunk)

    def discard_tail(self, n: int) -> None:
        """Cut the last ``n`` bytes handed over (the start of a message that a dropped
        connection never finished), so the file ends at a message boundary again. Waits for
        the writer, truncates and hashes the file anew, off the hub; rare (a dropped stream)."""
        if n <= 0:
            return
        with self._cond:
            self._cond.notify_all()
            while (self._pending or self._pending_bytes) and self.error is None:
                self._cond.wait(0.05)
        if self.error is not None:
            raise self.error
        fd = self._fd
        assert fd is not None
        keep = self.written - n
        runtime.offload(os.ftruncate, fd, keep)
        os.lseek(fd, keep, os.SEEK_SET)  # the next write goes where the file now ends
        self.sha256 = runtime.offload(sha256_of, self.path, keep)
        self.written = keep
        self.bytes -= n

    def close(self) -> None:
        """Write what is queued, fsync and close (all off the hub)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._writer.join()
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            runtime.offload(os.fsync, fd)
        finally:
            runtime.offload(os.close, fd)
        if self.error is not None:
            raise self.error

    @property
    def digest(self) -> str:
        return self.sha256.hexdigest()


class StreamReceiver:
    """Receives one stream socket into one file and feeds the module's live view.

    ``on_end(receiver, error)`` is called once when the socket ends: ``error`` is None for an
    expected end (after :attr:`expect_end` was set or :meth:`close` was called), otherwise a
    sentence saying what happened (the module closed the stream, a socket error, lost framing).
    """

    def __init__(
        self,
        module: str,
        sock: socket.socket,
        path: Path | None,
        live: LiveModule,
        channel_of: Callable[[int], int],
        on_end: Callable[[StreamReceiver, str | None], None],
        *,
        label: str = "",
        channel: int | None = None,
        chunk_size: int = CHUNK_SIZE,
        ring_retention_ticks: int | None = None,
        reconnect: Callable[[], socket.socket] | None = None,
        on_reconnect: Callable[[StreamReceiver, dict[str, Any]], None] | None = None,
    ) -> None:
        self.module = module
        self.label = label or module
        self.channel = channel
        """The module's channel when the stream carries only that one (multi-socket)."""
        self.channels: list[int] = [channel] if channel is not None else []
        """The module's channels this stream carries, in signal order."""
        self.sock = sock
        self.file: StreamFile | None = StreamFile(path) if path is not None else None
        """The whole stream's file (None while monitoring: recordings are windows of
        :attr:`ring`)."""
        self.received = 0
        self.live = live
        self.channel_of = channel_of
        self._on_end = on_end
        self.tap = StreamTap(on_block=self._block, on_quality=self._quality)
        self.ring = None
        if ring_retention_ticks is not None:
            from webapp.capture.window import StreamRing

            self.ring = StreamRing(self.tap, ring_retention_ticks)
        self._buffer = bytearray(chunk_size)
        self.expect_end = False
        self._closing = False
        self.ended = threading.Event()
        self.error: str | None = None
        self.abandoned = False
        """Set by :meth:`close` when it gave up on a receiver still delivering bytes."""
        self.unread_bytes: int | None = None
        """When abandoned: bytes left unread in the socket (None when the system cannot say)."""
        self.last_data = time.monotonic()
        self.receives = 0
        self._thread: threading.Thread | None = None
        self._tap_failed = False
        self._reconnect = reconnect
        """None: a stream that ends unexpectedly ends the receiver (the capture fails);
        otherwise what connects to the module's stream port again."""
        self._on_reconnect = on_reconnect
        """Called with the drop (one of :attr:`drops`) once a dropped stream is connected
        again; a drop it could not recover from ends the receiver with the error instead."""
        self._watchers: dict[int, dict[str, Callable[[int, int, np.ndarray], None]]] = {}
        """Per signal: who wants its every block decoded (a trigger, a sound level meter)."""
        self.drops: list[dict[str, Any]] = []
        """Each time the stream dropped: when, after how many bytes, the bytes of an unfinished
        message cut off the file, what happened, whether and how fast it was connected again."""
        self._use(sock)

    def _use(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # only a hint to the kernel
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        # Blocking receives without a timeout: a timeout would cost a timer per receive under
        # eventlet. close() ends a waiting receive with shutdown().
        sock.settimeout(None)
        self.sock = sock

    @property
    def discarded_bytes(self) -> int:
        """Bytes received but cut off the file: unfinished messages of dropped connections."""
        return sum(d["discarded_bytes"] for d in self.drops)

    @property
    def bytes(self) -> int:
        """Bytes in the file (received, less unfinished messages cut off), or received."""
        return self.file.bytes if self.file is not None else self.received

    @property
    def target(self) -> str:
        """What this receiver writes to, for messages: its file's name, or the monitor."""
        return self.file.path.name if self.file is not None else "the monitor"

    @property
    def idle_s(self) -> float:
        return time.monotonic() - self.last_data

    def start(self) -> None:
        self._thread = runtime.spawn(self._run, name=f"receiver {self.label}")

    # --- every block of a signal ------------------------------------------------------------

    def watch(self, sid: int, key: str, fn: Callable[[int, int, np.ndarray], None]) -> None:
        """Decode every block of signal ``sid`` and hand it to ``fn(sid, time, raw)`` (``key``
        names the watcher, so it can be replaced or removed)."""
        self._watchers.setdefault(sid, {})[key] = fn
        self._apply_watchers()

    def unwatch(self, key: str, sid: int | None = None) -> None:
        for s, fns in self._watchers.items():
            if sid is None or s == sid:
                fns.pop(key, None)
        self._apply_watchers()

    def _apply_watchers(self) -> None:
        watched = {s for s, fns in self._watchers.items() if fns}
        self.tap.on_watched = self._dispatch if watched else None
        self.tap.watched = watched

    def _dispatch(self, sid: int, t: int, raw: np.ndarray) -> None:
        for fn in list(self._watchers.get(sid, {}).values()):
            fn(sid, t, raw)

    # --- live view --------------------------------------------------------------------------

    def _block(self, sid: int, raw: np.ndarray, interp: SignalInterpretation | None) -> None:
        self.live.block(
            self.channel_of(sid),
            raw,
            interp.scale_factor if interp else 1.0,
            interp.offset if interp else 0.0,
            interp.unit if interp else "",
            interp.sample_rate if interp else None,
        )

    def _quality(self, sid: int, validity: int, time_ticks: int) -> None:
        self.live.quality(self.channel_of(sid), sid, validity, time_ticks / (1 << 32))

    # --- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        error: str | None = None
        try:
            while True:
                error = self._receive()
                if error is None or self._reconnect is None or self._closing or self.expect_end:
                    break
                error = self._connect_again(error)
                if error is not None:
                    break
        except Exception as exc:  # a bug or a full disk must still end the capture cleanly
            log.exception("receiver %s failed", self.label)
            error = f"receiving failed after {self.received} bytes: {exc}"
        finally:
            self.error = error
            self.ended.set()
            self._on_end(self, error)

    def _connect_again(self, error: str) -> str | None:
        """The stream dropped: cut the unfinished message off the file (the file stays a
        valid stream: the new connection starts with Interpretations), then connect again,
        :data:`RECONNECT_TRIES` times at most. Returns None once connected, else the error."""
        started = time.monotonic()
        drop: dict[str, Any] = {
            "t": time.time(),
            "after_bytes": self.received,
            "discarded_bytes": self.tap.partial,
            "error": error,
            "reconnected": False,
            "reconnect_s": None,
        }
        self.drops.append(drop)
        if self.file is not None:
            self.file.discard_tail(self.tap.partial)
        self.tap.restart()
        with contextlib.suppress(OSError):
            self.sock.close()
        why = ""
        for _ in range(RECONNECT_TRIES):
            if self._closing or self.expect_end:
                return None
            try:
                assert self._reconnect is not None
                sock = self._reconnect()
            except Exception as exc:
                why = str(exc)
                runtime.sleep(RECONNECT_WAIT_S)
                continue
            if self._closing:
                sock.close()
                return None
            self._use(sock)
            self.last_data = time.monotonic()
            drop["reconnected"] = True
            drop["reconnect_s"] = round(time.monotonic() - started, 3)
            if self._on_reconnect is not None:
                self._on_reconnect(self, drop)
            return None
        drop["error"] = f"{error}; connecting again failed {RECONNECT_TRIES} times: {why}"
        return drop["error"]

    def _receive(self) -> str | None:
        """Receive until the socket ends; None for an expected end, else what happened."""
        sock, buffer = self.sock, self._buffer
        view = memoryview(buffer)
        size = len(buffer)
        error: str | None = None
        try:
            while True:
                try:
                    n = sock.recv_into(buffer)
                except OSError as exc:
                    if not self._closing and not self.expect_end:
                        error = f"stream socket error after {self.received} bytes: {exc.strerror or exc}"
                    break
                if n == 0:
                    if not self._closing and not self.expect_end:
                        error = f"the module closed its stream socket after {self.received} bytes"
                    break
                self.last_data = time.monotonic()
                self.receives += 1
                data = view[:n]
                self.received += n
                if self.file is not None:
                    self.file.write(data)
                ring = self.ring
                if ring is not None:
                    ring.append(data)
                self.live.add_bytes(n)
                if not self._tap_failed:
                    try:
                        self.tap.feed(data)
                    except Exception as exc:
                        # The file keeps every byte; only the live view is lost (a bug in the
                        # display path, not only bad framing, must never stop the recording).
                        self._tap_failed = True
                        log.warning("%s: live view stopped: %s", self.label, exc)
                if ring is not None and not self._tap_failed:
                    ring.after_feed()
                if self.live.tick():
                    self.tap.wanted = set(self.tap.interpretations)
                if n == size:
                    runtime.sleep(0)  # more is waiting: let the other receivers run too
        finally:
            view.release()
        return error

    def close(self, timeout: float = 5.0) -> None:
        """End the loop (if still running), then close the socket and the file."""
        self._closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            # A receiver held back by a slow disk still has the socket's buffered bytes to
            # deliver: wait as long as the file makes progress, give up when it stalls (or
            # after CLOSE_LIMIT_S, for a module that never stops sending).
            progress = (-1, -1)
            limit = time.monotonic() + max(timeout, CLOSE_LIMIT_S)
            while not self.ended.wait(timeout):
                now = (
                    (self.file.bytes, self.file.written)
                    if self.file is not None
                    else (self.received, self.received)
                )
                if now == progress or time.monotonic() > limit:
                    # Bytes still in the socket are lost: record it, the orchestrator tells
                    # the user and writes it into capture.json.
                    self.abandoned = True
                    self.unread_bytes = _unread(self.sock)
                    log.warning(
                        "%s: closed while still receiving; %s",
                        self.label,
                        self.loss or "bytes were lost",
                    )
                    break
                progress = now
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.file is not None:
            self.file.close()

    @property
    def loss(self) -> str | None:
        """A sentence naming the file and the bytes lost when :meth:`close` gave up."""
        if not self.abandoned:
            return None
        amount = f"{self.unread_bytes} bytes" if self.unread_bytes is not None else "unread bytes"
        if self.file is None:
            return f"{amount} still arriving were not received by the monitor"
        return f"{amount} still arriving were not written to {self.file.path.name}"


def _unread(sock: socket.socket) -> int | None:
    """Bytes waiting in a socket's receive buffer (None when the system cannot tell)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return None
    return struct.unpack("i", raw)[0]
