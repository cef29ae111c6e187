"""Stream receivers in worker processes (``receiver_workers``) against the real emulator: the
files are the same stream files, the live status still reaches the events, and a worker that
dies is a stream failure of its modules with every byte on disk or counted lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capture.fakes import Recorder
from tests.streamcheck import check_file
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.analysis.integrity import build_report
from webapp.analysis.reader import Capture
from webapp.capture import workerpools
from webapp.capture.events import Event, EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings
from webapp.capture.workers import ReceiverPool
from webapp.capture.workersetting import (
    AUTO,
    AUTO_FROM_MODULES,
    parse_workers,
    worker_count,
)
from webapp.emulator import EmulatedRig
from webapp.openapi.client import ModuleClient

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rig_factory() -> Iterator:
    rigs: list[EmulatedRig] = []

    def start(n: int, **kw) -> EmulatedRig:
        rig = EmulatedRig.start(n, **{**FAST, **kw})
        rigs.append(rig)
        return rig

    yield start
    for rig in rigs:
        rig.stop()


@pytest.fixture
def pools(monkeypatch) -> list[ReceiverPool]:
    """Every ReceiverPool the orchestrator starts (to see its worker processes)."""
    started: list[ReceiverPool] = []

    class Watched(ReceiverPool):
        def __init__(self, *args, **kw) -> None:
            self.asked_at = time.monotonic()
            super().__init__(*args, **kw)
            started.append(self)

    monkeypatch.setattr(workerpools, "ReceiverPool", Watched)
    return started


def test_worker_setting_is_checked_once_for_every_way_in() -> None:
    assert parse_workers("auto") == AUTO and parse_workers(" 2 ") == 2 and parse_workers(3) == 3
    for bad in ("0", "-1", "two", "1.5", True, 65):
        with pytest.raises(ValueError, match="receiver workers must be 'auto' or a whole number"):
            parse_workers(bad)
    with pytest.raises(ValueError):
        Orchestrator(EventBus(), Path("."), receiver_workers="none")
    assert worker_count(AUTO, AUTO_FROM_MODULES - 1) == 1  # small rigs: in the engine
    assert worker_count(AUTO, AUTO_FROM_MODULES) == max(1, os.cpu_count() or 1)
    assert worker_count(4, 2) == 2  # never more workers than modules
    assert worker_count(1, 100) == 1


def test_two_workers_write_complete_stream_files_and_the_live_status(
    rig_factory, tmp_path: Path, pools: list[ReceiverPool]
) -> None:
    rig = rig_factory(3, faults=["2:cable-fault:3@0.3+0.4"])
    bus = EventBus()
    rec = Recorder(bus)
    connecting: list[float] = []
    bus.subscribe(
        lambda e: (
            connecting.append(time.monotonic())
            if e.kind == "phase" and e.phase == "connecting"  # type: ignore[attr-defined]
            else None
        )
    )
    orch = Orchestrator(bus, tmp_path, receiver_workers=2)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=2.0))
    assert orch.wait(60)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    (pool,) = pools
    assert pool.asked_at < connecting[0]  # started while the modules were armed
    pids = {w.pid for w in pool.workers}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(w.proc.returncode == 0 for w in pool.workers)  # ended when the capture did

    folder = orch.last_folder
    assert folder is not None
    meta = json.loads((folder / "capture.json").read_text())
    assert meta["outcome"] == "completed" and not meta["reason"]
    reports = [check_file(folder / f"{meta['name']}.{n}.stream") for n in (1, 2, 3)]
    assert len({s.first_time for r in reports for s in r.signals.values()}) == 1
    for r in reports:
        assert len(r.signals) == 6 and r.order[:6] == ["interpretation"] * 6
        assert min(s.samples for s in r.signals.values()) >= 2 * 51200
    with Capture.open(folder) as cap:
        report = build_report(cap)
    assert [f["checksum"] for f in report["files"]] == ["ok"] * 3
    assert all(f["truncated_bytes"] == 0 for f in report["files"])
    assert report["sync"]["synchronous"], report["problems"]
    for m in meta["modules"]:
        (f,) = m["files"]
        assert (folder / f["file"]).stat().st_size == f["bytes"] == m["bytes"] > 0

    # The live view from the workers: levels, waveforms, data quality, statistics.
    second = rig.addresses[1]
    faults = [(e.module, e.channel, e.cf) for e in rec.kinds("channel-fault")]
    assert (second, 3, "curr") in faults and (second, 3, "prev") in faults
    quality = [(e.module, e.channel, "invalid" in e.flags) for e in rec.kinds("data-quality")]
    assert (second, 3, True) in quality and (second, 3, False) in quality
    for address in rig.addresses:
        levels = [e for e in rec.kinds("levels") if e.module == address]
        assert len(levels) >= 4
        mic = next(lv for lv in levels[-1].levels if lv["channel"] == 1)
        assert mic["unit"] == "Pa" and 60 < mic["db"] < 140
        assert any(e.module == address for e in rec.kinds("waveform"))
    stats = [e for e in rec.kinds("stream-stats") if e.module == second]
    assert stats[-1].bytes_received == meta["modules"][1]["bytes"]
    timeline = [e["kind"] for e in meta["events"]]
    assert "channel-fault" in timeline and "data-quality" in timeline
    assert [ModuleClient(a).onchange()["moduleState"] for a in rig.addresses] == ["Idle"] * 3


def test_a_killed_worker_is_a_stream_failure_with_every_byte_counted(
    rig_factory, tmp_path: Path, pools: list[ReceiverPool]
) -> None:
    rig = rig_factory(2)
    bus = EventBus()
    rec = Recorder(bus)
    recording_seen = threading.Event()

    def on_event(e: Event) -> None:
        if e.kind == "stream-stats" and e.bytes_received > 0:  # type: ignore[attr-defined]
            recording_seen.set()

    bus.subscribe(on_event)
    orch = Orchestrator(bus, tmp_path, receiver_workers=2)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=30.0))
    assert recording_seen.wait(30)
    (pool,) = pools
    victim = pool.worker_for(2)
    os.kill(victim.pid, signal.SIGKILL)
    assert orch.wait(60)
    assert orch.phase == Phase.FAILED
    second = rig.addresses[1]
    errors = [e for e in rec.kinds("error") if e.module == second]
    assert errors and "receiver process 2" in errors[0].message
    assert "killed by signal 9 (SIGKILL)" in errors[0].message
    assert f"module {second}" in errors[0].message
    assert pool.worker_for(1).proc.returncode == 0  # the other worker closed its files and ended
    # Every module was stopped and the capture wound down.
    assert [ModuleClient(a).onchange()["moduleState"] for a in rig.addresses] == ["Idle"] * 2

    folder = orch.last_folder
    assert folder is not None
    meta = json.loads((folder / "capture.json").read_text())
    assert meta["outcome"] == "failed"
    assert "receiver process 2" in meta["reason"] and "bytes are in" in meta["reason"]
    assert "what the module sent after that was not received" in meta["reason"]
    for m in meta["modules"]:
        (f,) = m["files"]
        assert (folder / f["file"]).stat().st_size == f["bytes"] > 0
    with Capture.open(folder) as cap:
        report = build_report(cap)
    files = report["files"]
    assert [f["checksum"] for f in files] == ["ok", "ok"]
    assert files[0]["truncated_bytes"] == 0  # the surviving worker's file ends cleanly


def test_capture_command_with_two_workers_under_eventlet(rig_factory, tmp_path: Path) -> None:
    """The ``capture`` command runs on eventlet: the workers' lines are green sockets there."""
    rig = rig_factory(2)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "webapp", "capture", *rig.addresses, "-t", "1", "-o", str(out),
         "-n", "W", "--receiver-workers", "2"],
        capture_output=True, text=True, timeout=90, cwd=REPO, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed" in result.stdout
    meta = json.loads((out / "capture.json").read_text())
    assert meta["outcome"] == "completed"
    for n, m in enumerate(meta["modules"], start=1):
        report = check_file(out / f"W.{n}.stream")
        assert len(report.signals) == 6
        assert min(s.samples for s in report.signals.values()) >= 51200
        assert (out / f"W.{n}.stream").stat().st_size == m["bytes"]
    bad = subprocess.run(
        [sys.executable, "-m", "webapp", "capture", *rig.addresses, "--receiver-workers", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "receiver workers must be 'auto' or a whole number from 1 to 64" in bad.stderr


def test_multi_socket_streams_of_a_module_share_its_worker(
    rig_factory, tmp_path: Path, pools: list[ReceiverPool]
) -> None:
    rig = rig_factory(2)
    bus = EventBus()
    orch = Orchestrator(bus, tmp_path, receiver_workers=2)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=1.0, multi_socket=True))
    assert orch.wait(60)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    (pool,) = pools
    for number, worker in ((1, pool.workers[0]), (2, pool.workers[1])):
        modules = {r.module for r in worker.receivers.values()}
        assert modules == {rig.addresses[number - 1]}
        assert len(worker.receivers) == 6  # one receiver per channel's stream
    folder = orch.last_folder
    assert folder is not None
    meta = json.loads((folder / "capture.json").read_text())
    for m in meta["modules"]:
        assert len(m["files"]) == 6
        for f in m["files"]:
            (signal_report,) = check_file(folder / f["file"]).signals.values()
            assert signal_report.samples >= 51200
            assert (folder / f["file"]).stat().st_size == f["bytes"]
    with Capture.open(folder) as cap:
        assert build_report(cap)["sync"]["synchronous"]


def test_serve_and_capture_take_the_worker_option() -> None:
    from webapp.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve", "--receiver-workers", "2"]).receiver_workers == 2
    assert parser.parse_args(["serve"]).receiver_workers == AUTO
    assert (
        parser.parse_args(["capture", "10.0.0.5", "--receiver-workers", "auto"]).receiver_workers
        == AUTO
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--receiver-workers", "many"])
