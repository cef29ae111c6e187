"""One pass over a stored stream file: where every signal block's samples are, nothing decoded.

A stream file is a sequence of messages of varying length, so finding them means walking the
headers. Walking them one by one in Python costs a few microseconds per message; a LAN-XI stream
is, however, almost entirely runs of SignalData messages of one length (one signal each, 4096
values, round-robin). Once one such message is parsed the next ones can only start at multiples
of its length, so the scanner checks a whole run of predicted headers at once through a strided
numpy view and only falls back to message-by-message parsing where the run ends (a DataQuality
message, the end of the file, a different block size).

What it yields per file: arrays of (signal id, value count, byte offset of the first value,
header time) for every signal block; the DataQuality changes; the interpretation of every
signal (and when it changed); bytes lost to a truncated final message; and any place where the
framing was lost and had to be found again.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from webapp.openapi.stream import (
    HEADER_FAMILY,
    HEADER_LENGTH_FIELD,
    HEADER_SIZE,
    MAGIC,
    Interpretation,
    MessageType,
    SignalInterpretation,
    StreamFormatError,
    Time,
    TimeFamily,
    decode_content,
)

# Header plus the SignalData prefix of a one-signal message, as one record.
_RUN_DTYPE = np.dtype(
    [
        ("magic", "S2"),
        ("hlen", "<u2"),
        ("type", "<u2"),
        ("r1", "<u2"),
        ("r2", "<u4"),
        ("family", "<u4"),
        ("time", "<u8"),
        ("length", "<u4"),
        ("nsig", "<u2"),
        ("reserved", "<u2"),
        ("sid", "<u2"),
        ("count", "<u2"),
    ]
)
assert _RUN_DTYPE.itemsize == 36
_PREFIX = 8  # NumberOfSignals, Reserved, SignalId, NumberOfValues
_STD_FAMILY = 32  # (32, 0, 0, 0) read as a little-endian u32
_HEADER = struct.Struct("<2sHHHI4BQI")
_KNOWN_TYPES = frozenset(int(t) for t in MessageType)
MAX_CONTENT = 1 << 24
"""A content length above this is taken as garbage when looking for lost framing."""


@dataclass
class InterpretationChange:
    """A signal's Interpretation arrived again after its data had started, with new values."""

    time: int
    signal_id: int
    block: int
    """Index (in the file's block arrays) of the first block the new values apply to."""
    interpretation: SignalInterpretation


@dataclass
class FramingError:
    offset: int
    skipped: int
    message: str


@dataclass
class FileIndex:
    path: Path
    size: int
    end: int = 0
    """Byte just after the last complete message."""
    messages: int = 0
    sid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint16))
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    voff: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Byte offset of each block's first value."""
    time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    """Header time of each block (2^-32 s ticks since 1970 UTC)."""
    qualities: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(time, signal id, validity, index of the next block in the file) per DataQuality entry."""
    interpretations: dict[int, SignalInterpretation] = field(default_factory=dict)
    """As first announced; later changes are in ``changes``."""
    changes: list[InterpretationChange] = field(default_factory=list)
    types: Counter[int] = field(default_factory=Counter)
    framing_errors: list[FramingError] = field(default_factory=list)
    truncated_bytes: int = 0
    """Bytes at the end that do not form a complete message (a crash while writing)."""
    truncated_message: dict[str, int] | None = None
    """What the incomplete final message's header says it was (type, length, time, signal)."""
    complete: bool = False
    """The whole file is indexed (False in a snapshot taken while the index pass runs)."""

    @property
    def blocks(self) -> int:
        return len(self.sid)


def signal_ids(sid: np.ndarray) -> list[int]:
    """The distinct signal ids of a block array, ascending (np.unique would first import
    numpy.ma, tens of milliseconds on every fresh process)."""
    return np.flatnonzero(np.bincount(sid)).tolist() if len(sid) else []


class _Builder:
    """Accumulates block records in numpy pieces (one per run), concatenated once at the end."""

    def __init__(self) -> None:
        self.sid: list[np.ndarray] = []
        self.count: list[np.ndarray] = []
        self.voff: list[np.ndarray] = []
        self.time: list[np.ndarray] = []
        self.n = 0
        self.seen: set[int] = set()
        """Signal ids whose data has started."""
        self._single: list[tuple[int, int, int, int]] = []

    def add_run(self, sid: np.ndarray, count: np.ndarray, voff: np.ndarray, time: np.ndarray):
        self._flush_single()
        self.seen.update(signal_ids(sid))
        self.sid.append(sid.astype(np.uint16))
        self.count.append(count.astype(np.int64))
        self.voff.append(voff.astype(np.int64))
        self.time.append(time.astype(np.uint64))
        self.n += len(sid)

    def add_one(self, sid: int, count: int, voff: int, time: int) -> None:
        self._single.append((sid, count, voff, time))
        self.seen.add(sid)
        self.n += 1

    def _flush_single(self) -> None:
        if self._single:
            sid, count, voff, time = zip(*self._single, strict=True)
            self._single = []
            self.sid.append(np.array(sid, np.uint16))
            self.count.append(np.array(count, np.int64))
            self.voff.append(np.array(voff, np.int64))
            self.time.append(np.array(time, np.uint64))

    def fill(self, index: FileIndex) -> None:
        """Put the blocks recorded so far into ``index`` (new arrays; recording may go on)."""
        self._flush_single()
        if self.sid:
            index.sid = np.concatenate(self.sid)
            index.count = np.concatenate(self.count)
            index.voff = np.concatenate(self.voff)
            index.time = np.concatenate(self.time)


READ_CHUNK = 8 << 20
FIRST_READ = 1 << 20


class FileScan:
    """The index pass over one file, one chunk per ``step`` (so several files can be indexed in
    step with each other, and what is indexed so far can be used while the pass goes on).

    Plain reads (rather than page faults on a mapping) keep the disk streaming at its full
    sequential speed; afterwards the file's pages are in the kernel's cache for the decoding
    pass. ``step`` may run in one thread while another takes ``snapshot``s.
    """

    def __init__(self, path: str | Path, chunk: int = READ_CHUNK) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.index = FileIndex(self.path, self.size)
        self.done = False
        self.scanned = 0
        """Bytes read so far."""
        self._scanner = _Scanner(self.index)
        self._buf = bytearray(chunk)
        self._have = 0
        self._base = 0
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None

    def step(self) -> bool:
        """Read and index one more chunk; True once the whole file is indexed."""
        if self.done:
            return True
        if self._file is None:
            self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed at the end)
            with contextlib.suppress(AttributeError, OSError):  # not on every platform
                os.posix_fadvise(self._file.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        buf = self._buf
        if self._have == len(buf):  # one message larger than the buffer: make room
            buf.extend(bytes(len(buf)))
        # The first read is short: it holds what announces the signals, which a reader may be
        # waiting for before it can start.
        want = len(buf) if self.scanned else min(len(buf), self._have + FIRST_READ)
        try:
            with memoryview(buf) as view:
                n = self._file.readinto(view[self._have : want]) or 0
        except BaseException:
            self.close()
            raise
        self._have += n
        self.scanned += n
        final = not n
        with self._lock:
            used = self._scanner.feed(buf, self._have, self._base, final)
            if final:
                self._scanner.finish(buf[used : self._have], self._base + used)
                self.index.size = max(self.size, self._base + self._have)
                self.done = True
        if final:
            self.close()
        else:
            buf[: self._have - used] = buf[used : self._have]
            self._have -= used
            self._base += used
        return final

    def run(self) -> FileIndex:
        while not self.step():
            pass
        return self.index

    def snapshot(self) -> FileIndex:
        """What is indexed so far, as a FileIndex of its own (the final one once ``done``)."""
        with self._lock:
            if self.done:
                return self.index
            part = replace(
                self.index,
                qualities=list(self.index.qualities),
                interpretations=dict(self.index.interpretations),
                changes=list(self.index.changes),
                types=Counter(self.index.types),
                framing_errors=list(self.index.framing_errors),
            )
            self._scanner.builder.fill(part)
            part.end = self._base
            return part

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def scan_file(path: str | Path, chunk: int = READ_CHUNK) -> FileIndex:
    """Index one stream file of any size, read front to back in ``chunk``-byte pieces."""
    return FileScan(path, chunk).run()


def scan_bytes(data: bytes, path: str | Path = "<bytes>") -> FileIndex:
    """Index a stream held in memory (tests, small pieces)."""
    index = FileIndex(Path(path), len(data))
    scanner = _Scanner(index)
    used = scanner.feed(data, len(data), 0, True)
    scanner.finish(data[used:], used)
    return index


class _Scanner:
    """Indexes a stream fed in consecutive pieces (whole messages; the caller keeps the rest)."""

    def __init__(self, index: FileIndex) -> None:
        self.index = index
        self.builder = _Builder()
        self.lost_at: int | None = None
        """File offset where the framing was lost, while looking for the next header."""
        self.lost_reason = ""

    def feed(self, data: bytes | bytearray, size: int, base: int, final: bool) -> int:
        """Index the messages in ``data[:size]`` (at file offset ``base``); return the number
        of bytes used. Bytes of an incomplete message at the end are left for the next call."""
        index = self.index
        builder = self.builder
        buf = np.frombuffer(data, dtype=np.uint8, count=size)
        pos = 0
        while True:
            if self.lost_at is not None:
                nxt = _resync(data, pos, size)
                if nxt < 0:
                    if not final:  # a header may start in the last bytes: keep them
                        return max(pos, size - (HEADER_SIZE - 1))
                    nxt = size
                index.framing_errors.append(
                    FramingError(self.lost_at, base + nxt - self.lost_at, self.lost_reason)
                )
                self.lost_at = None
                pos = nxt
            if pos + HEADER_SIZE > size:
                break
            fields = _HEADER.unpack_from(data, pos)
            magic, hlen, mtype, _r1, _r2, k, ll, m, n, tcount, length = fields
            if magic != MAGIC or hlen != HEADER_LENGTH_FIELD:
                self.lost_at = base + pos
                self.lost_reason = f"no message header at byte {base + pos}"
                pos += 1
                continue
            end = pos + HEADER_SIZE + length
            if end > size:
                break
            family = TimeFamily(k, ll, m, n)
            ticks = tcount if family == HEADER_FAMILY else Time(family, tcount).ticks
            if mtype == MessageType.SIGNAL_DATA:
                nsig = struct.unpack_from("<H", data, pos + HEADER_SIZE)[0]
                if nsig == 1 and family == HEADER_FAMILY:
                    taken = _take_run(buf, pos, HEADER_SIZE + length, builder, base)
                    if taken:
                        index.messages += taken
                        index.types[MessageType.SIGNAL_DATA] += taken
                        pos += taken * (HEADER_SIZE + length)
                        continue
                try:
                    _add_blocks(data, pos, end, nsig, ticks, builder, base)
                except StreamFormatError as exc:
                    index.framing_errors.append(FramingError(base + pos, end - pos, str(exc)))
            elif mtype == MessageType.DATA_QUALITY:
                msg = decode_content(mtype, family, tcount, bytes(data[pos + HEADER_SIZE : end]))
                for sid, validity in msg.qualities:  # type: ignore[attr-defined]
                    index.qualities.append((ticks, sid, validity, builder.n))
            elif mtype == MessageType.INTERPRETATION:
                msg = decode_content(mtype, family, tcount, bytes(data[pos + HEADER_SIZE : end]))
                assert isinstance(msg, Interpretation)
                _remember(index, msg, ticks, builder)
            index.messages += 1
            index.types[mtype] += 1
            pos = end
        return pos

    def finish(self, rest: bytes | bytearray, end: int) -> None:
        """End of the stream at file offset ``end`` + len(rest); ``rest`` is unusable."""
        index = self.index
        self.builder.fill(index)
        index.complete = True
        index.end = end
        index.truncated_bytes = len(rest)
        if len(rest) >= HEADER_SIZE:
            magic, _hlen, mtype, *_x, tcount, length = _HEADER.unpack_from(rest, 0)
            if magic == MAGIC:
                info = {"type": mtype, "length": HEADER_SIZE + length, "time": tcount}
                if mtype == MessageType.SIGNAL_DATA and len(rest) >= HEADER_SIZE + 8:
                    sid, count = struct.unpack_from("<HH", rest, HEADER_SIZE + 4)
                    info.update(signal_id=sid, values=count)
                index.truncated_message = info


def _take_run(buf: np.ndarray, pos: int, stride: int, builder: _Builder, base: int = 0) -> int:
    """Record the run of same-length one-signal SignalData messages starting at ``pos``.

    Returns how many messages were taken (0 if even the first does not qualify). Every header
    in the run is checked, so a run can only extend over bytes that frame exactly as it says.
    """
    size = len(buf)
    available = (size - pos) // stride
    if available < 1 or stride < _RUN_DTYPE.itemsize:
        return 0
    first = np.ndarray((1,), _RUN_DTYPE, buffer=buf, offset=pos)[0]
    length = int(first["length"])
    count = int(first["count"])
    if length != _PREFIX + 3 * count or count == 0:
        return 0
    taken = 0
    batch = 64
    while taken < available:
        k = min(batch, available - taken)
        recs = np.ndarray(
            (k,), _RUN_DTYPE, buffer=buf, offset=pos + taken * stride, strides=(stride,)
        )
        ok = (
            (recs["magic"] == MAGIC)
            & (recs["hlen"] == HEADER_LENGTH_FIELD)
            & (recs["type"] == MessageType.SIGNAL_DATA)
            & (recs["family"] == _STD_FAMILY)
            & (recs["length"] == length)
            & (recs["nsig"] == 1)
            & (recs["count"] == count)
        )
        good = k if ok.all() else int(np.argmin(ok))
        if good:
            starts = base + pos + (taken + np.arange(good, dtype=np.int64)) * stride
            builder.add_run(
                recs["sid"][:good],
                np.full(good, count, np.int64),
                starts + HEADER_SIZE + _PREFIX,
                recs["time"][:good],
            )
            taken += good
        if good < k:
            break
        batch = min(batch * 4, 1 << 16)
    return taken


def _add_blocks(
    mm: bytes | bytearray, pos: int, end: int, nsig: int, ticks: int, builder: _Builder, base: int
) -> None:
    q = pos + HEADER_SIZE + 4
    for _ in range(nsig):
        if q + 4 > end:
            raise StreamFormatError(f"SignalData at byte {pos} ends inside a block header")
        sid, count = struct.unpack_from("<HH", mm, q)
        q += 4
        if q + 3 * count > end:
            raise StreamFormatError(f"a signal block at byte {pos} runs past its message")
        if count:
            builder.add_one(sid, count, base + q, ticks)
        q += 3 * count


def _remember(index: FileIndex, msg: Interpretation, ticks: int, builder: _Builder) -> None:
    for interp in msg.signals:
        sid = interp.signal_id
        known = index.interpretations.get(sid)
        if known is None:
            index.interpretations[sid] = interp
            continue
        later = [c for c in index.changes if c.signal_id == sid]
        current = later[-1].interpretation if later else known
        updated = replace(current)
        updated.merge(interp, msg.present.get(sid, set()))
        if sid not in builder.seen:
            index.interpretations[sid] = updated
        elif _differs(current, updated):
            index.changes.append(InterpretationChange(ticks, sid, builder.n, updated))


def _differs(a: SignalInterpretation, b: SignalInterpretation) -> bool:
    return (a.scale_factor, a.offset, a.sample_rate, a.unit, a.data_type) != (
        b.scale_factor,
        b.offset,
        b.sample_rate,
        b.unit,
        b.data_type,
    )


def _resync(data: bytes | bytearray, start: int, size: int) -> int:
    """The next offset in ``data[start:size]`` holding a plausible message header, or -1."""
    pos = start
    key = MAGIC + struct.pack("<H", HEADER_LENGTH_FIELD)
    while True:
        pos = data.find(key, pos, size)
        if pos < 0 or pos + HEADER_SIZE > size:
            return -1
        _m, _h, mtype, r1, r2, k, _l, _mm, _n, _t, length = _HEADER.unpack_from(data, pos)
        if mtype in _KNOWN_TYPES and r1 == 0 and r2 == 0 and k == 32 and length <= MAX_CONTENT:
            return pos
        pos += 1
