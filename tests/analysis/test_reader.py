"""The capture reader against synthetic captures whose every sample is known."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analysis.helpers import RATE, two_modules
from webapp.analysis.capture_errors import CaptureError
from webapp.analysis.index import scan_bytes, scan_file
from webapp.analysis.reader import Capture
from webapp.analysis.synthetic import (
    SynthChannel,
    SynthModule,
    calibrator_channel,
    expected_values,
    module_messages,
    write_capture,
)
from webapp.openapi.stream import (
    HEADER_SIZE,
    MessageType,
    SignalInterpretation,
    Validity,
    encode_data_quality,
    encode_header,
    encode_int24,
    encode_interpretation,
    encode_signal_data,
    parse_header,
    ticks_per_sample,
)

TPS = ticks_per_sample(RATE)


def start_of(folder: Path) -> int:
    return json.loads((folder / "capture.json").read_text())["start_ticks"]


def test_every_sample_calibrated_and_mapped(clean_capture: Path) -> None:
    modules = two_modules()
    t0 = start_of(clean_capture)
    with Capture.open(clean_capture) as cap:
        assert [c.key for c in cap.channels] == ["m1-ch1", "m1-ch2", "m2-ch1", "m2-ch3"]
        # Signal IDs number enabled channels only: module 2's channel 3 is signal 2.
        m2c3 = cap.channel("m2-ch3")
        assert (m2c3.signal_id, m2c3.module, m2c3.channel) == (2, 2, 3)
        assert m2c3.range == "0.316 Vpeak"
        mic = cap.channel("m1-ch1")
        assert mic.unit == "Pa"
        assert mic.scale_factor == pytest.approx(10 * 1.188502 / 0.05)
        assert mic.transducer["type"]["number"] == "4189"
        arrays = cap.arrays()
        for ch in cap.channels:
            assert ch.start_ticks == t0
            assert ch.sample_rate == RATE
            module = modules[ch.module - 1]
            want = expected_values(module, ch.channel, t0, 8, RATE)
            assert np.array_equal(arrays[ch.key], want)
        assert cap.problems == []


def test_calibrator_reads_94_db_spl(clean_capture: Path) -> None:
    with Capture.open(clean_capture) as cap:
        pa = cap.arrays()["m1-ch1"]
    level = 20 * np.log10(np.sqrt(np.mean(pa**2)) / 20e-6)
    assert level == pytest.approx(94.0, abs=0.2)


def test_time_tone_has_the_same_phase_on_every_module(clean_capture: Path) -> None:
    with Capture.open(clean_capture) as cap:
        a = cap.arrays(trim=True)
        t = (cap.span(trim=True)[0] + np.arange(len(a["m1-ch2"])) * TPS) / 2**32
    x, y = a["m1-ch2"], a["m2-ch1"]
    assert np.array_equal(x, y)
    basis = np.exp(-2j * np.pi * 440 * (t - t[0]))
    lag = np.angle(np.dot(x, basis) / np.dot(y, basis)) / (2 * np.pi * 440) * RATE
    assert abs(lag) < 1.0


def test_gaps_overload_and_truncation(faulty_capture: Path) -> None:
    modules = two_modules(quality=[(2, 1, 0x02), (4, 1, 0)], dropped=[(5, 2)], truncate=1000)
    modules[1].first_block = 1
    modules[1].extra_blocks = 2
    t0 = start_of(faulty_capture)
    with Capture.open(faulty_capture) as cap:
        mic = cap.channel("m1-ch1")
        assert [(g.pos, g.missing) for g in mic.gaps] == [(5 * 4096, 2 * 4096)]
        assert [(q.pos, q.validity) for q in mic.quality] == [
            (2 * 4096, Validity.CLIPPED),
            (4 * 4096, 0),
            (7 * 4096, Validity.OVERRUN),
            (8 * 4096, 0),
        ]
        want = expected_values(modules[0], 1, t0, 12, RATE)
        assert np.array_equal(cap.read("m1-ch1"), want, equal_nan=True)
        # The cut message was module 1's last (signal 2, block 11): only it is lost.
        tone = cap.channel("m1-ch2")
        assert tone.length == 11 * 4096
        want = expected_values(modules[0], 2, t0, 12, RATE)[: 11 * 4096]
        assert np.array_equal(cap.read("m1-ch2"), want, equal_nan=True)
        late = cap.channel("m2-ch1")
        assert late.start_ticks == t0 + 4096 * TPS
        assert late.length == 13 * 4096
        assert any("incomplete SignalData message (signal 2" in p.message for p in cap.problems)
        assert cap.files[0].index.truncated_bytes == 12324 - 1000


def test_windows_cover_each_channel_exactly_once(faulty_capture: Path) -> None:
    with Capture.open(faulty_capture) as cap:
        full = cap.arrays(dtype=np.float32)
        for trim in (False, True):
            t0, t1 = cap.span(trim)
            got: dict[str, list[np.ndarray]] = {k: [] for k in full}
            nxt = {}
            for window in cap.iter_windows(chunk=5000, trim=trim, dtype=np.float32):
                assert window.end_ticks - window.start_ticks <= 5000 * TPS
                for key, (i0, values) in window.parts.items():
                    assert nxt.setdefault(key, i0) == i0
                    nxt[key] = i0 + len(values)
                    got[key].append(values)
            for key, parts in got.items():
                lo, hi = cap.range_of(key, t0, t1)
                assert np.array_equal(np.concatenate(parts), full[key][lo:hi], equal_nan=True)
        trimmed = cap.arrays(trim=True)
        assert len({len(v) for v in trimmed.values()}) == 1
        assert len(trimmed["m1-ch1"]) == 10 * 4096  # blocks 1..10 are common to all


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(-5000, 60000), size=st.integers(0, 30000))
def test_any_window_equals_the_slice(faulty_capture: Path, start: int, size: int) -> None:
    with Capture.open(faulty_capture) as cap:
        full = cap.read("m1-ch1")
        got = cap.read("m1-ch1", start, start + size)
    padded = np.concatenate([np.full(5000, np.nan), full, np.full(40000, np.nan)])
    assert np.array_equal(got, padded[start + 5000 : start + 5000 + size], equal_nan=True)


def _small_stream() -> tuple[bytes, list[tuple[int, int]]]:
    """Two signals, 64-value blocks, a quality change: bytes, (type, end) of every message."""
    module = SynthModule(
        1,
        [SynthChannel(1, "noise"), SynthChannel(2, "tone", frequency=1000)],
        quality=[(3, 2, 0x02)],
    )
    data = b"".join(module_messages(module, 1 << 63, 12, 8192, block_values=64))
    ends, pos = [], 0
    while pos < len(data):
        mtype, _family, _time, length = parse_header(data, pos)
        pos += HEADER_SIZE + length
        ends.append((mtype, pos))
    return data, ends


_STREAM, _ENDS = _small_stream()


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, len(_STREAM)))
def test_a_file_cut_anywhere_reads_to_its_last_complete_message(cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        full_path = Path(tmp) / "x.1.stream"
        full_path.write_bytes(_STREAM)
        cut_path = Path(tmp) / "y.1.stream"
        cut_path.write_bytes(_STREAM[:cut])
        complete = max([0] + [e for _t, e in _ENDS if e <= cut])
        with Capture.open(full_path) as full, Capture.open(cut_path) as part:
            assert part.files[0].index.end == complete
            assert part.files[0].index.truncated_bytes == cut - complete
            reported = [p for p in part.problems if "incomplete" in p.message]
            assert len(reported) == (1 if cut > complete else 0)
            for ch in part.channels:
                got = part.read(ch.key)
                assert np.array_equal(got, full.read(ch.key)[: len(got)])
            blocks = sum(1 for t, e in _ENDS if e <= cut and t == MessageType.SIGNAL_DATA)
            assert sum(ch.blocks for ch in part.channels) == blocks


def test_lost_framing_is_found_again_and_reported(tmp_path: Path) -> None:
    interp = encode_interpretation(0, SignalInterpretation(1, 1.0, sample_rate=RATE, unit="V"))
    blocks = [encode_signal_data(i * 64 * TPS, 1, np.full(64, i + 1)) for i in range(6)]
    garbage = b"\x00BK\x14\x00junk" * 3
    path = tmp_path / "g.1.stream"
    path.write_bytes(interp + b"".join(blocks[:3]) + garbage + b"".join(blocks[3:]))
    with Capture.open(path) as cap:
        ch = cap.channel("m1-ch1")
        values = cap.read(ch.key) * 2**23
        assert np.array_equal(values, np.repeat(np.arange(1, 7), 64))
        framing = [p for p in cap.problems if "framing lost" in p.message]
        assert len(framing) == 1 and f"{len(garbage)} bytes skipped" in framing[0].message


def test_multi_socket_files_map_to_their_channels(tmp_path: Path) -> None:
    modules = [SynthModule(1, [SynthChannel(2, "tone", frequency=100), calibrator_channel(4)])]
    write_capture(tmp_path, modules, seconds=0.1, sample_rate=RATE, multi_socket=True)
    with Capture.open(tmp_path) as cap:
        assert [c.key for c in cap.channels] == ["m1-ch2", "m1-ch4"]
        assert cap.channel("m1-ch4").unit == "Pa"
        assert [f.path.name for f in cap.files] == [
            "synthetic.1.ch2.stream",
            "synthetic.1.ch4.stream",
        ]


def test_loose_files_without_capture_json(tmp_path: Path) -> None:
    write_capture(tmp_path, two_modules(), seconds=0.1, sample_rate=RATE, write_json=False)
    with Capture.open(sorted(tmp_path.glob("*.stream"))) as cap:
        # Without the signal table, signal IDs stand for channel numbers.
        assert [c.key for c in cap.channels] == ["m1-ch1", "m1-ch2", "m2-ch1", "m2-ch2"]
        assert cap.channel("m1-ch1").unit == "Pa"
    with Capture.open(tmp_path) as cap:
        assert any("capture.json" in p.where for p in cap.problems)


def test_nothing_to_read(tmp_path: Path) -> None:
    with pytest.raises(CaptureError):
        Capture.open(tmp_path)
    with pytest.raises(CaptureError):
        Capture.open(tmp_path / "missing")


def test_blocks_off_the_grid_and_time_going_back(tmp_path: Path) -> None:
    interp = encode_interpretation(0, SignalInterpretation(1, 2.0**23, sample_rate=RATE))
    times = [0, 64 * TPS, 128 * TPS + 7, 64 * TPS]  # third off-grid, fourth repeats the second
    msgs = [encode_signal_data(t, 1, np.full(64, i)) for i, t in enumerate(times)]
    path = tmp_path / "o.1.stream"
    path.write_bytes(interp + b"".join(msgs))
    with Capture.open(path) as cap:
        ch = cap.channel("m1-ch1")
        assert ch.misaligned == 1
        assert ch.overlap == 64
        assert np.array_equal(cap.read(ch.key), np.repeat([0, 3, 2], 64))


def test_several_signals_in_one_message_and_scale_change(tmp_path: Path) -> None:
    """Not what LAN-XI sends, but what the format allows: both must read right."""

    def interp(scale: float) -> bytes:
        return b"".join(
            encode_interpretation(0, SignalInterpretation(s, scale, sample_rate=RATE))
            for s in (1, 2)
        )

    def two_blocks(t: int, a: int, b: int) -> bytes:
        body = struct.pack("<HH", 2, 0)
        for sid, v in ((1, a), (2, b)):
            body += struct.pack("<HH", sid, 8) + encode_int24(np.full(8, v))
        return encode_header(MessageType.SIGNAL_DATA, t, len(body)) + body

    data = interp(2.0**23) + two_blocks(0, 1, 2) + two_blocks(8 * TPS, 3, 4)
    data += interp(2.0**24) + two_blocks(16 * TPS, 5, 6)
    data += encode_data_quality(24 * TPS, [(1, 0x08), (2, 0)]) + two_blocks(24 * TPS, 7, 8)
    path = tmp_path / "m.1.stream"
    path.write_bytes(data)
    with Capture.open(path) as cap:
        assert np.array_equal(cap.read("m1-ch1"), np.repeat([1, 3, 10, 14], 8))
        assert np.array_equal(cap.read("m1-ch2"), np.repeat([2, 4, 12, 16], 8))
        assert [(q.pos, q.validity) for q in cap.channel("m1-ch1").quality] == [(24, 8)]
        assert any("changed mid-stream" in p.message for p in cap.problems)


@pytest.mark.parametrize("chunk", [40, 1000, 12324, 50000, 1 << 23])
def test_index_does_not_depend_on_read_size(
    faulty_capture: Path, tmp_path: Path, chunk: int
) -> None:
    """Messages across read boundaries, messages larger than the buffer, framing lost across a
    boundary and a cut final message all index the same whatever the piece size."""
    data = (faulty_capture / "faulty.1.stream").read_bytes()
    garbage = b"\x00BK\x14\x00junk" * 700  # lost framing longer than small read sizes
    mixed = data[:50000] + garbage + data[50000 + 12324 - 50000 % 12324 :]
    for name, content in (("cut.1.stream", data), ("mixed.1.stream", mixed)):
        path = tmp_path / name
        path.write_bytes(content)
        a = scan_file(path, chunk=chunk)
        b = scan_bytes(content)
        assert (a.messages, a.end, a.truncated_bytes) == (b.messages, b.end, b.truncated_bytes)
        assert a.truncated_message == b.truncated_message
        assert [(e.offset, e.skipped) for e in a.framing_errors] == [
            (e.offset, e.skipped) for e in b.framing_errors
        ]
        assert a.qualities == b.qualities
        for field in ("sid", "count", "voff", "time"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
