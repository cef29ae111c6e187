"""The ``capture`` command never replaces an earlier capture's files: a second capture into a
folder that already holds one is refused (exit 2) before any request reaches a module."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import FAST_EMULATOR
from webapp.emulator import EmulatedRig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(2, **FAST_EMULATOR)
    yield rig
    rig.stop()


def capture(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webapp", "capture", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def requests_since(address: str, since: float) -> list[dict]:
    """The module's logged requests that arrived at ``since`` or later (a status long poll of
    an earlier capture is logged when it ends, with the time it arrived)."""
    with urllib.request.urlopen(f"http://{address}/emulator/requests", timeout=5) as r:
        return [e for e in json.load(r) if (e.get("received") or e["time"]) >= since]


def forget_requests(address: str) -> None:
    req = urllib.request.Request(f"http://{address}/emulator/requests", method="DELETE")
    urllib.request.urlopen(req, timeout=5).close()


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_second_capture_into_the_same_folder_is_refused_before_any_request(
    rig: EmulatedRig, tmp_path: Path
):
    out = tmp_path / "out"
    first = capture(*rig.addresses, "-n", "Run", "-t", "0.5", "-o", str(out))
    assert first.returncode == 0, first.stdout + first.stderr
    before = digests(out)
    assert {"capture.json", "Run.1.stream", "Run.2.stream"} <= set(before)
    for address in rig.addresses:
        forget_requests(address)
    since = time.time()

    again = capture(*rig.addresses, "-n", "Run", "-t", "0.5", "-o", str(out))
    assert again.returncode == 2, again.stdout + again.stderr
    assert "capture.json, Run.1.stream, Run.2.stream" in again.stdout
    assert "would overwrite" in again.stdout and "-o" in again.stdout
    assert "Nothing was started" in again.stdout

    # Another name in the same folder would still replace its capture.json.
    other = capture(*rig.addresses, "-n", "Other", "-t", "0.5", "-o", str(out))
    assert other.returncode == 2, other.stdout + other.stderr
    assert "another folder" in other.stdout

    assert digests(out) == before
    for address in rig.addresses:
        assert requests_since(address, since) == []


def test_stream_files_of_the_same_name_are_refused_too(rig: EmulatedRig, tmp_path: Path):
    since = time.time()
    (tmp_path / "Run.2.stream").write_bytes(b"earlier")
    (tmp_path / "Run 2.1.stream").write_bytes(b"another capture's")  # not in the way
    refused = capture(*rig.addresses, "-n", "Run", "-t", "0.5", "-o", str(tmp_path))
    assert refused.returncode == 2
    assert "holds Run.2.stream:" in refused.stdout
    assert "pick another name with -n or another folder with -o" in refused.stdout
    assert (tmp_path / "Run.2.stream").read_bytes() == b"earlier"
    for address in rig.addresses:
        assert requests_since(address, since) == []
