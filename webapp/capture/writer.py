"""Who writes a capture, and whether that process is still alive (docs/capture-format.md,
``writer``). Standard library only: the analysis reader uses it too."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

INTERRUPTED = "interrupted"
INTERRUPTED_REASON = "the recording process ended without closing the capture"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), which tells
    a reused pid apart; None when the process does not exist or the system cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def writer_info(pid: int | None = None) -> dict[str, Any]:
    """The ``writer`` object of capture.json for this process (or ``pid``)."""
    pid = os.getpid() if pid is None else pid
    return {
        "host": os.uname().nodename,
        "pid": pid,
        "start_ticks": process_start_ticks(pid),
        "boot_id": _boot_id(),
    }


def writer_alive(writer: Any) -> bool | None:
    """Whether the process that wrote a capture still runs: False when it is on this host and
    gone (the pid does not exist, its start time differs: a reused pid, or the machine booted
    since); None when it cannot be told (another host, or no writer recorded)."""
    if not isinstance(writer, dict) or not isinstance(writer.get("pid"), int):
        return None
    if writer.get("host") != os.uname().nodename:
        return None
    boot = writer.get("boot_id") or ""
    if boot and _boot_id() and boot != _boot_id():
        return False
    if not Path("/proc/self/stat").exists():
        # No /proc (not Linux): only whether the pid exists can be told.
        try:
            os.kill(writer["pid"], 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # exists, owned by someone else
        return True
    started = process_start_ticks(writer["pid"])
    if started is None:
        return False
    recorded = writer.get("start_ticks")
    return recorded is None or recorded == started


def effective_outcome(document: dict[str, Any]) -> str:
    """The outcome a reader reports: as written, except that ``running`` whose writer is known
    dead is ``interrupted``. A capture.json without a writer that says ``running`` is read as
    written (it may come from another machine, or an older version)."""
    outcome = str(document.get("outcome", ""))
    if outcome == "running" and writer_alive(document.get("writer")) is False:
        return INTERRUPTED
    return outcome


def read_as_interrupted(document: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    """``document`` with the outcome a reader reports; when interrupted, each listed file's
    bytes are what the folder holds (capture.json may be a few seconds behind)."""
    outcome = effective_outcome(document)
    if outcome != INTERRUPTED:
        return document
    document["outcome"] = INTERRUPTED
    if not document.get("reason"):
        document["reason"] = INTERRUPTED_REASON
    if folder is None:
        return document
    for module in document.get("modules") or []:
        if not isinstance(module, dict):
            continue
        total = 0
        for entry in module.get("files") or []:
            if not isinstance(entry, dict):
                continue
            with contextlib.suppress(OSError, KeyError):
                entry["bytes"] = (Path(folder) / str(entry["file"])).stat().st_size
            total += int(entry.get("bytes") or 0)
        module["bytes"] = total
    return document
