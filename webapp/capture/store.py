"""Capture folders and ``capture.json`` (the contract is docs/capture-format.md).

``capture.json`` is written when the recording starts (outcome ``running``), again as soon as
the stream files exist (their names listed), every few seconds while recording (bytes so far)
and when it ends (then once more with the quality summary of its files, see
``webapp.analysis.quality``); always atomically (temporary file, fsync, rename), so a reader never sees
half a file. Its ``writer`` names the writing process, so a reader that finds ``running`` can
tell whether that process is still alive or the capture was interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from webapp import runtime, statefile
from webapp.capture.events import Event, PtpLockChanged
from webapp.capture.writer import effective_outcome, read_as_interrupted, writer_info

log = logging.getLogger(__name__)

FORMAT = "lanxi-capture/1"
CAPTURE_JSON = "capture.json"
CAPTURES_DIR = "captures"

TIMELINE_EXCLUDED = frozenset(
    {"levels", "waveform", "stream-stats", "recording-time", "monitor", "sound-levels",
     "spectrum", "frf"}
)  # fmt: skip
"""High-rate live data that the timeline leaves out (recording-time comes four times a second
for the whole recording; sound levels, spectra and live FRF cross spectra a few times a second
while somebody looks: kept, they would grow the session's and the capture's event lists without
bound, with their binary arrays as text)."""

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


def id_slug(name: str) -> str:
    """A capture name as its id spells it (``My Measurement`` -> ``My_Measurement``)."""
    return re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", name)).strip("_") or "capture"


def new_capture_id(
    name: str, data_dir: Path | None = None, now: float | None = None, root: Path | None = None
) -> str:
    """``20261123-221530-My_Measurement``; a suffix keeps ids unique within ``data_dir``'s
    captures folder (or within ``root``, a folder of capture folders)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    base = f"{stamp}-{id_slug(name)}"
    if root is None:
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
    drops: list[dict[str, Any]] = field(default_factory=list)
    """Each time the stream dropped (see :attr:`StreamReceiver.drops`)."""
    lost_samples: dict[str, int] = field(default_factory=dict)
    """Samples missing per channel number (a dropped stream's gap, blocks the module dropped)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "channels": self.channels,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
        if self.drops:
            out["drops"] = self.drops
        if self.lost_samples:
            out["lost_samples"] = self.lost_samples
        return out


@dataclass
class UnlockedSpan:
    """A stretch of wall-clock time in which a module was not locked onto PTP while recording:
    from the status report that showed the loss to the one that showed the lock again (None:
    still unlocked when the capture ended)."""

    lost: float
    status: str
    regained: float | None = None

    def to_json(self, first_sample: float | None) -> dict[str, Any]:
        """``from_s``/``to_s``: seconds from the capture's first sample (None while no sample
        has been recorded); ``from``/``to``: the wall-clock times (UTC)."""
        return {
            "from_s": _since(self.lost, first_sample),
            "to_s": _since(self.regained, first_sample),
            "from": iso(self.lost),
            "to": iso(self.regained) if self.regained is not None else None,
            "status": self.status,
        }


def _since(t: float | None, first_sample: float | None) -> float | None:
    if t is None or first_sample is None:
        return None
    return round(max(0.0, t - first_sample), 6)


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
    ptp_unlocked: list[UnlockedSpan] = field(default_factory=list)
    generator: list[dict[str, Any]] | None = None
    """The generator outputs driven during the recording (``generator/output`` objects)."""
    generator_by_hand: list[dict[str, Any]] | None = None
    """The outputs running by hand when the recording started (webapp/capture/outputs.py)."""

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self, first_sample: float | None = None) -> dict[str, Any]:
        """``first_sample``: the wall-clock time (seconds, UTC) of the capture's first sample,
        for the PTP loss spans in seconds from it."""
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
            "ptp_unlocked": [span.to_json(first_sample) for span in self.ptp_unlocked],
            "generator": self.generator,
            "generator_by_hand": self.generator_by_hand,
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
    calibrations: list[dict[str, Any]] = field(default_factory=list)
    """Each channel's transducer as the transducer database had it at the start (id,
    sensitivity, calibrated, due, overdue): webapp.calibration.records."""
    writer: dict[str, Any] = field(default_factory=lambda: writer_info())
    _last_ptp: dict[str, str] = field(default_factory=dict)
    quality: QualityChangeLimit = field(default_factory=QualityChangeLimit)
    quality_summary: dict[str, Any] | None = None
    """``quality`` in capture.json: written once the capture has ended."""
    title: str = ""
    """The name History shows (set there; "" shows ``name``): a rename never touches the
    folder or the file names, which keep ``name``."""
    test: dict[str, Any] = field(default_factory=dict)
    """Test metadata: object, operator, notes, tags (webapp/capture/labels.py)."""
    channels: list[dict[str, Any]] = field(default_factory=list)
    """The labelled channels: module number, channel, name, point, direction, group, note."""
    window: dict[str, Any] | None = None
    """For a recording cut from a monitored measurement: which one, the kind (manual, trigger,
    segment), start and end ticks, the trigger or the segment's neighbours (docs/capture-format.md)."""
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    _written: bool = False

    def add_event(self, event: Event) -> None:
        if isinstance(event, PtpLockChanged):
            self._ptp_lock_changed(event)
        entry = timeline_entry(event, self._last_ptp)
        if entry is not None and self.quality.admit(event):
            self.events.append(_jsonable(entry))

    def _ptp_lock_changed(self, event: PtpLockChanged) -> None:
        """A module's PTP loss opens a span, its lock closes it. Spans that closed before the
        first sample are left out when the record is written (no sample was taken in them)."""
        record = next((m for m in self.modules if m.address == event.module), None)
        if record is None:
            return
        spans = record.ptp_unlocked
        if not event.locked and (not spans or spans[-1].regained is not None):
            spans.append(UnlockedSpan(lost=event.t, status=event.ptp_status))
        elif event.locked and spans and spans[-1].regained is None:
            spans[-1].regained = event.t

    def first_sample_time(self) -> float | None:
        """Wall-clock time of the capture's first sample (the modules' PTP time is UTC)."""
        ticks = self.start_ticks
        if ticks is None:
            known = [m.first_ticks for m in self.modules if m.first_ticks is not None]
            ticks = min(known) if known else None
        return ticks / (1 << 32) if ticks is not None else None

    def to_json(self) -> dict[str, Any]:
        start_time = None
        if self.start_ticks is not None:
            start_time = iso(self.start_ticks / (1 << 32))
        first_sample = self.first_sample_time()
        modules = []
        for m in self.modules:
            entry = m.to_json(first_sample)
            if first_sample is not None:
                entry["ptp_unlocked"] = [
                    span
                    for span, kept in zip(entry["ptp_unlocked"], m.ptp_unlocked, strict=True)
                    if kept.regained is None or kept.regained > first_sample
                ]
            modules.append(entry)
        return {
            "format": FORMAT,
            "id": self.id,
            "name": self.name,
            "title": self.title,
            "test": self.test,
            "channels": self.channels,
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
            "modules": modules,
            "writer": self.writer,
            "left_non_idle": self.left_non_idle,
            "calibrations": self.calibrations,
            "window": self.window,
            "events": self.events,
        }

    def write(self, summarize: bool = True) -> None:
        """Write capture.json atomically (temporary file, fsync, rename). Once the capture has
        ended, the quality summary of its files follows (see :meth:`_summarize`), unless
        ``summarize`` is false (a window finished while the measurement still streams: its
        summary reads every file, which must not compete with the receivers)."""
        with self._write_lock:
            if not self._written:
                self.folder.mkdir(parents=True, exist_ok=True)
            elif not self.folder.is_dir():
                log.info("capture %s was deleted; capture.json not written again", self.id)
                return
            self._written = True
            document = self.to_json()
            document["events"] = list(self.events)  # a snapshot: events may still be added
            path = self.folder / CAPTURE_JSON

            def write_file() -> None:
                # Serialising a big capture takes a while: off the hub, like the file writing.
                if document["outcome"] == "running":
                    write_json_atomic(path, document)
                    return
                write_ended(path, document)
                if summarize:
                    self._summarize(path, document)

            runtime.offload(write_file)

    def _summarize(self, path: Path, document: dict[str, Any]) -> None:
        """The quality summary (overload, invalid data, lost samples, PTP loss, verdict) of
        the ended capture, read from its files and the capture.json just written, then
        written into capture.json as ``quality`` (computed once; later writes reuse it)."""
        if self.quality_summary is None:
            from webapp.analysis.quality import summarize_folder

            try:
                self.quality_summary = summarize_folder(self.folder)
            except Exception as exc:  # the record matters more than its summary
                log.warning("quality summary of %s not computed: %s", self.folder, exc)
                return
        document["quality"] = self.quality_summary
        if path.parent.is_dir():
            write_ended(path, document)


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
    """Write a JSON file atomically (the one rule of :mod:`webapp.statefile`)."""
    statefile.write_json(path, document)


EDITED_KEYS = ("title", "test", "edited")
"""What History changes in an ended capture's capture.json (see :func:`update_capture`)."""
_EDIT_LOCK = threading.Lock()


def write_ended(path: Path, document: dict[str, Any]) -> None:
    """Write an ended capture's capture.json, keeping what History changed in it meanwhile:
    the writer may still add the quality summary or the teardown's findings after the end,
    and an edit made in between must not be lost."""
    with _EDIT_LOCK:
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and old.get("edited"):
            for key in EDITED_KEYS:
                if key in old:
                    document[key] = old[key]
        write_json_atomic(path, document)


class CaptureRunning(RuntimeError):
    """The capture is still being recorded: History does not change or delete it."""


def update_capture(folder: Path, change: Any) -> dict[str, Any]:
    """Read capture.json, let ``change(document)`` change it and write it back atomically
    (with ``edited``: when); refused with :class:`CaptureRunning` while it is recorded."""
    path = Path(folder) / CAPTURE_JSON
    with _EDIT_LOCK:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        if not isinstance(document, dict):
            raise ValueError("capture.json is not a JSON object")
        if effective_outcome(document) == "running":
            raise CaptureRunning("the capture is still being recorded")
        change(document)
        document["edited"] = iso(time.time())
        write_json_atomic(path, document)
    return document


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


def folder_signature(folder: Path) -> tuple[Any, ...]:
    """What changes when a capture folder's capture.json or stream files change (name, size,
    modification time of each): the key for caches of what was read from it."""
    out = []
    with os.scandir(folder) as entries:
        for e in entries:
            if e.is_file(follow_symlinks=False) and (
                e.name == CAPTURE_JSON or e.name.endswith(".stream")
            ):
                st = e.stat()
                out.append((e.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


HASH_CHUNK = 1 << 22


def sha256_of(path: Path, size: int | None = None) -> Any:
    """The running SHA-256 of ``path`` (its first ``size`` bytes when given), as a hash object
    that can take more bytes; plain blocking reads (offload it on the hub)."""
    digest = hashlib.sha256()
    left = size
    with open(path, "rb") as f:
        while left is None or left > 0:
            chunk = f.read(HASH_CHUNK if left is None else min(left, HASH_CHUNK))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest
