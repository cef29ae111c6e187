"""A generator output fed by the client over TCP: the streamed waveform (stream-format.md §13).

When an output's input 1 has ``signalType: "stream"`` the module listens on a TCP port of its
own for that output (reported as ``port`` by ``GET generator/output``). The client writes a
continuous sequence of 32-bit little-endian integers, one per output sample, full scale 2^23
(PROTOCOL.md Q20: values beyond are clipped). The module keeps a FIFO of at most
``bufferSize`` samples: it reads from the connection only while the FIFO has room, so a fast
client is held back by TCP itself, and it may fill the FIFO before the start ("priming").

From the start the output plays one sample every 1/fs (fs = 131072 Hz / 2^samplingRate) from
the FIFO. A slot whose sample has not arrived when it is due plays 0 (an *underrun*: counted as
an event and in samples); the samples that arrive later are played in order, so the signal goes
on delayed by the gap, as any FIFO-fed converter does. Once the client has closed its
connection the output plays out the FIFO and then 0, which is no underrun (the stream ended).
What was played is kept for ``keep_seconds`` so a looped-back input, built block by block as
the stream port sends it (late for a slow reader), reads exactly what was on the connector.

Time is the emulator's tick clock; the played timeline advances at every arrival (before the
new samples are queued) and whenever an input asks for a block, so each slot is decided with the
FIFO as it was at the slot's own time, to the granularity of one received chunk.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import threading
from typing import Any

import numpy as np

from webapp.emulator.clock import TICKS_PER_SECOND, now_ticks

BASE_RATE = 131072
"""Output sample rate at samplingRate 0 (PROTOCOL.md §5.7)."""
FULL_SCALE_COUNTS = 1 << 23
DEFAULT_BUFFER_SAMPLES = 262144
"""FIFO length when the setup names no ``bufferSize`` (2 s at 131072 Hz)."""
MIN_BUFFER_SAMPLES = 3 * 6000
MAX_BUFFER_SAMPLES = 1 << 23
RECV_BYTES = 65536
POLL_SECONDS = 0.005
GRID_TICKS = TICKS_PER_SECOND // BASE_RATE
"""A streamed output starts on the module's 131072 Hz sample grid."""


def align_start(tick: int) -> int:
    return -(-tick // GRID_TICKS) * GRID_TICKS


class StreamedOutput:
    """The TCP input, FIFO and play timeline of one streamed generator output."""

    def __init__(self, output: int, host: str, keep_seconds: float = 30.0) -> None:
        self.output = output
        self.sample_rate = BASE_RATE
        self.buffer_samples = DEFAULT_BUFFER_SAMPLES
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(4)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._conn: socket.socket | None = None
        self._closed = False
        self._reset_locked()
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"output{output}-stream-accept", daemon=True
        )
        self._accepter.start()

    # --- control (the generator calls these with the module lock held) -----------------------

    def configure(self, sampling_rate_exponent: int, buffer_samples: int | None) -> None:
        with self._lock:
            self.sample_rate = BASE_RATE >> sampling_rate_exponent
            if buffer_samples is not None:
                self.buffer_samples = buffer_samples

    def reset(self) -> None:
        """``prepare``: a new run; what is queued or was played is forgotten."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        self._fifo: collections.deque[np.ndarray] = collections.deque()
        self._fill = 0
        self._remainder = b""
        self.anchor_tick: int | None = None
        self.stop_tick: int | None = None
        self._played = 0
        self._history: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self.received = 0
        self.underruns = 0
        self.underrun_samples = 0
        self._in_underrun = False
        self._ended = False  # the client closed its connection: silence is no underrun

    def start(self, anchor_tick: int) -> None:
        with self._lock:
            if self.anchor_tick is None or self.stop_tick is not None:
                keep = (self._fifo, self._fill, self._remainder, self.received, self._ended)
                self._reset_locked()
                self._fifo, self._fill, self._remainder, self.received, self._ended = keep
                self.anchor_tick = anchor_tick

    def stop(self, tick: int) -> None:
        """The output stops at ``tick``: the queue is dropped and the client's connection closed."""
        with self._lock:
            if self.anchor_tick is not None and self.stop_tick is None:
                self._advance_locked(tick)
                self.stop_tick = tick
            self._fifo.clear()
            self._fill = 0
            conn, self._conn = self._conn, None
        if conn is not None:
            _close(conn)

    def close(self) -> None:
        self._closed = True
        self.stop(now_ticks())
        _close(self._listener)
        self._accepter.join(1.0)

    # --- the connection -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                busy = self._conn is not None or self._closed
                if not busy:
                    self._conn = conn
                    self._ended = False
            if busy:  # one client per output: a second connection is closed at once
                _close(conn)
                continue
            threading.Thread(
                target=self._receive, args=(conn,), name=f"output{self.output}-stream", daemon=True
            ).start()

    def _receive(self, conn: socket.socket) -> None:
        """Wait for data outside the lock; read it under the lock (so the play timeline, which
        also reads, never sees chunks out of order), after playing the slots already due."""
        while True:
            with self._lock:
                if self._conn is not conn:
                    return
                self._advance_locked(now_ticks(), pull=False)
                room = self._room_locked()
            if room < 4:
                threading.Event().wait(POLL_SECONDS)  # full: TCP holds the client back
                continue
            try:
                readable, _, _ = select.select([conn], [], [], 0.5)
            except (OSError, ValueError):
                readable = [conn]
            if not readable:
                continue
            with self._lock:
                if self._conn is not conn:
                    return
                self._advance_locked(now_ticks(), pull=False)
                if not self._pull_locked(conn):
                    break
        _close(conn)

    def _room_locked(self) -> int:
        return (self.buffer_samples - self._fill) * 4 - len(self._remainder)

    def _pull_locked(self, conn: socket.socket) -> bool:
        """Queue what the connection holds now (without waiting); False once it has ended."""
        while (room := self._room_locked()) >= 4:
            try:
                data = conn.recv(min(RECV_BYTES, room), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                data = b""
            if not data:
                self._conn = None
                self._ended = True
                _close(conn)
                return False
            self._queue_locked(data)
        return True

    def _queue_locked(self, data: bytes) -> None:
        data = self._remainder + data
        whole = len(data) - len(data) % 4
        self._remainder = data[whole:]
        if not whole:
            return
        values = np.frombuffer(data[:whole], dtype="<i4").astype(np.int32)
        self._fifo.append(values)
        self._fill += values.size
        self.received += values.size

    # --- the play timeline ----------------------------------------------------------------------

    def _slot(self, tick: int) -> int:
        assert self.anchor_tick is not None
        return (tick - self.anchor_tick) * self.sample_rate // TICKS_PER_SECOND

    def _advance_locked(self, tick: int, pull: bool = True) -> None:
        """Play every slot due by ``tick``. With ``pull`` (an input or a status asks) what
        already waits in the connection is queued first: the module's receiving is continuous,
        so data there arrived in time even when the receiving thread was not scheduled."""
        if self.anchor_tick is None or tick < self.anchor_tick:
            return
        if self.stop_tick is not None:
            tick = min(tick, self.stop_tick)
        due = self._slot(tick) + 1 - self._played
        if due <= 0:
            return
        if pull and due > self._fill and self._conn is not None:
            self._pull_locked(self._conn)
        parts = []
        got = 0
        while got < due and self._fifo:
            head = self._fifo[0]
            take = min(due - got, head.size)
            parts.append(head[:take])
            if take == head.size:
                self._fifo.popleft()
            else:
                self._fifo[0] = head[take:]
            got += take
        self._fill -= got
        if got < due:
            parts.append(np.zeros(due - got, dtype=np.int32))
            if not self._ended:
                self.underrun_samples += due - got
                if not self._in_underrun:
                    self.underruns += 1
            self._in_underrun = not self._ended
        else:
            self._in_underrun = False
        self._history.append((self._played, np.concatenate(parts) if len(parts) > 1 else parts[0]))
        self._played += due
        keep = int(self.keep_seconds * self.sample_rate)
        while (
            self._history and self._history[0][0] + self._history[0][1].size < self._played - keep
        ):
            self._history.popleft()

    def played_at(self, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values in full-scale units, playing mask) of the output at the given ticks."""
        values = np.zeros(ticks.size, dtype=np.float64)
        with self._lock:
            if self.anchor_tick is None:
                return values, np.zeros(ticks.size, dtype=bool)
            self._advance_locked(now_ticks())
            slots = (ticks - self.anchor_tick) * self.sample_rate // TICKS_PER_SECOND
            playing = ticks >= self.anchor_tick
            if self.stop_tick is not None:
                playing &= ticks < self.stop_tick
            playing &= slots < self._played
            if playing.any():
                lo, hi = int(slots[playing].min()), int(slots[playing].max())
                for first, chunk in reversed(self._history):  # the newest first: blocks are recent
                    if first + chunk.size <= lo:
                        break
                    if first > hi:
                        continue
                    inside = playing & (slots >= first) & (slots < first + chunk.size)
                    values[inside] = chunk[slots[inside] - first]
        values = np.clip(values / FULL_SCALE_COUNTS, -1.0, 1.0)
        return values, playing

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._advance_locked(now_ticks())
            return {
                "output": self.output,
                "port": self.port,
                "sampleRate": self.sample_rate,
                "bufferSize": self.buffer_samples,
                "connected": self._conn is not None,
                "received": self.received,
                "buffered": self._fill,
                "played": self._played,
                "underruns": self.underruns,
                "underrunSamples": self.underrun_samples,
                "ended": self._ended,
                "running": self.anchor_tick is not None and self.stop_tick is None,
                "startTick": self.anchor_tick,
                "stopTick": self.stop_tick,
            }


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
