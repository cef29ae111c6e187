"""An interrupted capture as a crash leaves it: capture.json says ``running`` for a writer that
is gone and lists no files, and a file ends in half a message. The reader finds every stream
file, reads it to its last complete message and reports the cut one with its byte count."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from webapp.analysis.integrity import build_report, format_report
from webapp.analysis.reader import Capture
from webapp.capture.writer import writer_info


def _crashed_copy(clean: Path, tmp_path: Path, cut: int) -> Path:
    folder = tmp_path / "crashed"
    shutil.copytree(clean, folder)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    writer = writer_info(child.pid)
    child.wait(10)
    meta = json.loads((folder / "capture.json").read_text())
    meta.update(outcome="running", writer=writer, ended=None)
    for m in meta["modules"]:
        m["files"] = []  # written before the files were listed
    (folder / "capture.json").write_text(json.dumps(meta))
    first = sorted(folder.glob("*.stream"))[0]
    with open(first, "r+b") as f:
        f.truncate(first.stat().st_size - cut)
    return folder


def test_a_last_message_cut_in_half_is_reported_and_the_rest_read(
    clean_capture: Path, tmp_path: Path
) -> None:
    with Capture.open(clean_capture) as full:
        full_report = build_report(full, checksums=False)
    last = full_report["files"][0]
    # Less than the smallest SignalData message: the cut falls inside the last one.
    half = 100
    folder = _crashed_copy(clean_capture, tmp_path, half)
    with Capture.open(folder) as cap:
        report = build_report(cap, checksums=False)
    assert report["capture"]["outcome"] == "interrupted"
    files = {f["file"]: f for f in report["files"]}
    assert set(files) == {f["file"] for f in full_report["files"]}  # unlisted, yet read
    cut = files[last["file"]]
    assert cut["bytes"] == last["bytes"] - half
    assert (
        cut["truncated_bytes"] > 0
        and cut["readable_bytes"] + cut["truncated_bytes"] == (cut["bytes"])
    )
    assert cut["messages"] == last["messages"] - 1
    assert cut["samples"] > 0
    other = [f for f in report["files"] if f["file"] != last["file"]]
    assert all(
        f["messages"] == g["messages"] for f, g in zip(other, full_report["files"][1:], strict=True)
    )
    text = format_report(report)
    assert "interrupted" in text
    assert f"last {cut['truncated_bytes']:,} bytes incomplete" in text
