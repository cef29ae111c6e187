"""A module that loses PTP lock while recording, on the real emulator: capture.json records the
span, ``inspect`` exits 1 naming the module and span, History shows it, exports carry it; a
clean capture of the same rig still reads as sample-synchronous."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from tests.support.browser import LAPTOP, shoot, watch_errors
from tests.support.emulator import FAST_EMULATOR
from tests.support.processes import serve
from webapp.analysis.export import export
from webapp.analysis.reader import Capture
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings
from webapp.capture.writer import writer_info
from webapp.emulator import EmulatedRig
from webapp.web import history
from webapp.web.app import create_app

REPO = Path(__file__).resolve().parents[2]
LOSS_AT_S, LOSS_FOR_S = 0.5, 0.5
"""Module 2 drops out of PTP lock 0.5 s into the measurement, for 0.5 s."""


def record(data_dir: Path, name: str, faults: list[str]) -> Path:
    rig = EmulatedRig.start(2, faults=faults, **FAST_EMULATOR)
    try:
        orch = Orchestrator(EventBus(), data_dir)
        orch.start(CaptureSettings(modules=rig.addresses, duration_s=2.0, name=name))
        assert orch.wait(60)
        assert orch.phase == Phase.COMPLETED, orch.last_error  # every sample is still kept
        assert orch.last_folder is not None
        return Path(orch.last_folder)
    finally:
        rig.stop()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ptp-loss")


@pytest.fixture(scope="module")
def lost(data_dir: Path) -> Path:
    return record(data_dir, "Lost", [f"2:ptp-no-lock@{LOSS_AT_S}+{LOSS_FOR_S}"])


@pytest.fixture(scope="module")
def clean(data_dir: Path) -> Path:
    return record(data_dir, "Clean", [])


def manifest(folder: Path) -> dict:
    return json.loads((folder / "capture.json").read_text())


def inspect(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webapp", "inspect", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_capture_json_records_the_span_module_2_was_not_locked(lost: Path, clean: Path):
    meta = manifest(lost)
    first, second = meta["modules"]
    assert first["ptp_unlocked"] == []
    (span,) = second["ptp_unlocked"]
    # Seen through the status poll: a little after the fault, never before it.
    assert LOSS_AT_S <= span["from_s"] < LOSS_AT_S + 0.3, span
    assert LOSS_FOR_S - 0.1 < span["to_s"] - span["from_s"] < LOSS_FOR_S + 0.3, span
    assert span["status"] == "Unlocked"
    assert span["from"] < span["to"] and span["from"].startswith(meta["created"][:10])
    quality = meta["quality"]
    assert quality["sample_synchronous"] is False and quality["verdict"] == "errors"
    assert quality["ptp_unlocked"] == [
        {"module": 2, "from_s": span["from_s"], "to_s": span["to_s"]}
    ]
    assert quality["lost_samples"] == 0 and not quality["interrupted"]

    meta = manifest(clean)
    assert [m["ptp_unlocked"] for m in meta["modules"]] == [[], []]
    assert meta["quality"]["sample_synchronous"] is True
    assert meta["quality"]["verdict"] == "ok" and meta["quality"]["ptp_unlocked"] == []


def test_inspect_exits_1_naming_the_module_and_the_span(lost: Path, clean: Path):
    (span,) = manifest(lost)["modules"][1]["ptp_unlocked"]
    text = inspect(lost)
    assert text.returncode == 1, text.stdout + text.stderr
    where = f"not locked onto PTP from {span['from_s']:.3f} s to {span['to_s']:.3f} s"
    assert f"NOT sample-synchronous from {span['from_s']:.3f} s: module 2 {where}" in text.stdout
    assert f"error   module 2: {where}" in text.stdout
    assert "Verdict: errors" in text.stdout

    as_json = inspect(lost, "--json", "--no-checksums")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert set(report) == {
        "capture",
        "files",
        "modules",
        "sync",
        "channels",
        "faults",
        "problems",
        "verdict",
    }
    sync = report["sync"]
    assert sync["sample_synchronous"] is False and sync["synchronous"] is False
    assert sync["synchronous_until_s"] == span["from_s"]
    assert [(s["module"], s["from_s"], s["to_s"]) for s in sync["ptp_unlocked"]] == [
        (2, span["from_s"], span["to_s"])
    ]

    ok = inspect(clean)
    assert ok.returncode == 0, ok.stdout
    assert "sample-synchronous: every channel's first sample at the same instant" in ok.stdout
    assert "Verdict: ok" in ok.stdout


def test_history_shows_the_ptp_loss(
    data_dir: Path, lost: Path, clean: Path, tmp_path: Path, monkeypatch
):
    app = create_app(data_dir, bus=EventBus())
    captures = {c["id"]: c for c in app.test_client().get("/api/captures").get_json()["captures"]}
    (span,) = manifest(lost)["modules"][1]["ptp_unlocked"]
    assert captures[lost.name]["outcome"] == "completed"
    assert captures[lost.name]["quality"]["ptp_unlocked"] == [
        {"module": 2, "from_s": span["from_s"], "to_s": span["to_s"]}
    ]
    assert captures[lost.name]["quality"]["sample_synchronous"] is False
    assert captures[clean.name]["quality"]["sample_synchronous"] is True
    assert captures[clean.name]["quality"]["verdict"] == "ok"

    # A capture.json without the summary (an older capture): computed from the files.
    older = tmp_path / "captures" / lost.name
    shutil.copytree(lost, older)
    meta = manifest(older)
    recorded = meta.pop("quality")
    (older / "capture.json").write_text(json.dumps(meta))
    offloaded = []

    def offload(fn, *args):
        offloaded.append(fn)
        return fn(*args)

    monkeypatch.setattr(history.runtime, "offload", offload)
    (listed,) = history.list_captures(tmp_path)
    assert listed["quality"] == recorded
    assert offloaded == [history.summarize_folder]  # read off the hub
    assert history.list_captures(tmp_path)[0]["quality"] is listed["quality"]  # cached
    assert offloaded == [history.summarize_folder]


def test_exports_carry_the_sync_statement(lost: Path, clean: Path, tmp_path: Path):
    (span,) = manifest(lost)["modules"][1]["ptp_unlocked"]
    with Capture.open(lost) as cap:
        export(cap, "hdf5", tmp_path / "lost.h5")
        export(cap, "csv", tmp_path / "lost.csv", keys=[cap.channels[0].key])
    with h5py.File(tmp_path / "lost.h5") as h5:
        assert not bool(h5.attrs["sample_synchronous"])
        assert h5.attrs["sync_statement"].startswith(
            f"NOT sample-synchronous from {span['from_s']:.3f} s: module 2"
        )
        (spans,) = [json.loads(h5.attrs["ptp_unlocked"])]
        assert [(s["module"], s["from_s"], s["to_s"]) for s in spans] == [
            (2, span["from_s"], span["to_s"])
        ]
    first_line = (tmp_path / "lost.csv").read_text().splitlines()[0]
    assert "sync: NOT sample-synchronous" in first_line and "module 2" in first_line

    with Capture.open(clean) as cap:
        export(cap, "hdf5", tmp_path / "clean.h5")
    with h5py.File(tmp_path / "clean.h5") as h5:
        assert bool(h5.attrs["sample_synchronous"])
        assert h5.attrs["sync_statement"].startswith("sample-synchronous")
        assert json.loads(h5.attrs["ptp_unlocked"]) == []


@pytest.mark.browser
def test_history_and_capture_page_show_the_loss_in_a_browser(
    data_dir: Path, lost: Path, clean: Path, browser
):
    (span,) = manifest(lost)["modules"][1]["ptp_unlocked"]
    page = browser.new_page(viewport=LAPTOP)
    errors: list[str] = []
    watch_errors(page, errors)
    with serve(data_dir) as base:
        page.goto(f"{base}/history")
        badge = page.locator(f'tr[data-capture="{lost.name}"] .badge[data-quality="ptp"]')
        badge.wait_for(timeout=20000)
        assert badge.text_content() == (
            f"PTP lost: module 2 {span['from_s']:.3f}–{span['to_s']:.3f} s"
        )
        fine = page.locator(f'tr[data-capture="{clean.name}"] .quality .badge')
        assert fine.all_text_contents() == ["clean"]
        shoot(page, "history-quality-badges")

        page.goto(f"{base}/captures/{lost.name}")
        page.wait_for_selector('#verdict[data-verdict="errors"]', timeout=20000)
        assert page.get_attribute("#sync > div", "data-synchronous") == "false"
        assert page.text_content("#sync > div").startswith(
            f"NOT sample-synchronous from {span['from_s']:.3f} s"
        )
        assert page.text_content(".ptp-spans li").startswith(
            f"Module 2 ({manifest(lost)['modules'][1]['address']}) not locked onto PTP from "
            f"{span['from_s']:.3f} s to {span['to_s']:.3f} s"
        )
        page.goto(f"{base}/captures/{clean.name}")
        page.wait_for_selector('#verdict[data-verdict="ok"]', timeout=20000)
        assert page.get_attribute("#sync > div", "data-synchronous") == "true"
        assert page.text_content("#sync > div").startswith("Sample-synchronous")
    assert errors == []


def test_history_flags_an_interrupted_capture_from_its_files(clean: Path, tmp_path: Path):
    folder = tmp_path / "captures" / clean.name
    shutil.copytree(clean, folder)
    meta = manifest(folder)
    del meta["quality"]
    meta["outcome"] = "running"  # as a writer that was killed left it
    meta["writer"] = {**writer_info(), "start_ticks": (writer_info()["start_ticks"] or 0) + 1}
    (folder / "capture.json").write_text(json.dumps(meta))
    (listed,) = history.list_captures(tmp_path)
    assert listed["outcome"] == "interrupted"
    assert listed["quality"]["interrupted"] is True
    assert listed["quality"]["sample_synchronous"] is True  # what is on disk is still in sync
    assert listed["quality"]["verdict"] == "warnings"
    # Still being written (its writer alive): no summary yet.
    meta["writer"] = writer_info()
    (folder / "capture.json").write_text(json.dumps(meta))
    (listed,) = history.list_captures(tmp_path)
    assert listed["outcome"] == "running" and listed["quality"] is None


def test_the_capture_command_says_not_sample_synchronous_and_exits_1(tmp_path: Path) -> None:
    from tests.support.processes import run_webapp

    rig = EmulatedRig.start(2, faults=["2:ptp-no-lock@0.5+0.5"], **FAST_EMULATOR)
    try:
        lost = run_webapp("capture", *rig.addresses, "-t", "2", "-o", str(tmp_path / "lost"))
        clean = run_webapp("capture", *rig.addresses, "-t", "1", "-o", str(tmp_path / "clean"))
    finally:
        rig.stop()
    assert lost.returncode == 1, lost.stdout
    assert "error: NOT sample-synchronous: PTP lock lost by module 2 from 0." in lost.stdout
    assert "Data quality: errors" in lost.stdout
    assert clean.returncode == 0, clean.stdout
    assert "Data quality: ok" in clean.stdout and "NOT sample-synchronous" not in clean.stdout
