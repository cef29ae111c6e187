"""HBK's own clients against the emulator.

* The unmodified multi-module tutorial script (the project's reference client, kept in the
  shared reference folder next to the repository) runs against three modules started by
  ``lanxi-dashboard emulate`` on port 80 of three loopback addresses, exactly as against real
  modules; its three .stream files must parse strictly, interpret every signal before its data,
  hold the measured duration, have equally long signals per module and identical first-sample
  times (and an identical 160 Hz reference phase) on all modules.
* A client following the single-module tutorial flow, in-process and on port 80.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from streamcheck import StreamReport, check_file, tone_phase

from tests.support.net import port_bindable
from tests.support.processes import REPO, Emulate
from webapp.emulator.rig import PTP_TONE_HZ

from .tutorial_clients import single_module_capture

SEED = REPO.parent / "shared" / "seed" / "streaming_multi_module.py"
ADDRESSES = ["127.0.1.41", "127.0.1.42", "127.0.1.43"]
SECONDS = 2


@pytest.fixture
def emulate_cli():
    """``lanxi-dashboard emulate`` on port 80 of 127.0.1.41-43 (as real modules)."""
    if not port_bindable(ADDRESSES[0], 80):
        pytest.skip("port 80 of 127.0.1.41 cannot be bound here (needs root or a free port)")
    emulate = Emulate(
        "--modules", "3", "--address", ADDRESSES[0], "--port", "80",
        "--ptp-lock-seconds", "1", "--teds-seconds", "0.3", "--settle-seconds", "0.2",
    )  # fmt: skip
    try:
        ready = emulate.ready(3)
        assert all(line.startswith("module ") for line in ready), (ready, emulate.stderr())
        yield emulate.proc
    finally:
        assert emulate.stop() == 0


def _check_tutorial_files(paths: list[Path], seconds: float) -> list[StreamReport]:
    reports = [check_file(p, keep_values=True) for p in paths]
    firsts = set()
    phases = []
    for path, report in zip(paths, reports, strict=True):
        assert report.signals, f"{path.name}: no signals"
        counts = {sig.samples for sig in report.signals.values()}
        assert len(counts) == 1, f"{path.name}: signals of unequal length {counts}"
        for sig in report.signals.values():
            duration = sig.samples / sig.sample_rate
            # The client stops at the first status answer (one a second) after its own clock
            # says the time is up: normally right after T0 + seconds, one status later if its
            # clock started after T0 (a slow answer to the start request on a loaded machine).
            assert seconds <= duration < seconds + 1.2, f"{path.name}: {duration} s"
            assert not sig.gaps and not sig.qualities
            firsts.add(sig.first_time)
        ref = report.signal(3)
        frac = (ref.first_time % (1 << 32)) / (1 << 32)
        phases.append(tone_phase(ref.values().astype(float), ref.sample_rate, PTP_TONE_HZ, frac))
    assert len(firsts) == 1, "first-sample times differ between modules"
    assert max(phases) - min(phases) < 1e-3, f"reference tone phases differ: {phases}"
    return reports


@pytest.mark.port80
def test_unmodified_multi_module_tutorial(emulate_cli, tmp_path: Path) -> None:
    if not SEED.exists():
        pytest.skip(f"the reference client is not at {SEED} (shared folder beside the repo)")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run = subprocess.run(
        [sys.executable, str(SEED), *ADDRESSES, "-t", str(SECONDS), "-n", "tutorial"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Measurement stopped" in run.stdout
    paths = [tmp_path / f"tutorial.{i}.stream" for i in (1, 2, 3)]
    reports = _check_tutorial_files(paths, SECONDS)
    assert sorted(reports[0].signals) == [1, 2, 3, 4, 5, 6]
    # The master (listed first) got its measurements POST last: it is the trigger.
    posts = []
    for addr in ADDRESSES:
        log = requests.get(f"http://{addr}/emulator/requests", timeout=5).json()
        posts.append(next(e["time"] for e in log if e["path"].endswith("/measurements")))
        assert log[-1]["path"].endswith("/syncmode")  # back to stand-alone at the end
    assert posts[0] == max(posts)

    # The single-module tutorial flow on the same (now Idle, stand-alone) module, port 80.
    out = tmp_path / "single.stream"
    single_module_capture(ADDRESSES[0], 1, out)
    (report,) = _check_tutorial_files([out], 1)
    assert report.signal(1).descriptors["unit"] == "Pa"


def test_single_module_tutorial_flow(start_rig, tmp_path: Path) -> None:
    module = start_rig(1, teds_seconds=0.2).modules[0]
    out = tmp_path / "single.stream"
    t0 = time.monotonic()
    status = single_module_capture(module.address, 1, out)
    assert time.monotonic() - t0 < 10
    assert status["detectionPolls"] > 0, "detection was still running when first polled"
    assert status["recordingStatus"]["timeElapsed"] >= "00:00:01"
    (report,) = _check_tutorial_files([out], 1)
    assert [s.descriptors["unit"] for s in report.signals.values()][:3] == ["Pa", "m/s^2", "V"]
    log = requests.get(f"{module.url}/emulator/requests", timeout=5).json()
    assert log[0]["path"] == "/rest/rec/module/time" and log[0]["body"].isdigit()
    assert [e["status"] for e in log] == [200] * len(log)
