"""Atomic writes of the small state files (capture.json, the rig, setups, users, share links).

One rule for every one of them: write a uniquely named temporary file beside the target, fsync
it, rename it over the target and fsync the folder, so a reader (or the next start after a crash
or a power cut) sees the old file or the new one, never a mix or an empty file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; ``mode`` (e.g. 0o600) whatever the umask says."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def write_json(path: Path, document: Any, *, indent: int = 1, mode: int | None = None) -> None:
    """Write ``document`` as UTF-8 JSON atomically (NaN refused: it is not JSON)."""
    text = json.dumps(document, indent=indent, ensure_ascii=False, allow_nan=False)
    atomic_write(path, (text + "\n").encode("utf-8"), mode)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
