"""A second ``serve`` on a port a dashboard already listens on exits 2 naming the address,
instead of sharing the port through SO_REUSEPORT (the kernel would split requests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from tests.support.processes import REPO, serve, webapp_command

HOST = "127.0.25.1"


def test_second_serve_on_a_taken_port_exits_2(tmp_path: Path):
    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    first_dir.mkdir()
    second_dir.mkdir()
    with serve(first_dir, host=HOST) as url:
        port = url.rsplit(":", 1)[1].strip("/")
        second = subprocess.run(
            webapp_command("serve", "--host", HOST, "--port", port, "--data-dir", str(second_dir)),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"http://{HOST}:{port}/" in second.stderr
        assert "in use" in second.stderr
        # Every request still reaches the first dashboard.
        for _ in range(20):
            assert requests.get(f"{url}/api/state", timeout=5).status_code == 200
