"""SIGTERM and SIGINT to real ``capture`` and ``serve`` processes while they record from the
emulator (in this process, on free ports of 127.0.0.1): every module stopped (the master
last), finished and closed, the files and capture.json complete, within the bounded time; a
second signal, or a teardown that takes too long, quits at once and names what it leaves; a
module left non-Idle makes ``capture`` exit 1."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.streamcheck import check_file
from tests.support.emulator import FAST_EMULATOR
from tests.support.net import free_port
from tests.support.processes import REPO, webapp_command
from tests.support.waiting import wait_until
from webapp.emulator import EmulatedRig
from webapp.openapi.client import ModuleClient


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(2, **FAST_EMULATOR)
    yield rig
    rig.stop()


def states(rig: EmulatedRig) -> list[str]:
    return [ModuleClient(a).onchange()["moduleState"] for a in rig.addresses]


def stop_order(rig: EmulatedRig) -> list[str]:
    """The addresses that were sent measurements/stop, in the order they arrived."""
    entries = []
    for address, m in zip(rig.addresses, rig.modules, strict=True):
        for e in m.emulator.requests:
            if e["path"].split("?")[0].endswith("/measurements/stop"):
                entries.append((e["time"], address))
    return [a for _, a in sorted(entries)]


class Output:
    """A process's merged output, read line by line as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []

    def until(self, needle: str, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if needle in line:
                return
        self.proc.kill()
        raise AssertionError(f"{needle!r} not in output:\n{self.text}")

    def finish(self, timeout: float) -> tuple[int, float]:
        """The exit status and how long after this call it came."""
        started = time.monotonic()
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out)
        return self.proc.returncode, time.monotonic() - started

    @property
    def text(self) -> str:
        return "".join(self.lines)


def capture(*args: str) -> Output:
    proc = subprocess.Popen(
        webapp_command("capture", *args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Output(proc)


def make_unreachable(address: str) -> None:
    answer = requests.post(f"http://{address}/emulator/faults", json={"kind": "unreachable"})
    answer.raise_for_status()


def test_sigterm_ends_an_until_stopped_capture_cleanly(rig, tmp_path: Path) -> None:
    out = capture(*rig.addresses, "--until-stopped", "-n", "term", "-o", str(tmp_path))
    out.until("Measuring   1.")
    out.proc.send_signal(signal.SIGTERM)
    status, took = out.finish(timeout=30)
    assert status == 0, out.text
    assert "SIGTERM: stopping and closing every module" in out.text
    assert took < 10
    meta = json.loads((tmp_path / "capture.json").read_text())
    assert meta["outcome"] == "stopped" and meta["left_non_idle"] == []
    assert meta["reason"] == "stopped by SIGTERM"
    for m in meta["modules"]:
        f = m["files"][0]
        assert (tmp_path / f["file"]).stat().st_size == f["bytes"] > 0
        assert check_file(tmp_path / f["file"]).messages > 0
    assert states(rig) == ["Idle", "Idle"]
    assert stop_order(rig) == [rig.addresses[1], rig.addresses[0]]  # the master last


def test_sigterm_cuts_a_timed_capture_short_with_143(rig, tmp_path: Path) -> None:
    out = capture(*rig.addresses, "-t", "60", "-o", str(tmp_path))
    out.until("Measuring   1.")
    out.proc.send_signal(signal.SIGTERM)
    status, _ = out.finish(timeout=30)
    assert status == 128 + signal.SIGTERM, out.text
    assert json.loads((tmp_path / "capture.json").read_text())["outcome"] == "stopped"
    assert states(rig) == ["Idle", "Idle"]


def test_a_second_signal_quits_at_once_naming_what_is_left(rig, tmp_path: Path) -> None:
    out = capture(*rig.addresses, "--until-stopped", "-o", str(tmp_path))
    out.until("Measuring   1.")
    make_unreachable(rig.addresses[1])  # its stop goes unanswered for the teardown's timeout
    out.proc.send_signal(signal.SIGTERM)
    out.until("stopping and closing every module")
    out.proc.send_signal(signal.SIGINT)
    status, took = out.finish(timeout=30)
    assert status == 128 + signal.SIGINT, out.text
    assert took < 2.5, out.text  # within the slave's unanswered stop (3 s)
    said = out.text
    assert "second SIGINT: quitting without finishing the teardown" in said
    assert f"module 2 ({rig.addresses[1]}, last seen RecorderRecording)" in said
    assert f"capture {tmp_path} is not completed: it reads as interrupted" in said
    # What it said is so: capture.json still says running, by a writer that is gone.
    meta = json.loads((tmp_path / "capture.json").read_text())
    assert meta["outcome"] == "running"
    from webapp.capture.store import read_capture

    assert read_capture(tmp_path)["outcome"] == "interrupted"


def test_a_dead_slave_does_not_keep_the_master_recording(rig, tmp_path: Path) -> None:
    out = capture(*rig.addresses, "--until-stopped", "-o", str(tmp_path))
    out.until("Measuring   1.")
    make_unreachable(rig.addresses[1])
    out.proc.send_signal(signal.SIGTERM)
    status, _ = out.finish(timeout=30)
    assert status == 1, out.text  # module 2 is left, and named
    assert f"module 2 ({rig.addresses[1]}) does not answer" in out.text
    times = {}
    for address, m in zip(rig.addresses, rig.modules, strict=True):
        for e in m.emulator.requests:
            if e["path"].split("?")[0].endswith("/measurements/stop"):
                times[address] = e["time"]
    # The master's stop went out soon after the slave's, not after its 3-s timeout.
    assert 0 <= times[rig.addresses[0]] - times[rig.addresses[1]] < 1.5, times
    assert ModuleClient(rig.addresses[0]).onchange()["moduleState"] == "Idle"


def test_a_teardown_longer_than_the_bound_quits_naming_the_module(rig, tmp_path: Path) -> None:
    out = capture(*rig.addresses, "--until-stopped", "--stop-timeout", "0.5", "-o", str(tmp_path))
    out.until("Measuring   1.")
    make_unreachable(rig.addresses[1])
    out.proc.send_signal(signal.SIGTERM)
    status, took = out.finish(timeout=30)
    assert status == 1, out.text
    assert took < 2.5, out.text
    assert "teardown not done after 0.5 s: quitting without finishing the teardown" in out.text
    assert f"module 2 ({rig.addresses[1]}, last seen RecorderRecording)" in out.text


def test_a_module_left_non_idle_makes_capture_exit_1(tmp_path: Path) -> None:
    rig = EmulatedRig.start(2, faults=["2:http-500:finish", "2:http-500:close"], **FAST_EMULATOR)
    try:
        out = capture(*rig.addresses, "-t", "1", "-o", str(tmp_path))
        status, _ = out.finish(timeout=60)
        assert status == 1, out.text
        assert f"error: left not Idle: module 2 ({rig.addresses[1]})" in out.text
        meta = json.loads((tmp_path / "capture.json").read_text())
        assert [e["address"] for e in meta["left_non_idle"]] == [rig.addresses[1]]
        assert states(rig)[0] == "Idle"
    finally:
        rig.stop()


# --- serve -------------------------------------------------------------------------------------


def start_serve(data_dir: Path, *extra: str) -> tuple[Output, str]:
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        webapp_command(
            "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir), *extra
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(proc)
    out.until("LAN-XI dashboard on")
    return out, f"http://127.0.0.1:{port}"


def test_sigterm_to_serve_ends_its_capture_cleanly(rig, tmp_path: Path) -> None:
    out, base = start_serve(tmp_path)
    try:
        for address in rig.addresses:
            requests.post(f"{base}/api/rig/modules", json={"address": address}).raise_for_status()
        answer = requests.post(
            f"{base}/api/capture/start", json={"name": "srv", "duration_s": None}
        )
        answer.raise_for_status()
        wait_until(
            lambda: (
                [f.stat().st_size > 0 for f in tmp_path.glob("captures/*/*.stream")] == [True, True]
            ),
            30,
            0.05,
        )
        out.proc.send_signal(signal.SIGTERM)
        status, took = out.finish(timeout=30)
    finally:
        if out.proc.poll() is None:
            out.proc.kill()
    assert status == 0, out.text
    assert "every module is back to Idle and every capture is complete" in out.text
    assert took < 10
    [folder] = (tmp_path / "captures").iterdir()
    meta = json.loads((folder / "capture.json").read_text())
    assert meta["outcome"] == "stopped"
    for m in meta["modules"]:
        f = m["files"][0]
        assert (folder / f["file"]).stat().st_size == f["bytes"] > 0
    assert states(rig) == ["Idle", "Idle"]
    assert stop_order(rig) == [rig.addresses[1], rig.addresses[0]]


def test_sigterm_to_an_idle_serve_exits_0(tmp_path: Path) -> None:
    out, _ = start_serve(tmp_path)
    out.proc.send_signal(signal.SIGTERM)
    status, took = out.finish(timeout=30)
    assert status == 0, out.text
    assert "SIGTERM: no capture running; exiting" in out.text
