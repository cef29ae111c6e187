"""Managing ended captures: a new title and test metadata, and deleting one.

Both refuse a capture that is still being recorded (its capture.json says ``running`` and its
writer is alive). A rename sets capture.json's ``title``, the name History shows: the folder,
the capture id and the file names keep the name the capture was recorded under, so links,
scripts and the exports' file names stay valid. Deleting first renames the folder to a hidden
name beside it (one atomic step: the capture is gone from History at once and cannot be half
listed), then removes that folder's files; the caller confirms before calling.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from webapp.capture.labels import merge_test
from webapp.capture.store import CAPTURE_JSON, CAPTURES_DIR, CaptureRunning, update_capture
from webapp.capture.writer import effective_outcome

TRASH_PREFIX = ".deleted-"


def edit_capture(folder: Path, title: str | None = None, test: Any = None) -> dict[str, Any]:
    """Set the title (None: unchanged; "": the recorded name again) and the test fields
    ``test`` (a checked :class:`~webapp.capture.labels.TestEdit`) gave; returns the document."""

    def change(document: dict[str, Any]) -> None:
        if title is not None:
            document["title"] = title
        if test is not None:
            document["test"] = merge_test(document.get("test"), test)

    return update_capture(folder, change)


def check_deletable(folder: Path) -> None:
    """Raise :class:`CaptureRunning` for a capture still being recorded. A folder whose
    capture.json is missing or unreadable may be deleted (History lists it as unknown)."""
    try:
        with open(folder / CAPTURE_JSON, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return
    if isinstance(document, dict) and effective_outcome(document) == "running":
        raise CaptureRunning("the capture is still being recorded; stop it first")


def take_away(folder: Path) -> tuple[Path, dict[str, int]]:
    """Check, then rename the capture folder to a hidden trash folder beside it; returns the
    trash folder and what it holds (``files``, ``bytes``). Quick: no file is read."""
    check_deletable(folder)
    files = size = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            files += 1
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(root, name)).st_size
    trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}-{secrets.token_hex(4)}")
    os.rename(folder, trash)
    return trash, {"files": files, "bytes": size}


def remove_trash(trash: Path) -> None:
    """Remove a folder :func:`take_away` made (blocking: hand it to ``runtime.offload``)."""
    if not trash.name.startswith(TRASH_PREFIX):
        raise ValueError(f"{trash} is not a deleted capture's folder")
    shutil.rmtree(trash)


def leftover_trash(captures_dir: Path) -> list[Path]:
    """Trash folders a crash left between the rename and the removal (removed at start-up)."""
    try:
        return [p for p in captures_dir.iterdir() if p.name.startswith(TRASH_PREFIX) and p.is_dir()]
    except OSError:
        return []


def remove_leftovers(data_dir: Path) -> None:
    """At start-up: folders of captures deleted just before a crash are removed."""
    for trash in leftover_trash(Path(data_dir) / CAPTURES_DIR):
        with contextlib.suppress(OSError):
            remove_trash(trash)
