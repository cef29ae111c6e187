"""A capture whose process is killed (SIGKILL) mid-recording: capture.json already names its
files, ``inspect`` and History call it interrupted with what is on disk, and ``serve`` marks it
at start-up. Also the rule that tells a live writer from a dead one (pid reused or gone)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.emulator import FAST_EMULATOR
from tests.support.processes import REPO, Emulate, run_webapp, serve, webapp_command
from webapp.capture.writer import effective_outcome, writer_alive, writer_info

EMULATE_OPTIONS = ("ptp_lock_seconds", "teds_seconds", "settle_seconds", "reboot_seconds")
FAST_ARGS = [f"--{k.replace('_', '-')}={FAST_EMULATOR[k]}" for k in EMULATE_OPTIONS]


# --- the writer liveness rule -----------------------------------------------------------------


def test_this_process_is_alive() -> None:
    assert writer_alive(writer_info()) is True


def test_a_reused_pid_is_dead() -> None:
    writer = writer_info()
    writer["start_ticks"] = (writer["start_ticks"] or 0) + 1  # same pid, another process
    assert writer_alive(writer) is False


def test_a_gone_pid_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    writer = writer_info(child.pid)
    child.wait(10)
    assert writer_alive(writer) is False
    document = {"outcome": "running", "writer": writer}
    assert effective_outcome(document) == "interrupted"


def test_another_boot_is_dead_and_another_host_unknown() -> None:
    assert writer_alive({**writer_info(), "boot_id": "another-boot"}) is False
    assert writer_alive({**writer_info(), "host": "elsewhere.invalid"}) is None
    assert effective_outcome({"outcome": "running", "writer": {**writer_info(), "host": "x"}}) == (
        "running"
    )
    # A finished capture stays what it was, whoever wrote it.
    assert effective_outcome({"outcome": "completed", "writer": {"pid": 1, "host": "x"}}) == (
        "completed"
    )


# --- a real capture process, killed ---------------------------------------------------------


@pytest.fixture()
def killed_capture(tmp_path: Path):
    """``lanxi-dashboard capture`` against two emulated modules, SIGKILLed once its files
    hold bytes; yields the capture folder."""
    emulate = Emulate("--modules", "2", "--address", "127.0.22.11", "--port", "0", *FAST_ARGS)
    try:
        lines = emulate.ready(2)
        urls = [re.search(r"at http://(\S+)/rest/rec", line) for line in lines]
        assert all(urls), lines
        addresses = [u.group(1) for u in urls if u]
        out = tmp_path / "out"
        log = open(tmp_path / "capture.log", "w+")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            webapp_command("capture", "-n", "crash", "--until-stopped", "-o", str(out), *addresses),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                streams = list(out.glob("*/*.stream")) + list(out.glob("*.stream"))
                if len(streams) == 2 and all(p.stat().st_size > 200_000 for p in streams):
                    break
                assert proc.poll() is None, (log.seek(0), log.read())[1]
                time.sleep(0.1)
            else:
                log.seek(0)
                pytest.fail(f"no bytes on disk within 60 s:\n{log.read()}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log.close()
        folder = streams[0].parent
        yield folder
    finally:
        emulate.stop()


def test_killed_capture_is_interrupted_with_what_is_on_disk(killed_capture: Path) -> None:
    folder = killed_capture
    raw = json.loads((folder / "capture.json").read_text())
    assert raw["outcome"] == "running"  # as the killed process left it
    listed = sorted(f["file"] for m in raw["modules"] for f in m["files"])
    assert listed == sorted(p.name for p in folder.glob("*.stream"))
    assert raw["writer"]["pid"] > 0 and raw["writer"]["boot_id"]

    result = run_webapp("inspect", str(folder))
    text = result.stdout + result.stderr
    assert "interrupted" in text, text
    assert "no samples in any file" not in text
    for name in listed:
        line = next(line for line in text.splitlines() if line.strip().startswith(name))
        size = (folder / name).stat().st_size
        assert f"{size:,} bytes" in line, line
        samples = int(re.search(r"([\d,]+) samples \(", line).group(1).replace(",", ""))  # type: ignore[union-attr]
        assert samples > 0, line

    result = run_webapp("inspect", "--json", str(folder))
    report = json.loads(result.stdout)
    assert report["capture"]["outcome"] == "interrupted"
    assert all(f["samples"] > 0 and f["seconds"] > 0 for f in report["files"])


def test_serve_marks_it_interrupted_and_history_lists_it(
    killed_capture: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "captures").mkdir(parents=True)
    target = data / "captures" / killed_capture.name
    os.rename(killed_capture, target)
    sizes = {p.name: p.stat().st_size for p in target.glob("*.stream")}
    with serve(data) as base:
        marked = json.loads((target / "capture.json").read_text())
        assert marked["outcome"] == "interrupted"
        assert marked["interrupted"]["by"].startswith("lanxi-dashboard serve")
        assert {f["file"]: f["bytes"] for m in marked["modules"] for f in m["files"]} == sizes
        listing = requests.get(f"{base}/api/captures", timeout=10).json()
        entries = listing if isinstance(listing, list) else listing["captures"]
        entry = next(c for c in entries if c["id"] == target.name)
        assert entry["outcome"] == "interrupted"
        assert sum(m["bytes"] for m in entry["modules"]) == sum(sizes.values())
