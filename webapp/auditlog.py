"""Who did what and when: append-only JSON lines in ``<data_dir>/audit.log``.

Each entry is one ``write`` on a descriptor opened with O_APPEND, so lines from concurrent
writers (the dashboard and the ``user`` command) never interleave, and nothing ever rewrites
the file. Reading takes the tail without loading the whole file.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.log"
_CHUNK = 64 * 1024


class AuditLog:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / AUDIT_FILE
        self._lock = threading.Lock()

    def append(self, action: str, actor: str, **details: Any) -> dict[str, Any]:
        entry = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "actor": actor,
            "action": action,
            **details,
        }
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        return entry

    def tail(self, limit: int = 200) -> list[dict[str, Any]]:
        """The last ``limit`` entries, oldest first (lines that do not parse are skipped)."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return []
        with fh:
            end = fh.seek(0, os.SEEK_END)
            data = b""
            pos = end
            while pos > 0 and data.count(b"\n") <= limit:
                step = min(_CHUNK, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
        lines = data.splitlines()
        if pos > 0:
            lines = lines[1:]  # the first line may be cut
        out = []
        for raw in lines[-limit:] if limit > 0 else []:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out
