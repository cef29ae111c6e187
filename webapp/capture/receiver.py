"""Stream receivers: one per stream socket, raw bytes to a file, a few blocks to the live view.

A receiver writes every byte exactly as received (unbuffered ``os.write``, so a crash of this
process loses nothing already received; ``fsync`` runs about once a second off the hub through
:func:`webapp.runtime.offload`) and keeps a running SHA-256, so closing a file is cheap.

The live view must never slow the writing. :class:`StreamTap` therefore only follows message
boundaries (one 28-byte header parse per message); it decodes Interpretation and DataQuality
messages, which are rare, and the values of a SignalData block only when the live view asked
for that signal's next block.
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
from webapp.openapi.stream import (
    HEADER_FAMILY,
    HEADER_SIZE,
    Interpretation,
    MessageType,
    SignalInterpretation,
    Time,
    decode_content,
    decode_int24,
    parse_header,
    ticks_per_sample,
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

_SD_PREFIX = struct.Struct("<HHHH")
_HEAD_AND_PREFIX = struct.Struct("<2sHHHI4BQIHHHH")
"""A message header followed by a SignalData prefix (count, reserved, signal id, values)."""
_HEADER, _SD_PREFIX_STAGE, _SD_VALUES, _CONTENT = range(4)

IndexEntry = tuple[int, int, int, int, int, int, Any]
"""One message of a stream: ``(start, end, type, time, signal, values, info)``; ``start`` and
``end`` count bytes fed to the tap; ``time`` is the header time in ticks; ``signal`` and
``values`` are a SignalData message's signal id and value count (0 otherwise); ``info`` is, for
an Interpretation ``(raw message, signal ids)``, for a DataQuality ``(raw message, [(signal,
validity)])``, otherwise None."""


class StreamTap:
    """Follows the messages of one stream without copying what nobody looks at."""

    def __init__(
        self,
        on_block: Callable[[int, np.ndarray, SignalInterpretation | None], None] | None = None,
        on_quality: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.on_block = on_block
        self.on_quality = on_quality
        self.interpretations: dict[int, SignalInterpretation] = {}
        self.wanted: set[int] = set()
        """Signals whose next SignalData block is decoded and handed to ``on_block``."""
        self.watched: set[int] = set()
        """Signals whose every SignalData block is decoded and handed to ``on_watched`` (a
        level trigger's channel)."""
        self.on_watched: Callable[[int, int, np.ndarray], None] | None = None
        """``(signal, time of the block's first sample, raw values)`` for :attr:`watched`."""
        self.index: list[IndexEntry] | None = None
        """When set, every message is appended as an :data:`IndexEntry` (a monitoring ring)."""
        self.first_ticks: int | None = None
        """Header time of the first SignalData message (2^-32 s since 1970)."""
        self.end_ticks: dict[int, int] = {}
        """Per signal: the time just after its last received sample."""
        self.messages = 0
        self.signal_messages = 0
        self._stage = _HEADER
        self._need = HEADER_SIZE
        self._part = bytearray()
        self._skip = 0
        self._mtype = 0
        self._family = None
        self._count = 0
        self._length = 0
        self._time = 0
        self._sid = 0
        self._nval = 0
        self._tps: dict[int, int] = {}
        """Ticks per sample of each signal (0 when unknown)."""
        self._head_raw = b""
        self.fed = 0
        """Bytes fed so far."""
        self.boundary = 0
        """Bytes fed up to the end of the last complete message."""
        self._undo: tuple[int, int, int | None, int] | None = None
        self.gaps: list[tuple[int, int, int]] = []
        """``(signal, end of its last sample, time of the next)`` in ticks, wherever a block
        starts later than the previous one of its signal ended (a stream that dropped and was
        connected again, or blocks the module dropped)."""

    @property
    def signals(self) -> list[int]:
        return sorted(self.interpretations)

    def covered_ticks(self) -> int:
        """Stream time every signal has reached since the first sample (0 before any)."""
        if self.first_ticks is None or not self.end_ticks:
            return 0
        known = [self.end_ticks.get(s, self.first_ticks) for s in self.interpretations] or list(
            self.end_ticks.values()
        )
        return max(0, min(known) - self.first_ticks)

    @property
    def partial(self) -> int:
        """Bytes fed of a message that has not ended yet."""
        return self.fed - self.boundary

    def restart(self) -> None:
        """A new connection: the next byte starts a message (what was fed of an unfinished
        one is gone). Signals, their rates and where each ended are kept."""
        undo, self._undo = self._undo, None
        if undo is not None and undo[0] == self.boundary and self.partial:
            _, sid, end, gaps = undo  # the unfinished block never happened
            del self.gaps[gaps:]
            if end is None:
                self.end_ticks.pop(sid, None)
            else:
                self.end_ticks[sid] = end
        index = self.index
        while index and index[-1][1] > self.boundary:
            index.pop()  # the unfinished message: its bytes will never arrive
        self._expect(_HEADER, HEADER_SIZE)
        self._part.clear()
        self._skip = 0
        self.boundary = self.fed

    def tps(self, sid: int) -> int:
        """Ticks per sample of a signal (0 while unknown)."""
        return self._tps.get(sid, 0)

    def missing_samples(self) -> dict[int, int]:
        """Samples missing per signal (only signals that miss any), from :attr:`gaps`."""
        missing: dict[int, int] = {}
        for sid, end, start in self.gaps:
            tps = self._tps.get(sid)
            if tps:
                missing[sid] = missing.get(sid, 0) + (start - end) // tps
        return missing

    def _block_time(self, sid: int, start: int, nval: int) -> None:
        tps = self._tps.get(sid)
        if not tps:
            return
        end = self.end_ticks.get(sid)
        # Undone by restart() if this message never ends (its connection drops first).
        self._undo = (self.boundary, sid, end, len(self.gaps))
        if end is not None and start > end:
            self.gaps.append((sid, end, start))
        self.end_ticks[sid] = start + nval * tps

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        n = len(view)
        base = self.fed
        self.fed += n
        pos = 0
        head = _HEAD_AND_PREFIX
        head_size = head.size
        while True:
            if self._skip:
                k = min(self._skip, n - pos)
                self._skip -= k
                pos += k
                if self._skip:
                    return
                self.boundary = base + pos  # every skip is the rest of a message
                continue
            if self._need == 0:
                self._advance(memoryview(b""))
                if self._stage == _HEADER and not self._skip:
                    self.boundary = base + pos
                continue
            if pos >= n:
                return
            if self._stage == _HEADER and not self._part and n - pos >= head_size:
                # The common case, kept tight: a SignalData message nobody looks at.
                (magic, hlen, mtype, _r1, _r2, k2, k3, k5, k7, count, length, nsig, _r3, sid,
                 nval) = head.unpack_from(view, pos)  # fmt: skip
                if (
                    mtype == MessageType.SIGNAL_DATA
                    and magic == b"BK"
                    and hlen == 20
                    and k2 == 32
                    and not (k3 or k5 or k7)
                    and length >= _SD_PREFIX.size
                    and sid not in self.wanted
                    and sid not in self.watched
                ):
                    self.messages += 1
                    self.signal_messages += 1
                    if self.first_ticks is None:
                        self.first_ticks = count
                    self._block_time(sid, count, nval)
                    total = HEADER_SIZE + length
                    if self.index is not None:
                        start = base + pos
                        self.index.append((start, start + total, mtype, count, sid, nval, None))
                    if n - pos >= total:
                        pos += total
                        self.boundary = base + pos
                    else:
                        self._skip = total - (n - pos)
                        pos = n
                    continue
            if not self._part and n - pos >= self._need:
                chunk = view[pos : pos + self._need]
                pos += self._need
            else:
                k = min(self._need - len(self._part), n - pos)
                self._part += view[pos : pos + k]
                pos += k
                if len(self._part) < self._need:
                    return
                chunk = memoryview(bytes(self._part))
                self._part.clear()
            self._advance(chunk)
            if self._stage == _HEADER and not self._skip:
                self.boundary = base + pos

    def _expect(self, stage: int, need: int) -> None:
        self._stage = stage
        self._need = need

    def _next_message(self) -> None:
        self.messages += 1
        self._expect(_HEADER, HEADER_SIZE)

    def _advance(self, chunk: memoryview) -> None:
        stage = self._stage
        if stage == _HEADER:
            mtype, family, count, length = parse_header(chunk)
            self._mtype, self._family, self._count, self._length = mtype, family, count, length
            self._time = count if family == HEADER_FAMILY else Time(family, count).ticks
            if mtype == MessageType.SIGNAL_DATA and length >= _SD_PREFIX.size:
                self._expect(_SD_PREFIX_STAGE, _SD_PREFIX.size)
            elif mtype in (MessageType.DATA_QUALITY, MessageType.INTERPRETATION):
                if self.index is not None:
                    self._head_raw = bytes(chunk)
                self._expect(_CONTENT, length)
            else:
                if self.index is not None:
                    end = self.boundary + HEADER_SIZE + length
                    self.index.append((self.boundary, end, mtype, self._time, 0, 0, None))
                self._skip = length
                self._next_message()
        elif stage == _SD_PREFIX_STAGE:
            nsig, _reserved, sid, nval = _SD_PREFIX.unpack(chunk)
            self._sid, self._nval = sid, nval
            self.signal_messages += 1
            if self.first_ticks is None:
                self.first_ticks = self._time
            self._block_time(sid, self._time, nval)
            if self.index is not None:
                end = self.boundary + HEADER_SIZE + self._length
                self.index.append((self.boundary, end, self._mtype, self._time, sid, nval, None))
            rest = self._length - _SD_PREFIX.size
            if (sid in self.wanted or sid in self.watched) and nsig >= 1 and 3 * nval <= rest:
                self._expect(_SD_VALUES, rest)
            else:
                self._skip = rest
                self._next_message()
        elif stage == _SD_VALUES:
            sid = self._sid
            values = decode_int24(chunk, self._nval)
            if sid in self.watched and self.on_watched is not None:
                self.on_watched(sid, self._time, values)
            if sid in self.wanted:
                self.wanted.discard(sid)
                if self.on_block is not None:
                    self.on_block(sid, values, self.interpretations.get(sid))
            self._next_message()
        else:
            message = decode_content(self._mtype, self._family, self._count, chunk)
            if self.index is not None:
                raw = self._head_raw + bytes(chunk)
                info: Any = (
                    (raw, tuple(i.signal_id for i in message.signals))
                    if isinstance(message, Interpretation)
                    else (raw, list(getattr(message, "qualities", [])))
                )
                end = self.boundary + len(raw)
                self.index.append((self.boundary, end, self._mtype, self._time, 0, 0, info))
            if isinstance(message, Interpretation):
                for interp in message.signals:
                    known = self.interpretations.get(interp.signal_id)
                    if known is None:
                        self.interpretations[interp.signal_id] = known = interp
                        self.wanted.add(interp.signal_id)  # the live view starts at once
                    else:
                        known.merge(interp, message.present.get(interp.signal_id, set()))
                    rate = known.sample_rate
                    try:
                        self._tps[interp.signal_id] = ticks_per_sample(rate) if rate else 0
                    except ValueError:  # a rate that does not divide 2^32: no coverage
                        self._tps[interp.signal_id] = 0
            elif self.on_quality is not None:
                for sid, validity in getattr(message, "qualities", []):
                    self.on_quality(sid, validity, self._time)
            self._next_message()


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
