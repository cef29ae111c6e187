"""``serve`` on a non-loopback address without users refuses to start, at once, saying how to
create one (run as a real process, as a user would)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_on_all_addresses_without_users_exits_with_a_clear_message(tmp_path, host):
    data_dir = tmp_path / "data"
    port = free_port()
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "webapp",
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LANXI_DATA_DIR": ""},
    )
    assert proc.returncode != 0
    assert "refusing to listen" in proc.stderr
    assert "lanxi-dashboard user add NAME --role admin" in proc.stderr
    assert str(data_dir.resolve()) in proc.stderr
    assert "LAN-XI dashboard on" not in proc.stdout  # it never served
    assert time.monotonic() - started < 30
    assert not (data_dir / "users.json").exists()
