"""The integrity report: counts, synchronism, gaps, faults and checksums."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.analysis.helpers import RATE
from webapp.analysis.integrity import build_report, format_report
from webapp.analysis.reader import Capture


def report_of(folder: Path, **kw: bool) -> dict:
    with Capture.open(folder) as cap:
        return build_report(cap, **kw)


def test_clean_capture_is_ok_and_synchronous(clean_capture: Path) -> None:
    report = report_of(clean_capture, levels=True)
    assert report["verdict"] == "ok", report["problems"]
    assert [f["checksum"] for f in report["files"]] == ["ok", "ok"]
    sync = report["sync"]
    assert sync["synchronous"] and sync["on_grid"]
    meta = json.loads((clean_capture / "capture.json").read_text())
    assert sync["common_start_ticks"] == meta["start_ticks"]
    assert sync["common_samples"] == {str(RATE): 8 * 4096}
    assert [m["samples"] for m in report["modules"]] == [
        {"m1-ch1": 32768, "m1-ch2": 32768},
        {"m2-ch1": 32768, "m2-ch3": 32768},
    ]
    mic = report["channels"][0]
    assert mic["past_common_end"] == 0 and mic["lost"] == 0
    assert mic["level"]["db"] == pytest.approx(94.0, abs=0.2)
    assert "4189 s/n 2600001" in mic["transducer_label"]
    text = format_report(report)
    assert "sample-synchronous" in text and "Verdict: ok" in text
    json.dumps(report)  # the dashboard serves it as is


def test_faulty_capture_names_every_problem(faulty_capture: Path) -> None:
    report = report_of(faulty_capture)
    assert report["verdict"] == "errors"
    sync = report["sync"]
    assert not sync["synchronous"] and sync["on_grid"]
    by_key = {c["key"]: c for c in report["channels"]}
    mic = by_key["m1-ch1"]
    assert mic["lost"] == 2 * 4096
    assert mic["gaps"][0]["time_s"] == pytest.approx(5 * 4096 / RATE)
    assert mic["flagged_samples"]["overload"] == 2 * 4096
    assert mic["overruns"] == 1
    # Module 2 started a block late and stopped two blocks later than module 1.
    assert by_key["m2-ch1"]["past_common_end"] == 3 * 4096
    assert by_key["m1-ch1"]["before_common_start"] == 4096
    assert by_key["m1-ch1"]["past_common_end"] == 4096
    assert by_key["m1-ch2"]["past_common_end"] == 0
    assert report["modules"][0]["samples_before_common_start"] == 4096
    assert report["files"][0]["truncated_bytes"] == 12324 - 1000
    assert report["faults"][0]["detail"] == "anol=curr"
    messages = " | ".join(p["message"] for p in report["problems"])
    for needle in ("samples missing", "overload flagged", "incomplete SignalData", "apart"):
        assert needle in messages
    text = format_report(report)
    assert "8,192 lost in 1 gaps" in text and "Verdict: errors" in text


def test_changed_file_fails_its_checksum(clean_capture: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(clean_capture, folder)
    path = folder / "clean.2.stream"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one sample value: framing still fine
    path.write_bytes(bytes(data))
    report = report_of(folder)
    assert [f["checksum"] for f in report["files"]] == ["ok", "mismatch"]
    assert report["verdict"] == "errors"
    assert report_of(folder, checksums=False)["verdict"] == "ok"


def test_missing_file_and_unfinished_capture(clean_capture: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(clean_capture, folder)
    (folder / "clean.2.stream").unlink()
    meta = json.loads((folder / "capture.json").read_text())
    meta["outcome"] = "running"
    (folder / "capture.json").write_text(json.dumps(meta))
    report = report_of(folder)
    messages = [p["message"] for p in report["problems"]]
    assert any("missing" in m for m in messages)
    assert any("still 'running'" in m for m in messages)
    assert [m["number"] for m in report["modules"]] == [1, 2]
    assert report["modules"][1]["first_sample_ticks"] is None


def test_scale_factor_checked_against_the_setup(clean_capture: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(clean_capture, folder)
    meta = json.loads((folder / "capture.json").read_text())
    meta["modules"][0]["setup"]["channels"][0]["transducer"]["sensitivity"] = 0.04
    (folder / "capture.json").write_text(json.dumps(meta))
    report = report_of(folder, checksums=False)
    assert any("differs from the setup" in p["message"] for p in report["problems"])


def test_running_capture_lists_files_without_size_or_checksum(
    clean_capture: Path, tmp_path: Path
) -> None:
    """What capture.json holds while recording (or after a crash): files, no size, no hash."""
    folder = tmp_path / "copy"
    shutil.copytree(clean_capture, folder)
    meta = json.loads((folder / "capture.json").read_text())
    meta["outcome"] = "running"
    for mod in meta["modules"]:
        for f in mod["files"]:
            f["bytes"], f["sha256"] = 0, ""
    (folder / "capture.json").write_text(json.dumps(meta))
    report = report_of(folder)
    assert [f["checksum"] for f in report["files"]] == ["not recorded", "not recorded"]
    assert report["verdict"] == "warnings"
    assert [p["where"] for p in report["problems"]] == ["capture.json"]
