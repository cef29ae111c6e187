"""What access control is configured by: its ``app.config`` keys and their defaults, and the
names it gives its extension, cookies, headers and Socket.IO events.
"""

from __future__ import annotations

from typing import Any

EXTENSION = "lanxi_auth"
SECRET_KEY_FILE = ".secret_key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
AUTH_ERROR_EVENT = "auth_error"
CONTROL_EVENT = "control-lock"  # pushed to every socket when the control lock changes

DEFAULTS: dict[str, Any] = {
    # "auto": Secure cookies when the request came over https (directly, or per
    # X-Forwarded-Proto behind a trusted proxy); "always" / "never" force it.
    "LANXI_SECURE_COOKIES": "auto",
    "LANXI_COOKIE_SAMESITE": "Lax",
    "LANXI_SESSION_HOURS": 12.0,  # idle lifetime; each request extends it
    "LANXI_SESSION_MAX_HOURS": 7 * 24.0,  # a login is never good for longer than this
    "LANXI_LOGIN_MAX_FAILURES": 5,  # per account
    "LANXI_LOGIN_WINDOW_S": 60.0,
    "LANXI_LOGIN_ADDR_MAX_FAILURES": 30,  # per client address, over all accounts
    "LANXI_LOGIN_ADDR_WINDOW_S": 300.0,
    "LANXI_SOCKET_RECHECK_S": 1.0,  # how soon a CLI revocation reaches open sockets
    "LANXI_TRUSTED_ORIGINS": (),  # extra origins allowed to POST, e.g. "https://lab.example"
    "LANXI_ALLOWED_HOSTS": (),  # extra Host names accepted without access control
    # State-changing requests under these prefixes need the control lock.
    "LANXI_CONTROL_PREFIXES": ("/api/",),
    "LANXI_CONTROL_EXEMPT": ("/api/auth/",),
    # Socket.IO events that need the operator role and the control lock, and are audited.
    "LANXI_CONTROL_EVENTS": (
        "capture:arm",
        "capture:start",
        "capture:stop",
        "capture:disarm",
        "capture:monitor",
        "capture:record",
        "capture:stop-recording",
        "capture:trigger",
        "generator:start",
        "generator:stop",
    ),
    # What a share link may read (GET only); capture links also get /api/captures/<their id>.
    "LANXI_SHARE_LIVE_PATHS": (
        "/",
        "/capture",
        "/rig",
        "/setup",
        "/api/state",
        "/api/rig",
        "/api/setup",
        "/api/setups",
        "/api/emulator/faults",
        "/api/auth/control",
    ),
    "LANXI_SHARE_LIVE_URL": "/",
}
