"""Windows cut from a running stream: sample-exact edges, valid files, segments without a gap
or an overlap, the data quality at the window start, and a ring that stays bounded.

The stream is synthetic: every sample's value is its own sample number (per signal), so a
file's values say exactly which samples it holds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tests.streamcheck import check_file
from webapp.capture.receiver import StreamTap
from webapp.capture.settings import SettingsError
from webapp.capture.trigger import LevelDetector, RecordPlan, TriggerSpec
from webapp.capture.window import StreamRing, WindowWriter
from webapp.openapi.stream import (
    SignalData,
    SignalInterpretation,
    encode_data_quality,
    encode_interpretation,
    encode_signal_data,
    read_messages,
)

RATE = 65536
TPS = (1 << 32) // RATE
BLOCK = 64
T0 = 1_800_000_000 << 32  # a PTP time, in ticks


def synthetic_stream(blocks: int, signals: int = 2, clipped_at: int | None = None) -> bytes:
    parts = [
        encode_interpretation(
            T0, SignalInterpretation(s, scale_factor=1.0, sample_rate=RATE, unit="V")
        )
        for s in range(1, signals + 1)
    ]
    for b in range(blocks):
        t = T0 + b * BLOCK * TPS
        if clipped_at is not None and b == clipped_at:
            parts.append(encode_data_quality(t, [(1, 0x02)]))
        for s in range(1, signals + 1):
            values = np.arange(b * BLOCK, (b + 1) * BLOCK, dtype=np.int64) + 1000 * s
            parts.append(encode_signal_data(t, s, values))
    return b"".join(parts)


class Collect:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "wb")  # noqa: SIM115

    def write(self, data: memoryview) -> None:
        self.f.write(data)


def feed(ring: StreamRing, data: bytes, seed: int = 1) -> None:
    rnd = random.Random(seed)
    pos = 0
    while pos < len(data):
        n = rnd.randint(1, 5000)
        chunk = data[pos : pos + n]
        ring.append(chunk)
        ring.tap.feed(chunk)
        ring.after_feed()
        pos += n


def samples(path: Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for m in read_messages(path):
        if isinstance(m, SignalData):
            for blk in m.blocks:
                out.setdefault(blk.signal_id, []).extend(int(v) for v in blk.values)
    return out


def test_segments_are_sample_exact_without_gap_or_overlap(tmp_path: Path) -> None:
    tap = StreamTap()
    ring = StreamRing(tap, retention_ticks=1 << 32)
    edges = [T0 + 1000 * TPS, T0 + 1777 * TPS, T0 + 2560 * TPS, T0 + 4001 * TPS]
    sinks: list[Collect] = []

    def opener(i: int):
        def open_sink() -> Collect:
            sinks.append(Collect(tmp_path / f"seg{i}.stream"))
            return sinks[-1]

        return open_sink

    writer = WindowWriter(ring, opener(0), edges[0], edges[1])
    ring.add(writer)
    data = synthetic_stream(blocks=80)
    # Feed in pieces; each segment follows the previous one as soon as it is done.
    rnd = random.Random(3)
    pos, k = 0, 0
    while pos < len(data):
        n = rnd.randint(1, 5000)
        chunk = data[pos : pos + n]
        ring.append(chunk)
        tap.feed(chunk)
        ring.after_feed()
        pos += n
        if writer.done and k + 2 < len(edges):
            k += 1
            follower = WindowWriter(ring, opener(k), edges[k], edges[k + 1])
            ring.add(follower, replacing=writer)
            writer = follower
    assert writer.done and k == 2
    for s in sinks:
        s.f.close()
    for i, s in enumerate(sinks):
        report = check_file(s.path)  # strict, HBK's grammar
        assert set(report.signals) == {1, 2}
        got = samples(s.path)
        first, last = (edges[i] - T0) // TPS, (edges[i + 1] - T0) // TPS
        for sid in (1, 2):
            assert got[sid] == list(range(first + 1000 * sid, last + 1000 * sid)), (i, sid)
            assert report.signals[sid].first_time == edges[i]


def test_window_in_the_past_and_data_quality_at_its_start(tmp_path: Path) -> None:
    tap = StreamTap()
    ring = StreamRing(tap, retention_ticks=1 << 32)
    feed(ring, synthetic_stream(blocks=40, clipped_at=10))
    start, end = T0 + 700 * TPS, T0 + 900 * TPS  # inside block 10 (clipped from 640 on)
    sink = Collect(tmp_path / "w.stream")
    writer = WindowWriter(ring, lambda: sink, start, end)
    ring.add(writer)
    sink.f.close()
    assert writer.done
    report = check_file(sink.path)
    assert report.signals[1].qualities[0] == (start, 0x02)  # the Clipped state holds at 700
    assert samples(sink.path)[1] == list(range(1700, 1900))


def test_ring_trims_to_its_retention(tmp_path: Path) -> None:
    tap = StreamTap()
    retention = 1000 * TPS
    ring = StreamRing(tap, retention_ticks=retention)
    feed(ring, synthetic_stream(blocks=2000, signals=1) * 1)
    held = ring.held_ticks()
    assert retention <= held <= retention + (1 << 20) // 3 * TPS  # trimmed every MiB
    # What trimming folded away still holds: a window at the oldest data gets Interpretations.
    oldest = ring.oldest_ticks()
    assert oldest is not None
    sink = Collect(tmp_path / "late.stream")
    ring.add(WindowWriter(ring, lambda: sink, oldest, oldest + BLOCK * TPS))
    sink.f.close()
    assert check_file(sink.path).signals[1].samples == BLOCK


def test_level_detector_finds_the_first_sample_through_the_level() -> None:
    spec = TriggerSpec.parse("1:2>0.5")
    det = LevelDetector(spec, scale=2.0, offset=0.0, tps=TPS)  # raw 2^23 = 2.0 V
    raw = np.zeros(100, dtype=np.int32)
    raw[37:] = int(0.3 * (1 << 23))  # 0.6 V from sample 37
    assert det.feed(T0, np.zeros(100, dtype=np.int32)) is None
    assert det.feed(T0 + 100 * TPS, raw) == T0 + 137 * TPS
    falling = LevelDetector(TriggerSpec.parse("1:2<0.5"), 2.0, 0.0, TPS)
    falling.feed(T0, raw)
    assert falling.feed(T0 + 100 * TPS, np.zeros(100, dtype=np.int32)) == T0 + 100 * TPS


@pytest.mark.parametrize(
    "text,message",
    [
        ("1:2", "MODULE:CHANNEL>LEVEL"),
        ("0:2>1", "module numbers start at 1"),
        ("1:0>1", "channel numbers start at 1"),
    ],
)
def test_trigger_syntax_errors_say_how_to_write_one(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        TriggerSpec.parse(text)


def test_plan_refuses_what_cannot_be_recorded() -> None:
    with pytest.raises(SettingsError, match="length after the trigger"):
        RecordPlan(mode="trigger", trigger=TriggerSpec.parse("1:1>1")).validate()
    with pytest.raises(SettingsError, match="at most"):
        RecordPlan(mode="trigger", pre_trigger_s=30, duration_s=1).check_memory(100e6)


def test_a_segment_edge_on_a_block_boundary_chains_without_a_gap(tmp_path: Path) -> None:
    """The previous window is done the moment its last block arrives, before any later one:
    the next window starts right there."""
    tap = StreamTap()
    ring = StreamRing(tap, retention_ticks=1 << 32)
    edges = [T0 + 2 * BLOCK * TPS, T0 + 5 * BLOCK * TPS, T0 + 9 * BLOCK * TPS]
    sinks = [Collect(tmp_path / "a.stream"), Collect(tmp_path / "b.stream")]
    first = WindowWriter(ring, lambda: sinks[0], edges[0], edges[1])
    ring.add(first)
    data = synthetic_stream(blocks=12, signals=1)
    second = None
    pos = 0
    message = len(encode_signal_data(T0, 1, np.zeros(BLOCK, dtype=np.int64)))
    header = len(data) - 12 * message
    for size in [header] + [message] * 12:  # one message at a time
        chunk = data[pos : pos + size]
        pos += size
        ring.append(chunk)
        tap.feed(chunk)
        ring.after_feed()
        if first.done and second is None:
            second = WindowWriter(ring, lambda: sinks[1], edges[1], edges[2])
            ring.add(second, replacing=first)
    assert second is not None and second.done
    for s in sinks:
        s.f.close()
    assert samples(sinks[0].path)[1] == list(range(1000 + 2 * BLOCK, 1000 + 5 * BLOCK))
    assert samples(sinks[1].path)[1] == list(range(1000 + 5 * BLOCK, 1000 + 9 * BLOCK))
