"""Capture folders: ids, the timeline filter, capture.json written atomically, history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from webapp.capture import events as ev
from webapp.capture.store import (
    CaptureRecord,
    FileRecord,
    ModuleRecord,
    list_captures,
    new_capture_id,
    read_capture,
    timeline_entry,
)


def record(folder: Path, capture_id: str = "c1") -> CaptureRecord:
    return CaptureRecord(
        folder=folder,
        id=capture_id,
        name="Run 1",
        created=1_700_000_000.25,
        requested_duration_s=3.0,
        ptp_domain=42,
        master="127.0.2.31",
        bandwidth="51.2 kHz",
        sample_rate=131072,
        streaming="single-socket",
        modules=[
            ModuleRecord(
                1,
                "127.0.2.31",
                "master",
                files=[FileRecord("Run 1.1.stream", [1, 2], 10, "ab")],
            )
        ],
    )


def test_capture_ids_are_safe_and_unique(tmp_path: Path):
    first = new_capture_id("My run / 2", tmp_path, now=1_763_936_130)
    assert first == "20251123-221530-My_run_2"
    (tmp_path / "captures" / first).mkdir(parents=True)
    assert new_capture_id("My run / 2", tmp_path, now=1_763_936_130) == first + "-2"


def test_timeline_leaves_out_live_data_and_repeated_ptp_progress():
    seen: dict[str, str] = {}
    assert timeline_entry(ev.Levels(module="m", levels=[]), seen) is None
    assert timeline_entry(ev.StreamStats(module="m", bytes_received=1, rate_bps=1.0), seen) is None
    # Four a second for the whole recording: kept, the session's timeline would grow unbounded.
    assert timeline_entry(ev.RecordingTime(elapsed_s=1.0, duration_s=None), seen) is None
    ptp = ev.PtpProgress(module="m", status="Locking", locked=False, elapsed_s=1.0, timeout_s=600.0)
    assert timeline_entry(ptp, seen)["status"] == "Locking"
    assert timeline_entry(ptp, seen) is None  # only the elapsed time moved on
    locked = ev.PtpProgress(module="m", status="Locked", locked=True, elapsed_s=2.0, timeout_s=600)
    assert timeline_entry(locked, seen)["locked"] is True


def test_capture_json_round_trip_and_history(tmp_path: Path):
    root = tmp_path / "captures"
    a = record(root / "a", "a")
    a.add_event(ev.Warning(message="numpy value", module=None))
    a.add_event(
        ev.DataQualityChanged(
            module="m",
            channel=np.int64(2),
            signal_id=2,
            validity=2,
            flags=["clipped"],
            stream_time_s=1.5,
        )
    )
    a.start_ticks = 7301444404273741824
    a.write()
    meta = read_capture(root / "a")
    assert meta["format"] == "lanxi-capture/1" and meta["outcome"] == "running"
    assert meta["start_time"] == "2023-11-14T22:13:20.250000+00:00"
    assert meta["ptp"] == {"domain": 42, "master": "127.0.2.31"}
    assert meta["modules"][0]["bytes"] == 10
    assert [e["kind"] for e in meta["events"]] == ["warning", "data-quality"]
    assert meta["events"][1]["channel"] == 2
    assert not list((root / "a").glob(".*tmp"))  # written atomically
    b = record(root / "b", "b")
    b.created += 10
    b.outcome = "completed"
    b.write()
    (root / "broken").mkdir()
    (root / "broken" / "capture.json").write_text("{")
    assert [c["id"] for c in list_captures(tmp_path)] == ["b", "a"]
    assert json.loads((root / "b" / "capture.json").read_text())["outcome"] == "completed"


def test_quality_changes_are_listed_up_to_a_limit_per_channel_then_counted():
    from webapp.capture.events import DataQualityChanged, Warning
    from webapp.capture.store import QualityChangeLimit

    def change(module: str, channel: int) -> DataQualityChanged:
        return DataQualityChanged(
            module=module, channel=channel, signal_id=channel, validity=2, flags=[], stream_time_s=0
        )

    limit = QualityChangeLimit(2)
    admitted = [limit.admit(change("a", 1)) for _ in range(5)]
    assert admitted == [True, True, False, False, False]
    assert limit.admit(change("a", 2)) and limit.admit(change("b", 1))
    assert limit.admit(Warning(message="other events are never limited"))
    assert limit.unlisted == {("a", 1): 3}
