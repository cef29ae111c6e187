"""``serve`` on a non-loopback address without users refuses to start, at once, saying how to
create one (run as a real process, as a user would)."""

from __future__ import annotations

import os
import time

import pytest

from tests.support.net import free_port
from tests.support.processes import run_webapp


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_on_all_addresses_without_users_exits_with_a_clear_message(tmp_path, host):
    data_dir = tmp_path / "data"
    port = free_port()
    started = time.monotonic()
    proc = run_webapp(
        "serve", "--host", host, "--port", str(port), "--data-dir", str(data_dir),
        env={**os.environ, "LANXI_DATA_DIR": ""},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "refusing to listen" in proc.stderr
    assert "lanxi-dashboard user add NAME --role admin" in proc.stderr
    assert str(data_dir.resolve()) in proc.stderr
    assert "LAN-XI dashboard on" not in proc.stdout  # it never served
    assert time.monotonic() - started < 30
    assert not (data_dir / "users.json").exists()
