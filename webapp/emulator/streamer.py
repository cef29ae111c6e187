"""Stream sockets: accept clients, pace the measurement's blocks, bound the send buffer.

One :class:`StreamPort` per listening port (1536, and 1537… for multi-socket setups). Each
measurement gets a :class:`PortSession` per port that carries some of its signals. The session
holds the port's send position ("cursor") in blocks counted from ``T0``; a block is available
once the module clock has passed its end, so the stream is paced in real time from the clock.

The send buffer is virtual: blocks are rebuilt from the precomputed loops when they are sent,
so buffering ``buffer_seconds`` of data costs no memory. When a reader falls further behind
than that, the oldest whole blocks are dropped and the next block sent is preceded by a
DataQuality message with the Overrun flag (0x10) — what a real module reports when its buffers
overflow. The same happens to the blocks that were in flight when a connection broke.

Per measurement and port: the newest connection accepted before the measurement ended gets
the stream; it starts with one Interpretation per signal, then the data from ``T0``. At the end
of a measurement the module closes the connection after the final block (HBK's tutorial
clients wait for that end of file before they exit).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from webapp.emulator.acquisition import Acquisition, SignalPlan, Variant
from webapp.emulator.clock import now_ticks
from webapp.emulator.network import TriggerGroup
from webapp.openapi.stream import HEADER_TIME_OFFSET, TICKS_PER_SECOND, encode_data_quality

log = logging.getLogger(__name__)

_TIME = struct.Struct("<Q")
MAX_BATCH_BYTES = 256 * 1024
SEND_POLL_SECONDS = 0.25


@dataclass
class Measurement:
    """One POST measurements … measurements/stop of a module."""

    acquisition: Acquisition
    t0: int | None = None  # None while a slave waits for the trigger
    stop_tick: int | None = None
    group: TriggerGroup | None = None
    fin_allowed: bool = False
    """Connections may be closed after their final block (the whole trigger group stopped)."""

    def available_blocks(self, now: int) -> int:
        if self.t0 is None:
            return 0
        end = now if self.stop_tick is None else min(now, self.stop_tick)
        return max(0, (end - self.t0) // self.acquisition.block_ticks)

    def total_blocks(self) -> int | None:
        """Blocks the measurement produced, once it has stopped."""
        if self.stop_tick is None:
            return None
        if self.t0 is None:
            return 0
        return max(0, (self.stop_tick - self.t0) // self.acquisition.block_ticks)

    def elapsed_seconds(self, now: int) -> int:
        if self.t0 is None:
            return 0
        end = now if self.stop_tick is None else self.stop_tick
        return max(0, (end - self.t0) // TICKS_PER_SECOND)


@dataclass(eq=False)
class Connection:
    sock: socket.socket
    peer: str
    accepted_tick: int
    dead: bool = False

    def close(self, graceful: bool) -> None:
        """graceful: FIN after all data sent; otherwise tear the connection down now."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR if graceful else socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.dead = True


@dataclass(eq=False)
class PortSession:
    measurement: Measurement
    plans: list[SignalPlan]
    cursor: int = 0
    conn: Connection | None = None
    interpreted: bool = False  # the current connection has had its Interpretations
    last_validity: dict[int, int] = field(default_factory=dict)
    overrun_pending: bool = False
    done: bool = False
    sent_blocks: int = 0
    dropped_blocks: int = 0


BlockQuality = Callable[[SignalPlan, int], tuple[Variant, int]]
"""(plan, block start tick) -> (sample variant, validity flags); called with the lock held."""


class StreamPort:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        cond: threading.Condition,
        block_quality: BlockQuality,
        reachable: Callable[[], bool],
        buffer_seconds: float,
    ) -> None:
        self.name = name
        self._cond = cond
        self._block_quality = block_quality
        self._reachable = reachable
        self.buffer_seconds = buffer_seconds
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
        except OSError:
            self._listener.close()
            raise
        self._listener.listen(8)
        self._listener.settimeout(SEND_POLL_SECONDS * 2)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._pending: list[Connection] = []
        self.session: PortSession | None = None
        self._closed = False
        self._threads = [
            threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True),
            threading.Thread(target=self._send_loop, name=f"{name}-send", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # --- control (called with the module lock held) -------------------------------------------

    def begin(self, measurement: Measurement, plans: list[SignalPlan]) -> None:
        """A new measurement: the newest waiting connection will carry it."""
        old = self.session
        if old is not None and old.conn is not None and not old.done:
            old.conn.close(graceful=True)
        self.session = PortSession(measurement, plans)
        self._cond.notify_all()

    def drop_connections(self) -> int:
        """The stream-drop fault: break the connection that carries data, as a cable pull would."""
        dropped = 0
        s = self.session
        if s is not None and s.conn is not None and not s.conn.dead:
            s.conn.close(graceful=False)
            dropped += 1
        self._cond.notify_all()
        return dropped

    def end_session(self) -> None:
        """finish/close: every connection of this port is closed, waiting ones too."""
        s = self.session
        if s is not None and s.conn is not None:
            s.conn.close(graceful=True)
        for conn in self._pending:
            conn.close(graceful=True)
        self._pending.clear()
        self.session = None
        self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self.end_session()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once
        with contextlib.suppress(OSError):
            self._listener.close()

    def join(self, timeout: float = 2.0) -> None:
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)

    def drained(self) -> bool:
        """The current measurement's data has all been handed to the connection (or nobody
        reads it and nothing more will be sent)."""
        s = self.session
        if s is None or s.done:
            return True
        total = s.measurement.total_blocks()
        if total is None:
            return False
        return s.cursor >= total or s.conn is None or s.conn.dead

    def ended(self) -> bool:
        """The current measurement's connection has been closed (or there is none to close)."""
        s = self.session
        return s is None or s.done or s.conn is None or s.conn.dead

    # --- threads ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed:
                    return
                time.sleep(0.05)
                continue
            sock.settimeout(SEND_POLL_SECONDS)
            conn = Connection(sock, f"{addr[0]}:{addr[1]}", now_ticks())
            log.info("%s: stream connection from %s", self.name, conn.peer)
            with self._cond:
                if self._closed:
                    conn.close(graceful=False)
                    return
                self._pending.append(conn)
                self._cond.notify_all()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                work, wait = self._plan_work()
                if work is None:
                    self._cond.wait(wait)
                    continue
            session, conn, payload, blocks = work
            ok = self._send(conn, payload) if payload else True
            with self._cond:
                if not ok and session.conn is conn:
                    # What was in flight is lost: the next connection hears of it as an overrun.
                    log.info("%s: stream connection %s lost", self.name, conn.peer)
                    conn.close(graceful=False)
                    session.conn = None
                    session.interpreted = False
                    session.overrun_pending = session.overrun_pending or blocks > 0
                session.sent_blocks += blocks if ok else 0

    def _send(self, conn: Connection, payload: bytes | bytearray) -> bool:
        view = memoryview(payload)
        while view:
            if conn.dead or self._closed:
                return False
            if not self._reachable():
                time.sleep(SEND_POLL_SECONDS)
                continue
            try:
                n = conn.sock.send(view)
            except TimeoutError:
                continue
            except OSError:
                return False
            view = view[n:]
        return True

    def _attach(self, s: PortSession) -> None:
        stop = s.measurement.stop_tick
        candidates = [
            c for c in self._pending if not c.dead and (stop is None or c.accepted_tick <= stop)
        ]
        self._pending = [c for c in self._pending if not c.dead]
        if candidates:
            conn = candidates[-1]
            self._pending.remove(conn)
            s.conn = conn
            s.interpreted = False
            log.info("%s: streaming to %s", self.name, conn.peer)

    def _plan_work(
        self,
    ) -> tuple[tuple[PortSession, Connection, bytearray, int] | None, float]:
        """Under the lock: what to send next, or how long to wait."""
        s = self.session
        if s is None or s.done:
            return None, 1.0
        if not self._reachable():
            return None, SEND_POLL_SECONDS
        if s.conn is not None and s.conn.dead:
            s.conn = None
            s.interpreted = False
            s.overrun_pending = s.overrun_pending or s.cursor > 0
        if s.conn is None:
            self._attach(s)
            if s.conn is None:
                return None, 1.0
        m = s.measurement
        if m.t0 is None:
            return None, 1.0
        acq = m.acquisition
        now = now_ticks()
        available = m.available_blocks(now)
        capacity = max(1, -(-int(self.buffer_seconds * acq.sample_rate) // acq.block_values))
        if available - s.cursor > capacity:
            s.dropped_blocks += available - capacity - s.cursor
            s.cursor = available - capacity
            s.overrun_pending = True
        payload = bytearray()
        if not s.interpreted:
            for plan in s.plans:
                payload += acq.interpretation_message(plan, m.t0)
            s.interpreted = True
        total = m.total_blocks()
        if s.cursor < available:
            per_block = acq.message_size * len(s.plans)
            count = min(available - s.cursor, max(1, MAX_BATCH_BYTES // per_block))
            self._build_blocks(s, s.cursor, count, payload)
            s.cursor += count
            return (s, s.conn, payload, count), 0.0
        if payload:
            return (s, s.conn, payload, 0), 0.0
        if total is not None and s.cursor >= total:
            if m.fin_allowed:
                s.conn.close(graceful=True)
                s.done = True
                log.info("%s: stream of %d blocks ended", self.name, s.sent_blocks)
                return None, 1.0
            return None, 1.0
        next_block_end = m.t0 + (available + 1) * acq.block_ticks
        return None, max(0.001, (next_block_end - now) / TICKS_PER_SECOND)

    def _build_blocks(self, s: PortSession, first: int, count: int, out: bytearray) -> None:
        m = s.measurement
        acq = m.acquisition
        assert m.t0 is not None
        for k in range(first, first + count):
            tick = m.t0 + k * acq.block_ticks
            absolute = tick // acq.block_ticks
            chosen = []
            changes = []
            for plan in s.plans:
                variant, validity = self._block_quality(plan, tick)
                if s.overrun_pending:
                    validity |= 0x10
                if validity != s.last_validity.get(plan.signal_id, 0):
                    changes.append((plan.signal_id, validity))
                    s.last_validity[plan.signal_id] = validity
                chosen.append((plan, variant))
            s.overrun_pending = False
            if changes:
                out += encode_data_quality(tick, changes)
            for plan, variant in chosen:
                start = len(out)
                out += acq.block_message(plan, variant, absolute)
                _TIME.pack_into(out, start + HEADER_TIME_OFFSET, tick)
