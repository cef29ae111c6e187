"""Following the messages of one stream as it arrives, without copying what nobody looks at.

:class:`StreamTap` parses one 28-byte header per message (a tight path for SignalData nobody
watches), decodes Interpretation and DataQuality messages, which are rare, and the values of a
SignalData block only when asked (the live view's next block, a watcher's every block). It
tracks each signal's time coverage and gaps and, for monitoring, can index every message
(:data:`IndexEntry`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

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
        return missing_in(self.gaps, self.tps)

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


def missing_in(gaps: list[tuple[int, int, int]], tps: Callable[[int], int]) -> dict[int, int]:
    """Samples missing per signal in ``(signal, end of its last sample, time of the next)``
    gaps, ``tps(signal)`` being its ticks per sample (signals of unknown rate left out)."""
    missing: dict[int, int] = {}
    for sid, end, start in gaps:
        step = tps(sid)
        if step:
            missing[sid] = missing.get(sid, 0) + (start - end) // step
    return missing
