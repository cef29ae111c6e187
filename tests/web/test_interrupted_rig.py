"""Start-up over a data folder holding a capture whose process died: the dashboard marks it
interrupted (atomically, saying when and by whom) and the Rig page says which of its modules
that capture left recording."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from webapp.capture.writer import writer_info
from webapp.web.app import create_app

ADDRESS = "127.0.22.31"


def _dead_writer() -> dict:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    writer = writer_info(child.pid)
    child.wait(10)
    return writer


def _capture(data: Path, capture_id: str, writer: dict) -> Path:
    folder = data / "captures" / capture_id
    folder.mkdir(parents=True)
    (folder / "run.1.stream").write_bytes(b"\0" * 1234)
    meta = {
        "format": "lanxi-capture/1",
        "id": capture_id,
        "name": "run",
        "created": "2026-12-06T10:15:00+00:00",
        "outcome": "running",
        "reason": "",
        "modules": [
            {
                "number": 1,
                "address": ADDRESS,
                "role": "master",
                "files": [{"file": "run.1.stream", "channels": [1], "bytes": 0, "sha256": ""}],
                "bytes": 0,
            }
        ],
        "writer": writer,
        "events": [],
    }
    (folder / "capture.json").write_text(json.dumps(meta))
    return folder


def test_start_up_marks_dead_captures_and_the_rig_says_why(tmp_path: Path, bus, orchestrator):
    data = tmp_path / "data"
    data.mkdir()
    (data / "rig.json").write_text(json.dumps({"modules": [ADDRESS], "master": ADDRESS}))
    dead = _capture(data, "20261206-101500-run", _dead_writer())
    alive = _capture(data, "20261206-101600-run", writer_info())  # this process: still running
    app = create_app(data, orchestrator=orchestrator, bus=bus, push_interval_s=0.02)
    marked = json.loads((dead / "capture.json").read_text())
    assert marked["outcome"] == "interrupted"
    assert marked["interrupted"]["by"].startswith("lanxi-dashboard serve")
    assert marked["modules"][0]["files"][0]["bytes"] == 1234
    assert json.loads((alive / "capture.json").read_text())["outcome"] == "running"
    assert not list(dead.glob(".*.tmp"))
    rig = app.test_client().get("/api/rig").get_json()
    note = rig["modules"][0]["left_by"]
    assert note == "left recording by the interrupted capture run (2026-12-06 10:15 UTC)"
