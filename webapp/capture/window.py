"""Recordings cut from a running measurement: a ring of each stream's last seconds, and the
writer that turns a time window of it into a stream file of its own.

While the rig monitors, each stream receiver keeps what arrived in a :class:`StreamRing`: the
received chunks (no copy beyond the one the socket read makes) and the receiver's
:class:`~webapp.capture.receiver.StreamTap` index of the messages in them. The ring holds the
last ``retention`` of stream time, so a recording can start in the past (a trigger's
pre-trigger time).

A :class:`WindowWriter` writes the window ``[start, end)`` of one stream to a file that is a
valid stream on its own, as HBK's parsers expect one:

1. every Interpretation message known at the window start (the latest one per set of signals),
2. one DataQuality message at the window start giving every signal's state there,
3. the stream's messages inside the window, in stream order: SignalData messages whole, and the
   one at each edge re-encoded with only its samples inside the window (header time and value
   count adjusted, the values' bytes copied, never decoded), DataQuality and Interpretation
   messages as they came.

So the file's first sample is the first one at or after ``start`` and its last one the last
before ``end``, on every signal: windows that share an edge (segments) neither lose nor repeat
a sample. The ring's trimming and every writer run on the receiver's greenlet, under the ring's
lock; the orchestrator adds and removes writers from its own.
"""

from __future__ import annotations

import bisect
import struct
import threading
from collections.abc import Callable
from typing import Protocol

from webapp.capture.tap import IndexEntry, StreamTap, missing_in
from webapp.openapi.stream import HEADER_SIZE, MessageType, encode_data_quality, encode_header

TICKS_PER_SECOND = 1 << 32
TRIM_EVERY_BYTES = 1 << 20
"""The ring looks at trimming once this much more has arrived."""
_SD_PREFIX = struct.Struct("<HHHH")


class Sink(Protocol):
    """Where a window's bytes go (a :class:`~webapp.capture.receiver.StreamFile`)."""

    def write(self, data: memoryview) -> None: ...


class StreamState:
    """What holds at a point of a stream: its Interpretations and each signal's validity."""

    def __init__(self) -> None:
        self.interpretations: dict[tuple[int, ...], bytes] = {}
        """Latest raw Interpretation message per set of signals it describes."""
        self.validity: dict[int, int] = {}

    def copy(self) -> StreamState:
        other = StreamState()
        other.interpretations = dict(self.interpretations)
        other.validity = dict(self.validity)
        return other

    def fold(self, entry: IndexEntry) -> None:
        mtype, info = entry[2], entry[6]
        if info is None:
            return
        if mtype == MessageType.INTERPRETATION:
            raw, sids = info
            self.interpretations[tuple(sids)] = raw
        elif mtype == MessageType.DATA_QUALITY:
            for sid, validity in info[1]:
                self.validity[sid] = int(validity)

    @property
    def signals(self) -> list[int]:
        return sorted({s for key in self.interpretations for s in key})


class StreamRing:
    """The last ``retention_ticks`` of one stream: its bytes and its message index."""

    def __init__(self, tap: StreamTap, retention_ticks: int) -> None:
        self.tap = tap
        self.retention_ticks = retention_ticks
        self.lock = threading.Lock()
        self.entries: list[IndexEntry] = []
        self.entries_base = 0
        """Entry number of ``entries[0]`` (numbers count every message of the stream)."""
        tap.index = self.entries
        self._chunks: list[bytes] = []
        self._starts: list[int] = []
        self.end = 0
        """Stream offset just after the last byte received."""
        self.base_state = StreamState()
        """The stream's state before ``entries[0]`` (what trimming folded away)."""
        self.writers: list[WindowWriter] = []
        self._since_trim = 0

    # --- called by the receiver -------------------------------------------------------------

    def append(self, data: bytes | memoryview) -> None:
        """Keep a chunk just received (before the tap is fed with it)."""
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._starts.append(self.end)
        self.end += len(chunk)
        self._since_trim += len(chunk)

    def after_feed(self) -> None:
        """Run the writers over what the tap has indexed, then trim now and then."""
        if not self.writers and self._since_trim < TRIM_EVERY_BYTES:
            return
        with self.lock:
            for w in list(self.writers):
                w.advance()
            if self._since_trim >= TRIM_EVERY_BYTES:
                self._since_trim = 0
                self._trim()

    # --- reading ----------------------------------------------------------------------------

    def read(self, start: int, end: int) -> bytes:
        """The stream's bytes ``[start, end)`` (which the ring must still hold)."""
        i = bisect.bisect_right(self._starts, start) - 1
        if i < 0:
            raise ValueError(f"byte {start} is no longer held")
        parts = []
        pos = start
        while pos < end:
            chunk, at = self._chunks[i], self._starts[i]
            take = chunk[pos - at : min(end - at, len(chunk))]
            parts.append(take)
            pos += len(take)
            i += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def latest_ticks(self) -> int:
        """End time of the latest sample received on any signal (0 before any)."""
        return max(self.tap.end_ticks.values(), default=0)

    def held_ticks(self) -> int:
        """Stream time the ring holds (from its oldest SignalData message to the newest)."""
        first = self.oldest_ticks()
        return 0 if first is None else max(0, self.latest_ticks - first)

    @property
    def bytes_held(self) -> int:
        return self.end - (self._starts[0] if self._starts else self.end)

    # --- writers ----------------------------------------------------------------------------

    def add(self, writer: WindowWriter, replacing: WindowWriter | None = None) -> None:
        """Start a writer (at the ring's oldest message, or where ``replacing`` ended: a
        window that follows another) and run it over what is already here."""
        with self.lock:
            if replacing is not None:
                writer.resume_after(replacing)
                if replacing in self.writers:
                    self.writers.remove(replacing)
            else:
                writer.cursor = self.entries_base
                writer.state = self.base_state.copy()
            self.writers.append(writer)
            writer.advance()

    def remove(self, writer: WindowWriter) -> None:
        with self.lock:
            if writer in self.writers:
                self.writers.remove(writer)

    def oldest_ticks(self) -> int | None:
        """Time of the oldest SignalData message held (None when none)."""
        with self.lock:
            return next((e[3] for e in self.entries if e[2] == MessageType.SIGNAL_DATA), None)

    def _trim(self) -> None:
        """Drop what is older than the retention and no writer still needs."""
        entries = self.entries
        if not entries:
            return
        cut_time = self.latest_ticks - self.retention_ticks
        limit = len(entries)
        for w in self.writers:
            limit = min(limit, w.keep_from - self.entries_base)
        n = 0
        while n < limit and entries[n][3] < cut_time and entries[n][1] <= self.end:
            n += 1
        if n == 0:
            return
        for e in entries[:n]:
            self.base_state.fold(e)
        keep_offset = entries[n][0] if n < len(entries) else entries[n - 1][1]
        del entries[:n]
        self.entries_base += n
        k = 0
        while k < len(self._chunks) and self._starts[k] + len(self._chunks[k]) <= keep_offset:
            k += 1
        if k:
            del self._chunks[:k]
            del self._starts[:k]


class WindowWriter:
    """Writes the window ``[start_ticks, end_ticks)`` of one stream; see the module docstring.

    ``open_sink`` is called at the first byte to write (a window in the future has no file
    until its time comes). ``end_ticks`` may be set later (a recording stopped by hand); the
    writer is :attr:`done` once every signal has reached it.
    """

    def __init__(
        self,
        ring: StreamRing,
        open_sink: Callable[[], Sink],
        start_ticks: int,
        end_ticks: int | None = None,
    ) -> None:
        self.ring = ring
        self._open_sink = open_sink
        self.sink: Sink | None = None
        self.start_ticks = start_ticks
        self.end_ticks = end_ticks
        self.cursor = 0
        """Number of the next entry to look at."""
        self.state = StreamState()
        self.started = False
        self.done = False
        self.bytes = 0
        self.first_ticks: int | None = None
        """Time of the first sample written (on any signal)."""
        self.signal_end: dict[int, int] = {}
        """Per signal: the time just after its last sample written."""
        self.gaps: list[tuple[int, int, int]] = []
        """``(signal, end of its last sample, time of the next)`` inside the window."""
        self.reached: set[int] = set()
        """Signals that have reached the window's end."""
        self.inexact: list[str] = []
        """Edges that could not be cut to the sample (a message of an unexpected layout)."""
        self._run: tuple[int, int] | None = None
        """Stream bytes gathered for the next write."""
        self._resume: tuple[int, StreamState] | None = None
        """Where a following window starts: the first message that crossed the end, and the
        state before it."""

    @property
    def keep_from(self) -> int:
        """The oldest entry this writer (or the window that follows it) still needs."""
        if self._resume is not None:
            return self._resume[0]
        return self.cursor

    def resume_after(self, previous: WindowWriter) -> None:
        """Start where ``previous`` (done) ended: at the first message that crossed its end,
        or, when its end fell on a message boundary and nothing later has been looked at yet,
        at its cursor."""
        if previous._resume is not None:
            self.cursor, state = previous._resume
        elif previous.done:
            self.cursor, state = previous.cursor, previous.state
        else:
            raise ValueError("the previous window has not reached its end")
        self.state = state.copy()

    def advance(self) -> None:
        """Handle every complete message not handled yet (the ring's lock is held)."""
        ring = self.ring
        entries, base, end = ring.entries, ring.entries_base, ring.end
        i = self.cursor - base
        while i < len(entries) and not self.done:
            entry = entries[i]
            if entry[1] > end:
                break  # its bytes have not all arrived yet
            self._handle(entry, base + i)
            i += 1
            self.cursor = base + i
        self._flush()
        if self.end_ticks is not None and not self.done:
            signals = self.state.signals
            if signals and all(s in self.reached for s in signals):
                self.done = True

    def _handle(self, entry: IndexEntry, number: int) -> None:
        start, stop, mtype, time, sid, nval, _info = entry
        t0, t1 = self.start_ticks, self.end_ticks
        if mtype != MessageType.SIGNAL_DATA:
            if self.started and (t1 is None or time < t1):
                self._copy(start, stop)
            self.state.fold(entry)
            return
        tps = self.ring.tap.tps(sid)
        if not tps:
            return
        block_end = time + nval * tps
        if t1 is not None and block_end > t1 and self._resume is None:
            self._resume = (number, self.state.copy())
        if t1 is not None and time >= t1:
            self.reached.add(sid)
            return
        if block_end <= t0:
            return
        first = max(0, -(-(t0 - time) // tps))
        last = nval if t1 is None or block_end <= t1 else -(-(t1 - time) // tps)
        if last <= first:
            if t1 is not None and block_end >= t1:
                self.reached.add(sid)
            return
        if not self.started:
            self._begin()
        if first == 0 and last == nval:
            self._copy(start, stop)
        else:
            self._write(self._cut(self.ring.read(start, stop), first, last, time, tps))
        begin = time + first * tps
        previous = self.signal_end.get(sid)
        if previous is not None and begin > previous:
            self.gaps.append((sid, previous, begin))
        self.signal_end[sid] = time + last * tps
        if self.first_ticks is None:
            self.first_ticks = begin
        if t1 is not None and block_end >= t1:
            self.reached.add(sid)

    def _cut(self, raw: bytes, first: int, last: int, time: int, tps: int) -> bytes:
        nsig, reserved, sid, nval = _SD_PREFIX.unpack_from(raw, HEADER_SIZE)
        length = len(raw) - HEADER_SIZE
        if nsig != 1 or length != _SD_PREFIX.size + 3 * nval:
            self.inexact.append(f"signal {sid}: a SignalData message of {nsig} blocks kept whole")
            return raw
        values = raw[
            HEADER_SIZE + _SD_PREFIX.size + 3 * first : HEADER_SIZE + _SD_PREFIX.size + 3 * last
        ]
        count = last - first
        return (
            encode_header(MessageType.SIGNAL_DATA, time + first * tps, _SD_PREFIX.size + 3 * count)
            + _SD_PREFIX.pack(1, reserved, sid, count)
            + values
        )

    def _begin(self) -> None:
        """The window's first sample: its Interpretations and data quality go first."""
        self.started = True
        for raw in self.state.interpretations.values():
            self._write(raw)
        signals = self.state.signals
        if signals:
            qualities = [(s, self.state.validity.get(s, 0)) for s in signals]
            self._write(encode_data_quality(self.start_ticks, qualities))

    def _copy(self, start: int, stop: int) -> None:
        """Write the stream's bytes ``[start, stop)`` as they are: contiguous messages are
        gathered into one write per :meth:`advance` (one per received chunk, as a recording)."""
        run = self._run
        if run is not None and run[1] == start:
            self._run = (run[0], stop)
            return
        self._flush()
        self._run = (start, stop)

    def _flush(self) -> None:
        run, self._run = self._run, None
        if run is not None:
            self._emit(self.ring.read(*run))

    def _write(self, data: bytes) -> None:
        """Write bytes that are not the stream's own (re-encoded edges, the header messages)."""
        self._flush()
        self._emit(data)

    def _emit(self, data: bytes) -> None:
        if self.sink is None:
            self.sink = self._open_sink()
        self.sink.write(memoryview(data))
        self.bytes += len(data)

    def covered_ticks(self) -> int:
        """Stream time every signal of the window has been written for."""
        signals = self.state.signals
        if not signals or self.first_ticks is None:
            return 0
        ends = [self.signal_end.get(s, self.first_ticks) for s in signals]
        return max(0, min(ends) - self.first_ticks)

    def missing_samples(self) -> dict[int, int]:
        """Samples missing per signal inside the window (only signals that miss any)."""
        return missing_in(self.gaps, self.ring.tap.tps)
