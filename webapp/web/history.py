"""Past captures as the History page and the API show them, and safe file lookup.

A file is found by capture id and file name only: both must be names that exist as entries of
the captures folder and of that capture's folder. Nothing from a request is ever joined into a
path before it has been matched against such a listing, so ``..``, absolute paths and encoded
separators find nothing.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.analysis.quality import SUMMARY_VERSION, summarize_folder
from webapp.capture.labels import dof, test_of, title_of
from webapp.capture.store import folder_signature
from webapp.capture.writer import read_as_interrupted

QUALITY_CACHE_SIZE = 256
_quality_cache: dict[Path, tuple[tuple[Any, ...], dict[str, Any]]] = {}
_quality_lock = threading.Lock()


def captures_dir(data_dir: Path) -> Path:
    return data_dir / "captures"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """capture.json, with ``running`` read as ``interrupted`` when its writer is dead."""
    try:
        manifest = json.loads((folder / "capture.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(manifest, dict):
        manifest = read_as_interrupted(manifest, folder)
    return manifest


def _files(folder: Path) -> list[dict[str, Any]]:
    out = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                out.append({"file": entry.name, "bytes": entry.stat().st_size})
    return sorted(out, key=lambda f: (f["file"] != "capture.json", f["file"]))


def _count(events: Any, kind: str) -> int:
    if not isinstance(events, list):
        return 0
    return sum(1 for e in events if isinstance(e, dict) and e.get("kind") == kind)


def quality(manifest: dict[str, Any] | None, folder: Path) -> dict[str, Any] | None:
    """The capture's quality summary: as capture.json holds it (written when the capture
    ended), else computed from the files by the same analysis code (an interrupted or older
    capture), off the hub and cached by the files' sizes and times. None while the capture is
    still being written; ``{"error": ...}`` when its files cannot be read."""
    m = manifest or {}
    recorded = m.get("quality")
    if isinstance(recorded, dict) and recorded.get("version") == SUMMARY_VERSION:
        return recorded
    if m.get("outcome") == "running":
        return None
    try:
        signature = folder_signature(folder)
    except OSError as exc:
        return {"error": str(exc)}
    with _quality_lock:
        cached = _quality_cache.get(folder)
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        computed = runtime.offload(summarize_folder, folder)
    except Exception as exc:  # a capture History cannot read is listed, with why
        computed = {"error": str(exc)}
    with _quality_lock:
        if len(_quality_cache) >= QUALITY_CACHE_SIZE:
            _quality_cache.pop(next(iter(_quality_cache)))
        _quality_cache[folder] = (signature, computed)
    return computed


def summary(capture_id: str, manifest: dict[str, Any] | None, folder: Path) -> dict[str, Any]:
    """What History lists of a capture: its ``capture.json`` summary (no setups, no event
    timeline, only counts of its warnings, errors and channel-fault reports), its quality
    summary (see :func:`quality`) and its files."""
    m = manifest or {}
    modules = m.get("modules") or []
    events = m.get("events")
    name = m.get("name", capture_id)
    return {
        "id": capture_id,
        "name": name,
        "title": title_of(m, str(name)),
        "test": test_of(m),
        "channels": [c for c in m.get("channels") or [] if isinstance(c, dict)],
        "edited": m.get("edited"),
        "created": m.get("created"),
        "ended": m.get("ended"),
        "outcome": m.get("outcome", "unknown" if manifest is None else "running"),
        "reason": m.get("reason", "" if manifest else "capture.json is missing or unreadable"),
        "requested_duration_s": m.get("requested_duration_s"),
        "recorded_s": m.get("recorded_s"),
        "start_time": m.get("start_time"),
        "bandwidth": m.get("bandwidth"),
        "sample_rate": m.get("sample_rate"),
        "streaming": m.get("streaming"),
        "ptp": m.get("ptp"),
        "window": _window(m.get("window")),
        "modules": [
            {
                k: mod.get(k)
                for k in (
                    "number",
                    "address",
                    "role",
                    "type",
                    "serial",
                    "name",
                    "firmware",
                    "bytes",
                    "first_ticks",
                )
            }
            for mod in modules
            if isinstance(mod, dict)
        ],
        "bytes": sum(int(mod.get("bytes") or 0) for mod in modules if isinstance(mod, dict)),
        "warnings": _count(events, "warning"),
        "errors": _count(events, "error"),
        "fault_reports": _count(events, "channel-fault"),
        "quality": quality(manifest, folder),
        "files": _files(folder),
    }


def _window(window: Any) -> dict[str, Any] | None:
    """What History shows of a recording cut from a monitored measurement (its group)."""
    if not isinstance(window, dict):
        return None
    trigger = window.get("trigger") if isinstance(window.get("trigger"), dict) else None
    segment = window.get("segment") if isinstance(window.get("segment"), dict) else None
    return {
        "measurement": window.get("measurement"),
        "kind": window.get("kind"),
        "trigger": {k: trigger.get(k) for k in ("module", "channel", "slope", "level", "unit",
                                                 "time", "event", "manual")}
        if trigger
        else None,
        "segment": segment,
    }  # fmt: skip


def matches(summary: dict[str, Any], query: str = "", tags: list[str] | None = None) -> bool:
    """History's search: every word of ``query`` is in the capture's id, name, title, test
    object, operator, notes, tags or channel names and points (case does not matter), and the
    capture has every tag of ``tags``."""
    test = summary.get("test") or {}
    have = {t.casefold() for t in test.get("tags") or []}
    if any(t.casefold() not in have for t in tags or []):
        return False
    words = query.casefold().split()
    if not words:
        return True
    text = " ".join(
        [str(summary.get(k) or "") for k in ("id", "name", "title")]
        + [str(test.get(k) or "") for k in ("object", "operator", "notes")]
        + list(test.get("tags") or [])
        + [
            f"{c.get('name', '')} {dof(c)} {c.get('group', '')}"
            for c in summary.get("channels") or []
        ]
    ).casefold()
    return all(w in text for w in words)


def list_captures(data_dir: Path) -> list[dict[str, Any]]:
    root = captures_dir(data_dir)
    if not root.is_dir():
        return []
    out = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                folder = Path(entry.path)
                out.append(summary(entry.name, _read_manifest(folder), folder))
    out.sort(key=lambda c: (c["created"] or "", c["id"]), reverse=True)
    return out


def _entry(parent: Path, name: str, want_dir: bool) -> Path | None:
    """``parent/name`` if ``name`` is literally one of parent's entries of the wanted kind."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        return None
    try:
        with os.scandir(parent) as entries:
            for entry in entries:
                if entry.name != name:
                    continue
                ok = (
                    entry.is_dir(follow_symlinks=False)
                    if want_dir
                    else entry.is_file(follow_symlinks=False)
                )
                return Path(entry.path) if ok else None
    except OSError:
        return None
    return None


def capture_folder(data_dir: Path, capture_id: str) -> Path | None:
    return _entry(captures_dir(data_dir), capture_id, want_dir=True)


def capture_detail(data_dir: Path, capture_id: str) -> dict[str, Any] | None:
    folder = capture_folder(data_dir, capture_id)
    if folder is None:
        return None
    manifest = _read_manifest(folder)
    return {"summary": summary(capture_id, manifest, folder), "capture": manifest}


def capture_file(data_dir: Path, capture_id: str, name: str) -> Path | None:
    folder = capture_folder(data_dir, capture_id)
    if folder is None:
        return None
    return _entry(folder, name, want_dir=False)
