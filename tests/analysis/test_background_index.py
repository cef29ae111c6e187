"""Reading while the index pass still runs (``Capture.open(..., background=True)``).

The index is read in small chunks here so that every capture goes through many partial
indexes: each window waits for the files to be indexed past its end, and the result must equal,
window for window and sample for sample, what a read after the complete index gives.
"""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.analysis.helpers import RATE, two_modules
from webapp.analysis import index as index_module
from webapp.analysis import indexing, reader, window_reads
from webapp.analysis.capture_errors import StreamingReadError
from webapp.analysis.reader import Capture
from webapp.analysis.synthetic import write_capture
from webapp.cli import main
from webapp.openapi.stream import (
    SignalInterpretation,
    encode_interpretation,
    encode_signal_data,
    ticks_per_sample,
)

TPS = ticks_per_sample(RATE)


@pytest.fixture(autouse=True)
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Index in 16 KiB steps with two threads (as on a machine with cores to spare)."""
    monkeypatch.setattr(reader, "SCAN_CHUNK", 16 << 10)
    monkeypatch.setattr(index_module, "FIRST_READ", 4 << 10)
    monkeypatch.setattr(indexing, "MIN_PROGRESS", 16 << 10)
    monkeypatch.setattr(reader, "scan_workers", lambda: 2)
    monkeypatch.setattr(window_reads, "decode_workers", lambda: 2)


def windows(cap: Capture, **kw: Any) -> list[tuple[int, int, dict[str, tuple[int, np.ndarray]]]]:
    return [(w.start_ticks, w.end_ticks, w.parts) for w in cap.iter_windows(**kw)]


def assert_same(a: list[Any], b: list[Any]) -> None:
    assert [(w[0], w[1]) for w in a] == [(w[0], w[1]) for w in b]
    for (_s, _e, pa), (_s2, _e2, pb) in zip(a, b, strict=True):
        assert pa.keys() == pb.keys()
        for key in pa:
            assert pa[key][0] == pb[key][0], key
            np.testing.assert_array_equal(pa[key][1], pb[key][1])


def describe(cap: Capture) -> dict[str, Any]:
    return {
        "problems": [p.to_dict() for p in cap.problems],
        "channels": [
            (c.key, c.start_ticks, c.length, c.present, len(c.gaps), len(c.quality), c.blocks)
            for c in cap.channels
        ],
        "modules": {n: m.channels for n, m in cap.modules.items()},
        "files": [(f.path.name, f.index.end, f.index.truncated_bytes) for f in cap.files],
    }


@pytest.mark.parametrize("fixture", ["clean_capture", "faulty_capture"])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"trim": True},
        {"keys": ["m2-ch3", "m1-ch1"]},
        {"chunk": 1000, "trim": True},
        {"start_offset": 3000, "end_offset": 20000},
    ],
    ids=["all", "trim", "two-keys", "small-windows", "time-limits"],
)
def test_windows_equal_those_of_a_complete_index(
    request: pytest.FixtureRequest, fixture: str, kw: dict[str, Any]
) -> None:
    folder: Path = request.getfixturevalue(fixture)
    kw = {"chunk": 4096, **kw}
    with Capture.open(folder) as full:
        start = full.span()[0]
        if "start_offset" in kw:
            kw["start_ticks"] = start + kw.pop("start_offset") * TPS
            kw["end_ticks"] = start + kw.pop("end_offset") * TPS
        expected = windows(full, **kw)
        described = describe(full)
    with Capture.open(folder, background=True) as cap:
        assert not cap.indexed  # the index pass is still running: the read overlaps it
        got = windows(cap, **kw)
        # A read to the end has seen the whole index; one that stops early need not have.
        assert cap.indexed or "end_ticks" in kw
        assert describe(cap) == described
    assert len(expected) > 3
    assert_same(got, expected)


def test_multi_socket_capture(tmp_path: Path) -> None:
    write_capture(tmp_path, two_modules(), seconds=0.5, sample_rate=RATE, multi_socket=True)
    with Capture.open(tmp_path) as full:
        expected = windows(full, chunk=2048)
    with Capture.open(tmp_path, background=True) as cap:
        assert_same(windows(cap, chunk=2048), expected)


def test_the_pass_stays_close_to_the_reader_without_deadlock(
    clean_capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lead smaller than a window: the pass waits for the reader, then is let go on."""
    monkeypatch.setattr(indexing, "LEAD_BYTES", 1)
    with Capture.open(clean_capture) as full:
        expected = windows(full, chunk=8192)
    with Capture.open(clean_capture, background=True) as cap:
        assert cap._index is not None and cap._index.lead == 1
        assert_same(windows(cap, chunk=8192), expected)


def test_anything_else_first_waits_for_the_whole_index(faulty_capture: Path) -> None:
    with Capture.open(faulty_capture) as full:
        described = describe(full)
        values = full.read("m1-ch2")
    with Capture.open(faulty_capture, background=True) as cap:
        np.testing.assert_array_equal(cap.read("m1-ch2"), values)
        assert cap.indexed
        assert describe(cap) == described


def test_without_threads_background_makes_no_difference(
    faulty_capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "scan_workers", lambda: 1)
    with Capture.open(faulty_capture) as full:
        expected = windows(full)
    with Capture.open(faulty_capture, background=True) as cap:
        assert cap.indexed
        assert_same(windows(cap), expected)


def _one_signal_file(path: Path, times: list[int], late_signal_at: int | None = None) -> None:
    parts = [encode_interpretation(0, SignalInterpretation(1, 2.0**23, sample_rate=RATE))]
    for i, t in enumerate(times):
        if i == late_signal_at:
            parts.append(
                encode_interpretation(t, SignalInterpretation(2, 2.0**23, sample_rate=RATE))
            )
        parts.append(encode_signal_data(t, 1, np.full(256, i % 1000)))
        if late_signal_at is not None and i >= late_signal_at:
            parts.append(encode_signal_data(t, 2, np.full(256, 7)))
    path.write_bytes(b"".join(parts))


def test_blocks_going_back_after_windows_were_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "LEAD_BYTES", 32 << 10)  # the pass only just ahead of the read
    times = [i * 256 * TPS for i in range(400)] + [5 * 256 * TPS]
    path = tmp_path / "back.1.stream"
    _one_signal_file(path, times)
    with Capture.open(path) as full:  # the complete index reads it (the repeat overwrites)
        assert full.channel("m1-ch1").overlap == 256
    with (
        Capture.open(path, background=True) as cap,
        pytest.raises(StreamingReadError, match="go back in time"),
    ):
        windows(cap, chunk=1024)


def test_a_signal_that_starts_late_in_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "LEAD_BYTES", 32 << 10)
    path = tmp_path / "late.1.stream"
    _one_signal_file(path, [i * 256 * TPS for i in range(400)], late_signal_at=300)
    with (
        Capture.open(path, background=True) as cap,
        pytest.raises(StreamingReadError, match="m1-ch2 only start later"),
    ):
        windows(cap, chunk=1024)
    with Capture.open(path, background=True) as cap:  # asked for by name: no contradiction
        got = windows(cap, chunk=1024, keys=["m1-ch1"])
    with Capture.open(path) as full:
        assert_same(got, windows(full, chunk=1024, keys=["m1-ch1"]))
        late = windows(full, chunk=1024, keys=["m1-ch2"])
    with Capture.open(path, background=True) as cap:  # one not yet indexed when asked for
        assert "m1-ch2" not in cap._by_key
        assert_same(windows(cap, chunk=1024, keys=["m1-ch2"]), late)


def test_a_read_error_in_the_pass_reaches_the_reader(
    clean_capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "LEAD_BYTES", 32 << 10)
    steps = {"n": 0}
    real = index_module.FileScan.step

    def failing(self: index_module.FileScan) -> bool:
        steps["n"] += 1
        if steps["n"] > 12:
            raise OSError("disk gone")
        return real(self)

    monkeypatch.setattr(index_module.FileScan, "step", failing)
    delivered = []
    with (
        pytest.raises(OSError, match="disk gone"),
        Capture.open(clean_capture, background=True) as cap,
    ):
        for window in cap.iter_windows(chunk=1024):
            delivered.append(window)
    assert delivered  # it failed mid-read, where the pass ran into the error


def test_closing_stops_the_pass(clean_capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexing, "LEAD_BYTES", 1)  # keeps the pass waiting for the reader
    cap = Capture.open(clean_capture, background=True)
    assert any(t.name.startswith("index-") for t in threading.enumerate())
    cap.close()
    assert not any(t.name.startswith("index-") for t in threading.enumerate())


def test_inspect_levels_reads_a_damaged_capture_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``inspect --levels`` reads while indexing; on a contradiction it reads once more."""
    monkeypatch.setattr(indexing, "LEAD_BYTES", 32 << 10)
    opened: list[bool] = []
    real_open = Capture.open.__func__  # type: ignore[attr-defined]

    def spy(cls: type[Capture], source: Any, background: bool = False) -> Capture:
        opened.append(background)
        return real_open(cls, source, background)

    monkeypatch.setattr(Capture, "open", classmethod(spy))
    path = tmp_path / "back.1.stream"
    _one_signal_file(path, [i * 256 * TPS for i in range(400)] + [5 * 256 * TPS])
    assert main(["inspect", str(path), "--levels", "--json", "--no-checksums"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert opened == [True, False]
    [channel] = report["channels"]
    assert channel["level"]["peak"] == 400  # the last block (value 400) overwrote block 5
    assert any("go back" in p["message"] or "overlap" in p["message"] for p in report["problems"])


def test_a_capture_dropped_unclosed_stops_its_pass(
    clean_capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "LEAD_BYTES", 1)  # the pass waits for a reader that is gone
    cap = Capture.open(clean_capture, background=True)
    threads = [t for t in threading.enumerate() if t.name.startswith("index-")]
    assert threads
    del cap
    gc.collect()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()


def test_files_are_shared_out_between_the_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in lockstep a thread that is done with its file takes on the next one nobody has
    (a fixed share would leave one thread with both of the large files)."""
    big, small, other = tmp_path / "a.1.stream", tmp_path / "b.2.stream", tmp_path / "c.3.stream"
    _one_signal_file(big, [i * 256 * TPS for i in range(8000)])
    _one_signal_file(small, [i * 256 * TPS for i in range(10)])
    _one_signal_file(other, [i * 256 * TPS for i in range(2000)])
    readers: dict[str, set[str]] = {}
    real = index_module.FileScan.step
    other_started = threading.Event()

    def step(self: index_module.FileScan) -> bool:
        readers.setdefault(self.path.name, set()).add(threading.current_thread().name)
        if self.path.name == big.name:
            # Whatever the scheduler does, the big file's thread is still busy when the last
            # file is handed out (on a loaded machine it might otherwise finish first).
            other_started.wait(10)
        elif self.path.name == other.name:
            other_started.set()
        return real(self)

    monkeypatch.setattr(index_module.FileScan, "step", step)
    with Capture.open([big, small, other]) as cap:
        assert [f.index.blocks for f in cap.files] == [8000, 10, 2000]
    assert readers["a.1.stream"] != readers["c.3.stream"], readers
    assert all(len(names) == 1 for names in readers.values())
