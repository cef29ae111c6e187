"""A minimal capture folder as the capture store writes it: one 3-byte stream file and its
capture.json, for the HTTP API's history, download and sharing tests."""

from __future__ import annotations

import json
from pathlib import Path

CAPTURE_ID = "20260101-120000-Run"


def make_capture(data_dir: Path, capture_id: str = CAPTURE_ID, address: str = "127.0.0.1") -> Path:
    folder = data_dir / "captures" / capture_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Run.1.stream").write_bytes(b"\x01\x02\x03")
    manifest = {
        "format": "lanxi-capture/1",
        "id": capture_id,
        "name": "Run",
        "created": "2026-01-01T12:00:00+00:00",
        "outcome": "completed",
        "reason": "",
        "recorded_s": 5.0,
        "requested_duration_s": 5.0,
        "modules": [{"number": 1, "address": address, "role": "master", "bytes": 3}],
    }
    (folder / "capture.json").write_text(json.dumps(manifest))
    return folder
