"""A full disk: ``capture`` refuses to start when the folder's disk cannot take the margin (the
path and figures named, nothing but reads sent to any module), and stops cleanly before the
disk runs out, so capture.json is complete and every byte received is in the files. The disk
is a small tmpfs (as root; skipped where mount is not permitted)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.streamcheck import check_file
from tests.support.emulator import FAST_EMULATOR
from tests.support.processes import run_webapp
from webapp.capture.diskspace import DiskWatch, reserve_bytes, stream_rate
from webapp.emulator import EmulatedRig
from webapp.openapi.client import ModuleClient


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    mounted: list[Path] = []

    def mount(size_kb: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(2, **FAST_EMULATOR)
    yield rig
    rig.stop()


def writes(rig: EmulatedRig) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for m in rig.modules
        for e in m.emulator.requests
        if e["method"] != "GET"
    ]


def test_a_disk_without_room_for_the_margin_is_refused_before_anything_starts(
    rig, small_disk
) -> None:
    disk = small_disk(2048)
    done = run_webapp(
        "capture", *rig.addresses, "-t", "5", "--bandwidth", "6.4 kHz", "-o", str(disk / "run")
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: {disk} has" in done.stdout
    assert "30 s at the expected" in done.stdout
    assert writes(rig) == []  # module/info was read, nothing was set up
    assert not (disk / "run").exists()  # nothing created either


def test_a_capture_stops_cleanly_before_the_disk_is_full(rig, small_disk) -> None:
    rate = stream_rate(12, 16384)  # 2 modules x 6 channels at 6.4 kHz bandwidth
    size_kb = int((reserve_bytes(rate) + 1.5 * rate) / 1024)  # about 1.5 s of data
    disk = small_disk(size_kb)
    folder = disk / "run"
    done = run_webapp(
        "capture", *rig.addresses, "--until-stopped", "--bandwidth", "6.4 kHz",
        "--disk-margin", "0.5", "-o", str(folder), timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout
    assert "error: stopped before the disk ran out: the disk of" in done.stdout
    meta = json.loads((folder / "capture.json").read_text())
    assert meta["outcome"] == "stopped" and meta["reason"].startswith("stopped before the disk")
    assert meta["recorded_s"] > 0.5
    for m in meta["modules"]:
        f = m["files"][0]
        assert (folder / f["file"]).stat().st_size == f["bytes"] > 0
        check_file(folder / f["file"])
    assert [ModuleClient(a).onchange()["moduleState"] for a in rig.addresses] == ["Idle"] * 2


def test_the_watch_warns_once_then_stops_at_the_reserve(tmp_path: Path) -> None:
    rate = 1e6
    free = [int(40e6)]
    now = [0.0]
    watch = DiskWatch(tmp_path, rate, 30.0, lambda: now[0], free=lambda _p: free[0])
    assert watch.check() == (None, None)  # 40 MB: room for more than 30 s
    free[0], now[0] = int(20e6), 1.0
    low, stop = watch.check()
    assert low and "about 16 s of recording left" in low and stop is None
    now[0] = 2.0
    assert watch.check() == (None, None)  # said once
    free[0], now[0] = reserve_bytes(rate) - 1, 3.0
    low, stop = watch.check()
    assert low is None and stop and "nearly full" in stop
