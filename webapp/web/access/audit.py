"""The audit trail of state-changing requests: who (user, share link, ``local`` or ``system``)
did what, with its outcome, in the data directory's audit log (:mod:`webapp.auditlog`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import (
    has_request_context,
    request,
)
from werkzeug.exceptions import HTTPException

from webapp.web.access.identity import access_or_none, identity

log = logging.getLogger(__name__)


# --- audit ---------------------------------------------------------------------------------


def audit(action: str, **details: Any) -> dict[str, Any] | None:
    """Append ``action`` by the current user (or share link, or ``local``) to the audit log.

    ``actor=`` overrides who did it (for calls outside a request, e.g. ``"system"``).
    """
    ac = access_or_none()
    if ac is None:
        log.warning("audit %s outside an app with access control: %s", action, details)
        return None
    actor = details.pop("actor", None)
    if actor is None:
        ident = identity() if has_request_context() else None
        actor = ident.actor if ident else ("anonymous" if has_request_context() else "system")
    if has_request_context() and "addr" not in details:
        details["addr"] = request.remote_addr
    try:
        return ac.audit_log.append(action, actor, **details)
    except OSError:
        log.exception("could not write the audit log")
        return None


def small_body(body: Any, limit: int = 2000) -> Any:
    """A request body small enough to keep in the audit log (else just its keys)."""
    if body is None:
        return None
    import json

    try:
        text = json.dumps(body, default=str)
    except (TypeError, ValueError):
        return None
    if len(text) <= limit:
        return body
    return {"keys": sorted(body)} if isinstance(body, dict) else {"size": len(text)}


# What the global audit calls each state-changing API request (method, path pattern).
_AUDIT_ACTIONS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (m, re.compile(p), a)
    for m, p, a in (
        ("POST", r"/api/capture/(arm|start|stop|disarm)", "capture-{0}"),
        ("PUT", r"/api/setup", "setup-change"),
        ("POST", r"/api/setup/detect", "setup-detect"),
        ("POST", r"/api/setups", "setup-save"),
        ("POST", r"/api/setups/[^/]+/load", "setup-load"),
        ("DELETE", r"/api/setups/[^/]+", "setup-delete"),
        ("PUT", r"/api/rig", "rig-configure"),
        ("POST", r"/api/rig/modules", "rig-add-module"),
        ("DELETE", r"/api/rig/modules/.+", "rig-remove-module"),
        ("POST", r"/api/rig/refresh", "rig-refresh"),
        ("POST", r"/api/rig/modules/.+/return-to-idle", "rig-return-to-idle"),
        ("POST", r"/api/emulator/faults", "fault-inject"),
        ("DELETE", r"/api/emulator/faults", "fault-clear"),
        ("PUT", r"/api/setup/channels\.csv", "setup-channel-table"),
        ("PATCH", r"/api/captures/[^/]+", "capture-edit"),
        ("DELETE", r"/api/captures/[^/]+", "capture-delete"),
    )
)


def _audit_action(method: str, path: str) -> str:
    for m, pattern, action in _AUDIT_ACTIONS:
        match = pattern.fullmatch(path)
        if m == method and match:
            return action.format(*match.groups())
    return f"{method.lower()} {path}"


AUDITED = "lanxi.audited"  # in the WSGI environ: this request has its audit entry


def audit_request(status: int, **extra: Any) -> None:
    """One audit entry for this state-changing API request (marked, so it is not written
    again after the response)."""
    body = None
    if request.is_json and status not in (413,):
        try:  # a body refused as too large or too deep is not read again for the log
            body = request.get_json(silent=True)
        except (HTTPException, RecursionError):
            body = None
    details: dict[str, Any] = {"ok": status < 400, "status": status, **extra}
    small = small_body(body)
    if small:
        details["body"] = small
    audit(_audit_action(request.method, request.path), **details)
    request.environ[AUDITED] = True
