"""``bench/fault_drills.py`` on a few drills, as a user runs it: every row holds (no received
byte missing from the disk, every block the emulator sent is in the files after a clean stop,
every module left non-Idle is named, the verdict is the one the data deserves)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.processes import REPO


def drills(*only: str) -> list[dict]:
    done = subprocess.run(
        [
            sys.executable,
            "bench/fault_drills.py",
            "--address",
            "127.0.45.1",
            "--port",
            "0",
            "--seconds",
            "1",
            "--only",
            ",".join(only),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = json.loads(done.stdout)
    assert done.returncode == (0 if all(r["holds"] for r in rows) else 1), done.stderr
    return rows


def test_the_drills_hold() -> None:
    rows = {r["drill"]: r for r in drills("baseline", "sigterm", "sigkill", "dead-slave")}
    baseline, sigterm, sigkill, dead = (
        rows[k] for k in ("baseline", "sigterm", "sigkill", "dead-slave")
    )
    failing = {
        k: (r["outcome"], r["verdict"], r["notes"]) for k, r in rows.items() if not r["holds"]
    }
    assert not failing, failing
    assert baseline["verdict"] == "ok" and baseline["status"] == 0
    assert baseline["received_bytes"] == baseline["disk_bytes"] > 0
    assert baseline["sent_blocks"] == baseline["disk_blocks"] > 0  # every block sent is on disk
    assert sigterm["outcome"] == "stopped" and sigterm["non_idle"] == []
    assert sigterm["sent_blocks"] == sigterm["disk_blocks"] > 0
    assert sigkill["outcome"] == "interrupted" and len(sigkill["non_idle"]) == 2
    assert dead["status"] == 1 and [m.split(" (")[0] for m in dead["non_idle"]] == ["module 2"]
