"""A strict, independent checker for stored Open API streams (``*.stream`` files).

It reads the bytes with the Kaitai runtime the way HBK's grammar ``openapi_message.ksy`` does
(as restated in stream-format.md: header, SignalData with s2 signal id and value count,
DataQuality without a reserved word, Interpretation descriptors padded to 4 bytes inside their
message) and is stricter than the grammar wherever stream-format.md says what a module sends:
header length 20, zero reserved fields, time family (32,0,0,0), content lengths that match
their contents exactly, descriptor value lengths that match their values, zero padding, no
truncated final message. On top it checks the stream-level rules: every signal is interpreted
before any other message (later Interpretations may only repeat known signals, §9.1), SignalData blocks of a signal follow each other without gaps unless
an Overrun was flagged. It does not use the project's own decoder.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from kaitaistruct import KaitaiStream

MESSAGE_TYPES = {1: "signal_data", 2: "data_quality", 8: "interpretation", 11: "aux_sequence_data"}
DESCRIPTOR_TYPES = {
    1: "data_type",
    2: "scale_factor",
    3: "offset",
    4: "period_time",
    5: "unit",
    6: "vector_length",
    7: "channel_type",
}
OVERRUN = 0x10


class StreamCheckError(AssertionError):
    pass


@dataclass
class SignalReport:
    signal_id: int
    descriptors: dict[str, object] = field(default_factory=dict)
    samples: int = 0
    blocks: int = 0
    first_time: int | None = None
    end_time: int | None = None  # time just after the last sample
    block_sizes: set[int] = field(default_factory=set)
    qualities: list[tuple[int, int]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (expected, found) header times
    raw: list[bytes] = field(default_factory=list)

    @property
    def period_ticks(self) -> int:
        k, l, m, n, count = self.descriptors["period_time"]  # type: ignore[misc]  # noqa: E741
        divisor = (2**k) * (3**l) * (5**m) * (7**n)
        ticks, rem = divmod(count << 32, divisor)
        if rem:
            raise StreamCheckError(f"signal {self.signal_id}: period is not a whole tick count")
        return ticks

    @property
    def sample_rate(self) -> float:
        return (1 << 32) / self.period_ticks

    def values(self) -> np.ndarray:
        """All samples as int32 (needs ``keep_values``)."""
        data = np.frombuffer(b"".join(self.raw), dtype=np.uint8).reshape(-1, 3)
        wide = np.zeros((len(data), 4), dtype=np.uint8)
        wide[:, 1:] = data
        return wide.view("<i4").reshape(-1) >> 8


@dataclass
class StreamReport:
    messages: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    signals: dict[int, SignalReport] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # message type names, first 64 only

    def signal(self, signal_id: int) -> SignalReport:
        return self.signals[signal_id]


def _fail(offset: int, text: str) -> StreamCheckError:
    return StreamCheckError(f"byte {offset}: {text}")


def _read_header(ks: KaitaiStream, offset: int) -> tuple[int, int, int]:
    magic = ks.read_bytes(2)
    if magic != b"BK":
        raise _fail(offset, f"magic {magic!r}, expected b'BK'")
    header_length = ks.read_u2le()
    message_type = ks.read_u2le()
    reserved1 = ks.read_u2le()
    reserved2 = ks.read_u4le()
    family = (ks.read_u1(), ks.read_u1(), ks.read_u1(), ks.read_u1())
    time_count = ks.read_u8le()
    message_length = ks.read_u4le()
    if header_length != 20:
        raise _fail(offset, f"header length {header_length}, expected 20")
    if message_type not in MESSAGE_TYPES:
        raise _fail(offset, f"message type {message_type} is not in the grammar's enum")
    if reserved1 or reserved2:
        raise _fail(offset, "reserved header fields must be zero")
    if family != (32, 0, 0, 0):
        raise _fail(offset, f"header time family {family}, expected (32,0,0,0)")
    return message_type, time_count, message_length


def _expect_end(ks: KaitaiStream, offset: int, what: str) -> None:
    if not ks.is_eof():
        raise _fail(offset, f"{what}: {ks.size() - ks.pos()} bytes left over in the message")


def _interpretation(content: bytes, offset: int) -> list[tuple[int, str, object]]:
    ks = KaitaiStream(io.BytesIO(content))
    out = []
    while not ks.is_eof():
        at = ks.pos()
        signal_id = ks.read_u2le()
        dtype = ks.read_u2le()
        reserved = ks.read_u2le()
        value_length = ks.read_u2le()
        if dtype not in DESCRIPTOR_TYPES:
            raise _fail(offset + at, f"descriptor type {dtype} is not in the grammar's enum")
        if reserved:
            raise _fail(offset + at, "descriptor reserved field must be zero")
        name = DESCRIPTOR_TYPES[dtype]
        start = ks.pos()
        value: object
        if name in ("data_type", "vector_length", "channel_type"):
            value = ks.read_u2le()
        elif name in ("scale_factor", "offset"):
            value = ks.read_f8le()
        elif name == "period_time":
            value = (ks.read_u1(), ks.read_u1(), ks.read_u1(), ks.read_u1(), ks.read_u8le())
        else:
            count = ks.read_u2le()
            value = ks.read_bytes(count).decode("utf-8")
        if ks.pos() - start != value_length:
            raise _fail(
                offset + at,
                f"{name}: value length field {value_length}, value occupies {ks.pos() - start}",
            )
        padding = ks.read_bytes((4 - (ks.pos() % 4)) & 3)
        if any(padding):
            raise _fail(offset + at, f"{name}: padding bytes must be zero")
        out.append((signal_id, name, value))
    return out


def check_stream(data: bytes, keep_values: bool = False) -> StreamReport:
    """Parse a whole stream strictly; raise StreamCheckError on the first violation."""
    report = StreamReport()
    ks = KaitaiStream(io.BytesIO(data))
    data_seen = False
    overrun_flagged: set[int] = set()
    while not ks.is_eof():
        offset = ks.pos()
        if ks.size() - offset < 28:
            raise _fail(offset, f"truncated header ({ks.size() - offset} bytes)")
        mtype, time_count, length = _read_header(ks, offset)
        if ks.size() - ks.pos() < length:
            raise _fail(offset, f"truncated message: {length} content bytes announced")
        content = ks.read_bytes(length)
        name = MESSAGE_TYPES[mtype]
        report.messages += 1
        report.by_type[name] = report.by_type.get(name, 0) + 1
        if len(report.order) < 64:
            report.order.append(name)
        sub = KaitaiStream(io.BytesIO(content))
        if name == "interpretation":
            for sid, dname, value in _interpretation(content, offset + 28):
                if data_seen and sid not in report.signals:
                    # Repeating a known signal's descriptors later is allowed (§9.1 item 3:
                    # a file continued after a dropped stream was connected again); a new
                    # signal after data is not.
                    raise _fail(offset, f"signal {sid} is interpreted after data messages")
                sig = report.signals.setdefault(sid, SignalReport(sid))
                sig.descriptors[dname] = value
        elif name == "signal_data":
            data_seen = True
            count = sub.read_u2le()
            if sub.read_u2le():
                raise _fail(offset, "SignalData reserved word must be zero")
            if count != 1:
                raise _fail(offset, f"{count} signals in one SignalData message (LAN-XI sends 1)")
            for _ in range(count):
                sid = sub.read_s2le()
                nvalues = sub.read_s2le()
                if nvalues <= 0:
                    raise _fail(offset, f"signal {sid}: {nvalues} values")
                raw = sub.read_bytes(3 * nvalues)
                sig = report.signals.get(sid)
                if sig is None or "period_time" not in sig.descriptors:
                    raise _fail(offset, f"SignalData for signal {sid} before its Interpretation")
                if sig.end_time is not None and time_count != sig.end_time:
                    if sid not in overrun_flagged:
                        raise _fail(
                            offset,
                            f"signal {sid}: block at {time_count}, expected {sig.end_time} "
                            "(gap without an Overrun flag)",
                        )
                    sig.gaps.append((sig.end_time, time_count))
                overrun_flagged.discard(sid)
                if sig.first_time is None:
                    sig.first_time = time_count
                sig.samples += nvalues
                sig.blocks += 1
                sig.block_sizes.add(nvalues)
                sig.end_time = time_count + nvalues * sig.period_ticks
                if keep_values:
                    sig.raw.append(raw)
            _expect_end(sub, offset, "SignalData")
        elif name == "data_quality":
            data_seen = True
            count = sub.read_u2le()
            if count == 0:
                raise _fail(offset, "DataQuality for no signal")
            for _ in range(count):
                sid = sub.read_u2le()
                flags = sub.read_u2le()
                sub.read_u2le()
                sig = report.signals.get(sid)
                if sig is None:
                    raise _fail(offset, f"DataQuality for signal {sid} before its Interpretation")
                sig.qualities.append((time_count, flags))
                if flags & OVERRUN:
                    overrun_flagged.add(sid)
            _expect_end(sub, offset, "DataQuality")
    for sig in report.signals.values():
        missing = {"data_type", "scale_factor", "period_time", "unit"} - set(sig.descriptors)
        if missing:
            raise StreamCheckError(f"signal {sig.signal_id}: no {', '.join(sorted(missing))}")
    return report


def check_file(path: str | Path, keep_values: bool = False) -> StreamReport:
    return check_stream(Path(path).read_bytes(), keep_values)


def tone_phase(
    values: np.ndarray, sample_rate: float, frequency: float, t0_seconds: float
) -> float:
    """Phase (radians, at absolute time 0 of the whole-second grid) of a tone in a signal whose
    first sample is at ``t0_seconds`` — equal across modules that sample the same tone in sync."""
    t = t0_seconds + np.arange(len(values)) / sample_rate
    ref = np.exp(-2j * np.pi * frequency * t)
    return float(np.angle(np.sum(values * ref)))
