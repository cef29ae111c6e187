"""``lanxi-dashboard emulate`` as a command: addresses, types, faults, clean exit."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def test_emulate_command_runs_modules_on_consecutive_addresses() -> None:
    cmd = [
        sys.executable,
        "-m",
        "webapp",
        "emulate",
        "--modules",
        "2",
        "--address",
        "127.0.1.51",
        "--port",
        "0",
        "--type",
        "3160,3677",
        "--fault",
        "1:http-500:create",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        urls = [re.search(r"at (http://\S+/rest/rec)", line).group(1) for line in lines]  # type: ignore[union-attr]
        assert urls[0].startswith("http://127.0.1.51:") and urls[1].startswith("http://127.0.1.52:")
        types = [
            requests.get(u + "/module/info", timeout=5).json()["module"]["type"]["number"]
            for u in urls
        ]
        assert types == ["3160", "3677"]
        assert requests.put(urls[0] + "/open", timeout=5).status_code == 200
        assert requests.put(urls[0] + "/create", timeout=5).status_code == 500
        assert requests.put(urls[1] + "/open", timeout=5).status_code == 200
        assert requests.put(urls[1] + "/create", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
    assert rc == 0
    log = proc.stderr.read()  # type: ignore[union-attr]
    assert re.search(r"127\.0\.1\.51:\d+ PUT /rest/rec/create 500", log), log


def test_emulate_rejects_a_bad_fault_spec() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "webapp", "emulate", "--port", "0", "--fault", "1:meltdown"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "unknown fault kind" in run.stderr
