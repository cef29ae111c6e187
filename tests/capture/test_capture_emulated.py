"""The orchestrator and the ``capture`` command against the real emulator (in-process, on free
ports of 127.0.0.1): every phase, the request order, each failure path, arm-then-record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capture.fakes import Recorder
from tests.streamcheck import check_file
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.capture.events import Event, EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings, ChannelSettings
from webapp.emulator import EmulatedRig
from webapp.openapi.client import ModuleClient

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rig_factory() -> Iterator:
    rigs: list[EmulatedRig] = []

    def start(n: int, **kw) -> EmulatedRig:
        options = {**FAST, **kw}
        rig = EmulatedRig.start(n, **options)
        rigs.append(rig)
        return rig

    yield start
    for rig in rigs:
        rig.stop()


def orchestrator(tmp_path: Path) -> tuple[Orchestrator, Recorder]:
    bus = EventBus()
    return Orchestrator(bus, tmp_path), Recorder(bus)


def states(rig: EmulatedRig) -> list[str]:
    return [ModuleClient(a).onchange()["moduleState"] for a in rig.addresses]


def request_log(rig: EmulatedRig) -> list[tuple[float, str, str, str]]:
    """Every module's logged REST requests, merged in time order (status polls left out)."""
    entries = []
    for m in rig.modules:
        for e in m.emulator.requests:
            path = e["path"].split("?")[0]
            if path.endswith("/onchange"):
                continue
            # by arrival: a request sent after another's answer arrives after it
            entries.append((e["received"], m.address, e["method"], path.removeprefix("/rest/rec/")))
    return sorted(entries)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "webapp", "capture", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


def test_capture_command_three_modules(rig_factory, tmp_path: Path):
    """The issue's acceptance run, on eventlet in a separate process."""
    rig = rig_factory(3)
    out = tmp_path / "out"
    result = run_cli(*rig.addresses, "-t", "1", "-o", str(out), "-n", "Run 1")
    assert result.returncode == 0, result.stdout + result.stderr
    for word in ("ptp-lock", "Locked", "recording", "Measuring", "completed"):
        assert word in result.stdout

    reports = [check_file(out / f"Run 1.{n}.stream") for n in (1, 2, 3)]
    firsts = {s.first_time for r in reports for s in r.signals.values()}
    assert len(firsts) == 1  # sample-synchronous
    for r in reports:
        assert len(r.signals) == 6
        counts = {s.samples for s in r.signals.values()}
        assert len(counts) == 1 and counts.pop() >= 131072  # 1 s at 51.2 kHz
        assert r.order[:6] == ["interpretation"] * 6

    meta = json.loads((out / "capture.json").read_text())
    assert meta["outcome"] == "completed"
    assert [m["address"] for m in meta["modules"]] == rig.addresses
    assert meta["start_ticks"] == firsts.pop()
    for m in meta["modules"]:
        (f,) = m["files"]
        assert (out / f["file"]).stat().st_size == f["bytes"] == m["bytes"]

    log = request_log(rig)
    master, *slaves = rig.addresses

    def order(request: str, method: str = "PUT") -> list[str]:
        return [a for _, a, m, p in log if p == request and m == method]

    assert order("syncmode")[0] == master  # sync parameters: master first
    assert order("syncmode")[3:] != [] and order("syncmode")[-1] == master  # back to stand-alone
    for request, method in (
        ("open", "PUT"),
        ("create", "PUT"),
        ("channels/input", "PUT"),
        ("synchronize", "PUT"),
        ("startstreaming", "PUT"),
        ("measurements", "POST"),
        ("measurements/stop", "PUT"),
        ("finish", "PUT"),
        ("close", "PUT"),
    ):
        sent = order(request, method)
        assert sorted(sent) == sorted(rig.addresses), request
        assert sent[-1] == master, f"{request} must reach the master last: {sent}"
    assert states(rig) == ["Idle"] * 3


def test_ptp_timeout_names_module_2_and_every_module_ends_idle(rig_factory, tmp_path: Path):
    rig = rig_factory(3, faults=["2:ptp-no-lock"])
    started = time.monotonic()
    result = run_cli(*rig.addresses, "-t", "1", "-o", str(tmp_path), "--ptp-timeout", "1")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 1 + 8
    error_lines = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert error_lines and rig.addresses[1] in error_lines[-1]
    assert rig.addresses[0] not in error_lines[-1]
    assert "lock onto PTP" in error_lines[-1]
    assert states(rig) == ["Idle"] * 3
    assert not list(tmp_path.glob("*.stream"))


def test_bad_input_exits_2_before_anything_is_sent(rig_factory, tmp_path: Path):
    rig = rig_factory(2)
    result = run_cli(*rig.addresses, "-d", "200", "-o", str(tmp_path))
    assert result.returncode == 2 and "-d/--ptp-domain must be 127 or less" in result.stdout
    assert request_log(rig) == []


def test_names_in_other_languages_reach_the_file_names(rig_factory, tmp_path: Path):
    rig = rig_factory(1)
    refused = run_cli(*rig.addresses, "-t", "1", "-o", str(tmp_path / "a"), "-n", "nul.txt")
    assert refused.returncode == 2 and "name" in refused.stdout and "reserved" in refused.stdout
    assert request_log(rig) == []
    out = tmp_path / "b"
    decomposed = "U\u0308ni\u0308co\u0308de\u0301 測定"
    result = run_cli(*rig.addresses, "-t", "0.2", "-o", str(out), "-n", decomposed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "Ünïcödé 測定.1.stream").is_file()
    assert json.loads((out / "capture.json").read_text())["name"] == "Ünïcödé 測定"


def test_stream_drop_with_fail_ends_at_once_and_keeps_every_byte(rig_factory, tmp_path: Path):
    rig = rig_factory(3, faults=["2:stream-drop@0.5"])
    orch, rec = orchestrator(tmp_path)
    sent_blocks: dict[str, int] = {}

    def emulator_counts(e: Event) -> None:
        # The capture has ended (modules stopped) but the modules are not finished yet.
        if e.kind == "capture-finished":
            for m in rig.modules:
                ports = m.emulator.snapshot()["measurement"]["ports"]
                sent_blocks[m.address] = ports[0]["sentBlocks"]

    orch.bus.subscribe(emulator_counts)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=3.0, on_stream_drop="fail"))
    assert orch.wait(30)
    assert orch.phase == Phase.FAILED
    dropped = rig.addresses[1]
    (error,) = rec.kinds("error")
    assert error.module == dropped and error.request == "stream"
    started = rec.kinds("capture-started")[0].t
    assert error.t - started < 2.0  # reported at once, not at the end of the 3 s
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    assert meta["outcome"] == "failed" and dropped in meta["reason"]
    for m, emulated in zip(meta["modules"], rig.modules, strict=True):
        (f,) = m["files"]
        path = orch.last_folder / f["file"]
        assert path.stat().st_size == f["bytes"]
        sent = sent_blocks[emulated.address]
        if m["address"] == dropped:
            data = path.read_bytes()
            # every block the module handed to the connection is in the file
            from webapp.openapi.stream import StreamDecoder

            decoder = StreamDecoder()
            msgs = decoder.feed(data)
            blocks = sum(1 for msg in msgs if msg.message_type == 1)
            assert blocks >= sent * 6 > 0
        else:
            report = check_file(path)  # the others' files are complete and parse strictly
            counts = {s.samples for s in report.signals.values()}
            assert len(counts) == 1 and counts.pop() == sent * 4096
    assert states(rig) == ["Idle"] * 3


def test_http_500_mid_sequence_closes_every_module(rig_factory, tmp_path: Path):
    rig = rig_factory(3, faults=["3:http-500:synchronize"])
    orch, rec = orchestrator(tmp_path)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=1.0))
    assert orch.wait(30)
    assert orch.phase == Phase.FAILED
    third = rig.addresses[2]
    assert orch.last_error.startswith(f"module {third}: PUT /rest/rec/synchronize failed: HTTP 500")
    (error,) = rec.kinds("error")
    assert error.module == third and error.request == "PUT /rest/rec/synchronize"
    assert states(rig) == ["Idle"] * 3
    closed = [a for _, a, m, p in request_log(rig) if p == "close"]
    assert sorted(closed) == sorted(rig.addresses)


def test_two_captures_while_armed_without_a_second_ptp_wait(rig_factory, tmp_path: Path):
    rig = rig_factory(2, ptp_lock_seconds=1.0)
    orch, rec = orchestrator(tmp_path)
    settings = CaptureSettings(modules=rig.addresses, duration_s=0.5, name="armed")
    orch.arm(settings)
    assert orch.wait(30) and orch.armed, orch.last_error
    t = time.monotonic()
    ids = []
    for _ in range(2):
        ids.append(orch.start())
        assert orch.wait(30) and orch.armed, orch.last_error
    assert time.monotonic() - t < 4.0  # no 1 s PTP lock per capture
    assert [e.outcome for e in rec.kinds("capture-finished")] == ["completed", "completed"]
    syncs = [p for _, _, m, p in request_log(rig) if p == "syncmode"]
    assert len(syncs) == 2  # one per module, for both captures
    assert [e.phase for e in rec.kinds("phase")].count("ptp-lock") == 1
    for capture_id in ids:
        folder = tmp_path / "captures" / capture_id
        reports = [check_file(folder / f"armed.{n}.stream") for n in (1, 2)]
        assert len({s.first_time for r in reports for s in r.signals.values()}) == 1
    assert states(rig) == ["RecorderStreaming"] * 2
    orch.disarm()
    assert orch.wait(30) and orch.phase == Phase.IDLE
    assert states(rig) == ["Idle"] * 2


def test_single_module_and_multi_socket(rig_factory, tmp_path: Path):
    rig = rig_factory(1, types="3677")
    orch, rec = orchestrator(tmp_path)
    address = rig.addresses[0]
    settings = CaptureSettings(
        modules=[address],
        duration_s=0.5,
        multi_socket=True,
        channels={address: [ChannelSettings(3, enabled=False)]},
    )
    orch.start(settings)
    assert orch.wait(30)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    files = [f["file"] for f in meta["modules"][0]["files"]]
    assert files == [f"My Measurement.1.ch{c}.stream" for c in (1, 2, 4)]
    for name in files:
        report = check_file(orch.last_folder / name)
        (signal,) = report.signals.values()
        assert signal.samples >= 0.5 * 65536
    requests = [p for _, _, _, p in request_log(rig)]
    assert "synchronize" not in requests and "startstreaming" not in requests
    assert requests.index("module/time") < requests.index("syncmode") < requests.index("open")
    (sync,) = [e for e in rig.modules[0].emulator.requests if e["path"].endswith("/syncmode")]
    assert json.loads(sync["body"]) == {"synchronization": {"mode": "stand-alone"}}
    assert states(rig) == ["Idle"]


def test_refuses_lan_xi_light_in_a_synchronized_capture(rig_factory, tmp_path: Path):
    rig = rig_factory(2, types="3050,3676")
    orch, _ = orchestrator(tmp_path)
    from webapp.capture.settings import SettingsError

    with pytest.raises(SettingsError, match="3676"):
        orch.arm(CaptureSettings(modules=rig.addresses))
    assert {(m, p) for _, _, m, p in request_log(rig)} == {("GET", "module/info")}


def test_channel_faults_and_levels_during_a_capture(rig_factory, tmp_path: Path):
    rig = rig_factory(2, faults=["2:cable-fault:3@0.3+0.4"])
    orch, rec = orchestrator(tmp_path)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=2.0))
    assert orch.wait(30)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    second = rig.addresses[1]
    faults = [(e.module, e.channel, e.cf) for e in rec.kinds("channel-fault")]
    assert (second, 3, "curr") in faults and (second, 3, "prev") in faults
    assert faults.index((second, 3, "curr")) < faults.index((second, 3, "prev"))
    assert len(faults) == len(set(faults))  # only on change
    quality = [(e.module, e.channel, "invalid" in e.flags) for e in rec.kinds("data-quality")]
    assert (second, 3, True) in quality and (second, 3, False) in quality
    levels = [e for e in rec.kinds("levels") if e.module == rig.addresses[0]]
    assert len(levels) >= 5
    mic = next(lv for lv in levels[-1].levels if lv["channel"] == 1)
    assert mic["unit"] == "Pa" and mic["db"] is not None and 60 < mic["db"] < 140
    stats = [e for e in rec.kinds("stream-stats") if e.module == second]
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    assert stats[-1].bytes_received == meta["modules"][1]["bytes"]
    timeline = [e["kind"] for e in meta["events"]]
    assert "channel-fault" in timeline and "data-quality" in timeline


def test_ptp_lock_lost_while_recording_is_a_warning_in_the_record(rig_factory, tmp_path: Path):
    rig = rig_factory(2, faults=["2:ptp-no-lock@0.3+0.4"])
    orch, rec = orchestrator(tmp_path)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=1.5))
    assert orch.wait(30)
    assert orch.phase == Phase.COMPLETED, orch.last_error  # every sample is still kept
    lost = [e for e in rec.kinds("warning") if "lost PTP lock" in e.message]
    # once, for module 2 only: leaving the PTP domain in the teardown is no loss
    assert [(e.module, "Unlocked" in e.message) for e in lost] == [(rig.addresses[1], True)]
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    recorded = [e for e in meta["events"] if e["kind"] == "warning"]
    assert [e["module"] for e in recorded if "lost PTP lock" in e["message"]] == [rig.addresses[1]]


def test_a_module_left_open_elsewhere_is_refused_then_returned_to_idle(rig_factory, tmp_path: Path):
    rig = rig_factory(2)
    other = ModuleClient(rig.addresses[1])  # another program opens the recorder and leaves
    other.open(single_module=False)
    other.create()
    refused = run_cli(*rig.addresses, "-t", "1", "-o", str(tmp_path))
    assert refused.returncode == 1
    assert "RecorderConfiguring, not Idle" in refused.stdout
    assert "--return-to-idle" in refused.stdout
    assert not list(tmp_path.glob("*.stream"))  # nothing was started
    back = run_cli("--return-to-idle", *rig.addresses)
    assert back.returncode == 0, back.stdout + back.stderr
    assert back.stdout.splitlines() == [
        f"{rig.addresses[0]}: already Idle",
        f"{rig.addresses[1]}: sent cancel, close; now Idle",
    ]
    assert states(rig) == ["Idle", "Idle"]
    done = run_cli(*rig.addresses, "-t", "1", "-o", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_module_that_stops_answering_mid_recording_fails_the_capture(rig_factory, tmp_path: Path):
    rig = rig_factory(2, faults=["2:unreachable@0.5"])
    bus = EventBus()
    rec = Recorder(bus)
    orch = Orchestrator(
        bus, tmp_path, client_factory=lambda a: ModuleClient(a, timeout=1.0), stall_timeout_s=1.0
    )
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=5.0))
    assert orch.wait(30)
    assert orch.phase == Phase.FAILED
    second = rig.addresses[1]
    assert orch.last_error == f"module {second}: no stream data for 1 s"
    assert [e.module for e in rec.kinds("error")] == [second]
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    assert meta["outcome"] == "failed" and meta["modules"][0]["bytes"] > 0
    # the reachable module was stopped, finished and closed; the other one is reported
    assert ModuleClient(rig.addresses[0]).onchange()["moduleState"] == "Idle"
    assert any(second in e.message for e in rec.kinds("warning"))


def _popen_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "webapp", "capture", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
    )


def _read_until(proc: subprocess.Popen, needle: str, timeout: float = 30) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    proc.kill()
    raise AssertionError(f"{needle!r} not in output:\n{''.join(seen)}")


def test_ctrl_c_stops_a_recording_and_tears_down(rig_factory, tmp_path: Path):
    import signal

    rig = rig_factory(2)
    proc = _popen_cli(*rig.addresses, "--until-stopped", "-o", str(tmp_path))
    _read_until(proc, "Measuring   1.")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Capture stopped" in out
    meta = json.loads((tmp_path / "capture.json").read_text())
    assert meta["outcome"] == "stopped" and meta["recorded_s"] >= 1.0
    for m in meta["modules"]:
        assert check_file(tmp_path / m["files"][0]["file"]).messages > 0
    assert states(rig) == ["Idle"] * 2


def test_ctrl_c_while_waiting_for_ptp_tears_down(rig_factory, tmp_path: Path):
    import signal

    rig = rig_factory(2, faults=["2:ptp-no-lock"])
    proc = _popen_cli(*rig.addresses, "-o", str(tmp_path))
    _read_until(proc, "ptp-lock")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert states(rig) == ["Idle"] * 2
    syncs = [(a, p) for _, a, m, p in request_log(rig) if p == "syncmode"]
    assert len(syncs) == 4  # PTP parameters, then back to stand-alone
