"""Capture folders and ``capture.json`` (the contract is docs/capture-format.md).

``capture.json`` is written when the recording starts (outcome ``running``), again as soon as
the stream files exist (their names listed), every few seconds while recording (bytes so far)
and when it ends; always atomically (temporary file, fsync, rename), so a reader never sees
half a file. Its ``writer`` names the writing process, so a reader that finds ``running`` can
tell whether that process is still alive or the capture was interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.capture.events import Event
from webapp.capture.writer import effective_outcome, read_as_interrupted, writer_info

log = logging.getLogger(__name__)

FORMAT = "lanxi-capture/1"
CAPTURE_JSON = "capture.json"
CAPTURES_DIR = "captures"

TIMELINE_EXCLUDED = frozenset({"levels", "waveform", "stream-stats", "recording-time"})
"""High-rate live data that the timeline leaves out (recording-time comes four times a second
for the whole recording: kept, it would grow the session's and the capture's event lists without
bound)."""

QUALITY_CHANGES_LISTED = 200
"""Data-quality changes a timeline lists per channel; further ones are only counted (a
clipping flag that flips all the time must not grow the timeline without bound)."""


class QualityChangeLimit:
    """Lists the first :data:`QUALITY_CHANGES_LISTED` data-quality changes of each channel and
    counts the rest, so a timeline stays bounded and no change goes unaccounted for."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = QUALITY_CHANGES_LISTED if limit is None else limit
        self.listed: dict[tuple[str, int], int] = {}
        self.unlisted: dict[tuple[str, int], int] = {}
        """Per (module, channel): changes counted but not listed."""

    def admit(self, event: Event) -> bool:
        """Whether the timeline lists ``event`` (every event but surplus data-quality ones)."""
        if event.kind != "data-quality":
            return True
        key = (getattr(event, "module", ""), getattr(event, "channel", 0))
        listed = self.listed.get(key, 0)
        if listed < self.limit:
            self.listed[key] = listed + 1
            return True
        self.unlisted[key] = self.unlisted.get(key, 0) + 1
        return False


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def new_capture_id(name: str, data_dir: Path | None = None, now: float | None = None) -> str:
    """``20261123-221530-My_Measurement``; a suffix keeps ids unique within ``data_dir``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    slug = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", name)).strip("_") or "capture"
    base = f"{stamp}-{slug}"
    if data_dir is None:
        return base
    root = Path(data_dir) / CAPTURES_DIR
    candidate, n = base, 2
    while (root / candidate).exists():
        candidate = f"{base}-{n}"
        n += 1
    return candidate


def files_in_the_way(folder: Path, name: str) -> list[str]:
    """The files a capture named ``name`` written straight into ``folder`` would replace:
    ``capture.json`` and ``NAME.<n>.stream`` / ``NAME.<n>.ch<c>.stream`` (capture.json first)."""
    own = re.compile(rf"^{re.escape(name)}\.\d+(?:\.ch\d+)?\.stream$")
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    taken = [n for n in names if n == CAPTURE_JSON or own.match(n)]
    return sorted(taken, key=lambda n: (n != CAPTURE_JSON, n))


def timeline_entry(event: Event, last_ptp: dict[str, str]) -> dict[str, Any] | None:
    """The event as a timeline entry, or None if the timeline leaves it out (live data, and
    PTP progress that only advanced the elapsed time)."""
    if event.kind in TIMELINE_EXCLUDED:
        return None
    entry = event.to_dict()
    if event.kind == "ptp":
        module, status = entry.get("module", ""), entry.get("status", "")
        if last_ptp.get(module) == status:
            return None
        last_ptp[module] = status
    return entry


@dataclass
class FileRecord:
    file: str
    channels: list[int]
    bytes: int = 0
    sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "channels": self.channels,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass
class ModuleRecord:
    number: int
    address: str
    role: str
    type: str = ""
    serial: int = 0
    name: str = ""
    firmware: str = ""
    hardware: str = ""
    setup: dict[str, Any] | None = None
    transducers: list[dict[str, Any] | None] | None = None
    signals: list[dict[str, int]] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    first_ticks: int | None = None

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "address": self.address,
            "role": self.role,
            "type": self.type,
            "serial": self.serial,
            "name": self.name,
            "firmware": self.firmware,
            "hardware": self.hardware,
            "setup": self.setup,
            "transducers": self.transducers,
            "signals": self.signals,
            "files": [f.to_json() for f in self.files],
            "bytes": self.bytes,
            "first_ticks": self.first_ticks,
        }


@dataclass
class CaptureRecord:
    """Everything ``capture.json`` says about one capture."""

    folder: Path
    id: str
    name: str
    created: float
    requested_duration_s: float | None
    ptp_domain: int | None
    master: str
    bandwidth: str | None
    sample_rate: int | None
    streaming: str
    modules: list[ModuleRecord]
    outcome: str = "running"
    reason: str = ""
    recorded_s: float | None = None
    start_ticks: int | None = None
    ended: float | None = None
    left_non_idle: list[dict[str, Any]] = field(default_factory=list)
    """Modules the teardown could not return to Idle (``number``, ``address``, ``state``,
    ``reason``); filled in after the capture's end, once the teardown is done."""
    events: list[dict[str, Any]] = field(default_factory=list)
    writer: dict[str, Any] = field(default_factory=lambda: writer_info())
    _last_ptp: dict[str, str] = field(default_factory=dict)
    quality: QualityChangeLimit = field(default_factory=QualityChangeLimit)

    def add_event(self, event: Event) -> None:
        entry = timeline_entry(event, self._last_ptp)
        if entry is not None and self.quality.admit(event):
            self.events.append(_jsonable(entry))

    def to_json(self) -> dict[str, Any]:
        start_time = None
        if self.start_ticks is not None:
            start_time = iso(self.start_ticks / (1 << 32))
        return {
            "format": FORMAT,
            "id": self.id,
            "name": self.name,
            "created": iso(self.created),
            "ended": iso(self.ended) if self.ended is not None else None,
            "outcome": self.outcome,
            "reason": self.reason,
            "requested_duration_s": self.requested_duration_s,
            "recorded_s": self.recorded_s,
            "start_ticks": self.start_ticks,
            "start_time": start_time,
            "ptp": {"domain": self.ptp_domain, "master": self.master}
            if self.ptp_domain is not None
            else None,
            "bandwidth": self.bandwidth,
            "sample_rate": self.sample_rate,
            "streaming": self.streaming,
            "modules": [m.to_json() for m in self.modules],
            "writer": self.writer,
            "left_non_idle": self.left_non_idle,
            "events": self.events,
        }

    def write(self) -> None:
        """Write capture.json atomically (temporary file, fsync, rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        document = self.to_json()
        document["events"] = list(self.events)  # a snapshot: events may still be added
        path = self.folder / CAPTURE_JSON

        def write_file() -> None:
            # Serialising a big capture takes a while: off the hub, like the file writing.
            write_json_atomic(path, document)

        runtime.offload(write_file)


def _jsonable(value: Any) -> Any:
    """Events may carry numpy scalars or bytes; capture.json holds plain JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


def read_capture(folder: Path) -> dict[str, Any]:
    """capture.json as written; a ``running`` capture whose writer is dead reads as
    ``interrupted`` (see :func:`webapp.capture.writer.effective_outcome`)."""
    with open(Path(folder) / CAPTURE_JSON, encoding="utf-8") as f:
        document = json.load(f)
    if isinstance(document, dict):
        document = read_as_interrupted(document, Path(folder))
    return document


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write a JSON file atomically (temporary file, fsync, rename, fsync of the folder)."""
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_interrupted(folder: Path, by: str) -> dict[str, Any] | None:
    """Rewrite a dead writer's ``running`` capture.json as ``interrupted`` (atomically), with
    when and by whom it was marked and how far each file got. Returns the new document, or None
    when the capture is not one to mark (finished, or its writer alive or unknown)."""
    path = Path(folder) / CAPTURE_JSON
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    if not isinstance(document, dict) or effective_outcome(document) != "interrupted":
        return None
    if document.get("outcome") != "running":
        return None
    document = read_as_interrupted(document, Path(folder))
    document["interrupted"] = {"marked": iso(time.time()), "by": by}
    write_json_atomic(path, document)
    return document


def mark_interrupted_captures(data_dir: Path, by: str) -> list[dict[str, Any]]:
    """At start-up: mark every capture under ``data_dir`` whose writer died while it was
    ``running`` as ``interrupted``; returns the documents marked (an unreadable one is
    logged and left)."""
    root = Path(data_dir) / CAPTURES_DIR
    marked: list[dict[str, Any]] = []
    if not root.is_dir():
        return marked
    for folder in sorted(root.iterdir()):
        if not (folder / CAPTURE_JSON).is_file():
            continue
        try:
            document = mark_interrupted(folder, by)
        except (OSError, ValueError) as exc:
            log.warning("could not check %s: %s", folder / CAPTURE_JSON, exc)
            continue
        if document is not None:
            log.warning("capture %s was interrupted; marked as such", folder.name)
            marked.append(document)
    return marked


def list_captures(data_dir: Path) -> list[dict[str, Any]]:
    """Every readable capture.json under ``<data_dir>/captures``, newest first."""
    root = Path(data_dir) / CAPTURES_DIR
    out = []
    if not root.is_dir():
        return out
    for folder in root.iterdir():
        if not (folder / CAPTURE_JSON).is_file():
            continue
        try:
            out.append(read_capture(folder))
        except (OSError, ValueError) as exc:
            log.warning("unreadable %s: %s", folder / CAPTURE_JSON, exc)
    out.sort(key=lambda c: c.get("created", ""), reverse=True)
    return out
