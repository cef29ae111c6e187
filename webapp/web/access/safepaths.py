"""Names that become file names, and files served from the data directory.

A download is named by a capture id and a file name, each a single path component checked
here; the request never carries a path. Checks are on the text first (no separators in any
spelling, no dot-dot, no NUL, no percent-encoding), then on the resolved path (it must be a
regular file inside the capture's folder, so a symlink pointing elsewhere is refused).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from webapp.capture.names import MAX_NAME, check_name

__all__ = ["MAX_NAME", "capture_dir", "check_component", "safe_capture_file", "safe_name"]

CAPTURES_DIR = "captures"
# Characters never allowed in one path component: separators in any spelling, NUL, the
# Windows drive colon, and percent (a sign the caller passed something still URL-encoded).
_FORBIDDEN = re.compile(r"[/\\\x00:%]|[\x00-\x1f\x7f]")


def safe_name(name: str) -> str:
    """A capture name fit for file and folder names, or ValueError saying what is wrong.

    The rule lives in :func:`webapp.capture.names.check_name` (docs/capture-format.md).
    """
    return check_name(name, "the capture name")


def check_component(value: str, what: str) -> str:
    """``value`` if it is one plain path component, else ValueError naming ``what``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is empty")
    if len(value) > 255:
        raise ValueError(f"{what} is too long")
    if _FORBIDDEN.search(value):
        raise ValueError(f"{what} must be a plain name, without separators or encoded characters")
    if value in (".", "..") or value.startswith(".."):
        raise ValueError(f"{what} must not point at a parent folder")
    if value.startswith("."):
        raise ValueError(f"{what} must not name a hidden file")
    if unicodedata.normalize("NFC", value) != value:
        raise ValueError(f"{what} is not in normalised form")
    return value


def capture_dir(data_dir: Path, capture_id: str) -> Path:
    """The folder of one capture, ``<data_dir>/captures/<id>`` (checked, need not exist)."""
    return Path(data_dir) / CAPTURES_DIR / check_component(capture_id, "the capture id")


def safe_capture_file(data_dir: Path, capture_id: str, file_name: str) -> Path:
    """The resolved path of ``file_name`` in capture ``capture_id``, if it is safe to serve.

    Raises ValueError for a name that is not a plain component (HTTP 400) and
    FileNotFoundError when there is no such regular file inside the capture's folder, including
    a symlink that leads out of it (HTTP 404: the caller must not learn what lies outside).
    """
    folder = capture_dir(data_dir, capture_id)
    check_component(file_name, "the file name")
    try:
        root = folder.resolve(strict=True)
        target = (folder / file_name).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError, RuntimeError) as exc:  # RuntimeError: loop
        raise FileNotFoundError(f"no file {file_name!r} in capture {capture_id!r}") from exc
    data_root = Path(data_dir).resolve()
    if not root.is_relative_to(data_root) or target.parent != root or not target.is_file():
        raise FileNotFoundError(f"no file {file_name!r} in capture {capture_id!r}")
    return target
