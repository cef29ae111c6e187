"""Login sessions: Flask's signed cookie with Secure decided per request, and the data
directory's signing key.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

from webapp.web.access.settings import SECRET_KEY_FILE

log = logging.getLogger(__name__)


# --- sessions ------------------------------------------------------------------------------


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with Secure decided per request when set to "auto"."""

    def get_cookie_secure(self, app: Flask) -> bool:
        mode = str(app.config.get("LANXI_SECURE_COOKIES", "auto")).lower()
        if mode == "auto":
            return bool(has_request_context() and request.is_secure)
        return mode in ("always", "true", "1", "yes")


def secret_key(data_dir: Path) -> bytes:
    """The session signing key of this data directory, created once with mode 0600."""
    path = data_dir / SECRET_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        raise RuntimeError(f"{path} is too short to be a session key; delete it") from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def tighten(path: Path) -> None:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(0o600)
            log.warning("%s was readable by others (mode %o); now 0600", path, mode)
    except FileNotFoundError:
        pass
