"""Monitoring on the emulator (in-process, free ports of 127.0.0.1): recordings are windows of
the running measurement. A level trigger fired by an injected overload, manual windows and
segments; every file read strictly with HBK's grammar (tests/streamcheck.py).

The overload fault (docs/emulator.md) amplifies module 1's channel 2, the accelerometer on an
80 Hz + 237 Hz structure (about 9 m/s² peak), at least 8×, from a block boundary 3 s into the
measurement: the first sample above 30 m/s² lies in the first amplified block, never before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.capture.fakes import Recorder
from tests.streamcheck import check_file
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings, ChannelSettings
from webapp.capture.trigger import RecordPlan, TriggerSpec
from webapp.emulator import EmulatedRig

REPO = Path(__file__).resolve().parents[2]
TICKS = 1 << 32
LEVEL = 30.0  # m/s², between the normal ~9 m/s² peak and the overloaded ≥ 72 m/s²
FAULT_AT_S = 3.0


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(2, faults=[f"1:overload:2@{FAULT_AT_S:g}"], **FAST)
    yield rig
    rig.stop()


def settings(rig: EmulatedRig, name: str = "mon") -> CaptureSettings:
    # Three channels per module at 6.4 kHz keep the test light; channel 2 is the trigger's.
    return CaptureSettings(
        modules=list(rig.addresses),
        name=name,
        bandwidth="6.4 kHz",
        channels={
            a: [ChannelSettings(channel=c, enabled=c <= 3) for c in range(1, 7)]
            for a in rig.addresses
        },
    )


def captures_of(root: Path) -> list[dict]:
    return [json.loads((p / "capture.json").read_text()) for p in sorted(root.iterdir())]


def test_level_trigger_windows_start_exactly_the_pre_trigger_before_the_level(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    bus = EventBus()
    orch = Orchestrator(bus, tmp_path)
    rec = Recorder(bus)
    plan = RecordPlan(
        name="hit",
        mode="trigger",
        trigger=TriggerSpec.parse(f"1:2>{LEVEL:g}"),
        pre_trigger_s=0.5,
        duration_s=0.25,
        events=1,
    )
    out = tmp_path / "out"
    orch.monitor(settings(rig), plan, folder=out, end_when_done=True)
    assert orch.wait(60)
    assert orch.phase in (Phase.IDLE, Phase.COMPLETED), (orch.phase, orch.last_error)
    fired = rec.kinds("trigger")
    assert len(fired) == 1
    t_trig = fired[0].time_ticks
    [capture] = captures_of(out)
    assert capture["outcome"] == "completed", capture["reason"]
    window = capture["window"]
    assert window["kind"] == "trigger" and window["trigger"]["channel"] == 2
    assert window["trigger"]["time_ticks"] == t_trig
    rate = capture["sample_rate"]
    tps = TICKS // rate
    pre = round(0.5 * rate)
    firsts = set()
    for module in capture["modules"]:
        [f] = module["files"]
        report = check_file(out / capture["id"] / f["file"], keep_values=True)
        for sig in report.signals.values():
            firsts.add(sig.first_time)
            assert sig.samples == pre + round(0.25 * rate)
        if module["number"] == 1:
            acc = report.signal(2)
            scale = acc.descriptors["scale_factor"]
            values = acc.values().astype(float) / (1 << 23) * scale
            beyond = np.flatnonzero(values > LEVEL)
            assert beyond[0] == pre  # the first sample beyond the level, pre-trigger in
            assert acc.first_time == t_trig - pre * tps
    assert firsts == {t_trig - pre * tps}  # every module, every signal: the same first sample
    # The fault began 3 s into the measurement: the trigger is within one block of it.
    start = capture["modules"][0]["first_ticks"]
    assert start == t_trig - pre * tps


def test_segments_are_gap_free_and_overlap_free(rig: EmulatedRig, tmp_path: Path) -> None:
    bus = EventBus()
    orch = Orchestrator(bus, tmp_path)
    plan = RecordPlan(name="seg", mode="segments", segment_s=0.3, duration_s=1.0)
    out = tmp_path / "segs"
    orch.monitor(settings(rig), plan, folder=out, end_when_done=True)
    assert orch.wait(60)
    caps = captures_of(out)
    assert [c["window"]["segment"]["index"] for c in caps] == [1, 2, 3, 4]
    assert all(c["outcome"] == "completed" for c in caps), [c["reason"] for c in caps]
    for prev, nxt in zip(caps, caps[1:], strict=False):
        assert prev["window"]["segment"]["next"] == nxt["id"]
        assert nxt["window"]["segment"]["previous"] == prev["id"]
    rate = caps[0]["sample_rate"]
    for number in (1, 2):
        end = None
        total = 0
        for c in caps:
            module = c["modules"][number - 1]
            report = check_file(out / c["id"] / module["files"][0]["file"])
            for sig in report.signals.values():
                if end is not None:
                    assert sig.first_time == end[sig.signal_id]  # no gap, no overlap
            end = {sid: sig.end_time for sid, sig in report.signals.items()}
            total += report.signals[1].samples
        assert total == round(1.0 * rate)
    # The reader takes the run as one span: every channel continuous across the segments,
    # the 160 Hz reference tone (absolute phase) continuing from one segment into the next.
    from webapp.analysis.segments import SegmentRun

    with SegmentRun.open(out / caps[2]["id"]) as span:
        assert [p.id for p in span.parts] == [c["id"] for c in caps]
        assert span.discontinuities() == []
        for key in span.keys:
            assert span.length(key) == round(1.0 * rate), key
        tone = span.read("m2-ch3")
        t = span.start_ticks("m2-ch3") / TICKS + np.arange(len(tone)) / rate
        model = np.sin(2 * np.pi * 160.0 * t)
        assert np.corrcoef(tone, model)[0, 1] > 0.999


def test_monitor_then_record_by_hand_keeps_the_rig_armed(rig: EmulatedRig, tmp_path: Path) -> None:
    bus = EventBus()
    orch = Orchestrator(bus, tmp_path)
    rec = Recorder(bus)
    orch.monitor(settings(rig))
    rec.wait_until(lambda: orch.phase == Phase.MONITORING and rec.kinds("levels"))
    assert not (tmp_path / "captures").exists() or not any((tmp_path / "captures").iterdir())
    orch.record_window(RecordPlan(name="by-hand", duration_s=0.4))
    rec.wait_until(lambda: rec.kinds("capture-finished"))
    orch.record_window(RecordPlan(name="second"))
    rec.wait_until(lambda: len(rec.kinds("capture-started")) == 2)
    orch.stop_window()
    rec.wait_until(lambda: len(rec.kinds("capture-finished")) == 2)
    orch.stop()
    rec.wait_until(lambda: orch.phase == Phase.ARMED)
    caps = captures_of(tmp_path / "captures")
    assert [c["name"] for c in caps] == ["by-hand", "second"]
    assert caps[0]["outcome"] == "completed" and caps[1]["outcome"] == "stopped"
    for c in caps:
        assert c["window"]["kind"] == "manual"
        firsts = {m["first_ticks"] for m in c["modules"]}
        assert len(firsts) == 1 and firsts == {c["window"]["start_ticks"]}
        for m in c["modules"]:
            check_file(tmp_path / "captures" / c["id"] / m["files"][0]["file"])
    assert abs(caps[0]["recorded_s"] - 0.4) < 1e-3
    orch.disarm()
    assert orch.wait(30)


def run_capture_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "webapp", "capture", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
        env=env,
    )


def test_capture_command_triggers_and_segments(rig: EmulatedRig, tmp_path: Path) -> None:
    common = ["-n", "cli", "--bandwidth", "6.4 kHz"]
    bad = run_capture_cli(*rig.addresses, *common, "--trigger", "1:2", "-o", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--trigger '1:2' is not a trigger" in bad.stdout, bad.stdout
    assert not (tmp_path / "x").exists()

    out = tmp_path / "trig"
    args = ["--trigger", f"1:2>{LEVEL:g}", "--pre-trigger", "0.25", "-t", "0.25"]
    result = run_capture_cli(*rig.addresses, *common, *args, "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Trigger 1: module 1 channel 2 rose through 30 m/s^2" in result.stdout
    [capture] = captures_of(out)
    assert capture["id"].endswith("cli-event0001") and capture["outcome"] == "completed"
    assert "Data quality:" in result.stdout

    out = tmp_path / "segs"
    result = run_capture_cli(
        *rig.addresses, *common, "--segment", "0.5", "-t", "1.2", "-o", str(out)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    caps = captures_of(out)  # sorted by folder name: in time order
    assert [c["window"]["segment"]["index"] for c in caps] == [1, 2, 3]
    assert [round(c["recorded_s"], 3) for c in caps] == [0.5, 0.5, 0.2]
    assert result.stdout.count('Recording "cli-seg') == 3


def test_recording_at_a_set_time_starts_on_that_sample(rig: EmulatedRig, tmp_path: Path) -> None:
    bus = EventBus()
    orch = Orchestrator(bus, tmp_path)
    rec = Recorder(bus)
    orch.monitor(settings(rig))
    rec.wait_until(lambda: orch.phase == Phase.MONITORING and rec.kinds("levels"))
    at = time.time() + 1.0
    orch.record_window(RecordPlan(name="at", duration_s=0.2, start_at=at))
    rec.wait_until(lambda: rec.kinds("capture-finished"))
    orch.stop()
    rec.wait_until(lambda: orch.phase == Phase.ARMED)
    [capture] = captures_of(tmp_path / "captures")
    rate = capture["sample_rate"]
    start = capture["window"]["start_ticks"]
    at_ticks = int(at * TICKS)
    assert at_ticks <= start < at_ticks + TICKS // rate  # the first sample at or after the time
    assert {m["first_ticks"] for m in capture["modules"]} == {start}
    orch.disarm()
    assert orch.wait(30)
