"""The role and control-lock checks for Flask views (``require_role``, ``require_control``,
``check_control``) and the control lock as the web layer uses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    jsonify,
)

from webapp.web.access.accounts import ROLES
from webapp.web.access.identity import Identity, access, access_or_none, identity, role_at_least

# --- decorators ----------------------------------------------------------------------------


def _role_refusal(have: Identity | None, role: str) -> tuple[int, str] | None:
    if have is None:
        return 401, "login required"
    if not role_at_least(have.role, role):
        return 403, f"this needs the {role} role"
    return None


def require_role(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refusal = _role_refusal(identity(), role)
            if refusal is not None:
                return jsonify(error=refusal[1]), refusal[0]
            return view(*args, **kwargs)

        return wrapper

    return decorate


def control_refusal(ident: Identity | None) -> tuple[int, str, dict[str, Any] | None] | None:
    """Why ``ident`` may not control the rig now (taking the lock if it is free)."""
    ac = access_or_none()
    if ac is None or not ac.enabled:
        return None
    role_refusal = _role_refusal(ident, "operator")
    if role_refusal is not None or ident is None or ident.user is None:
        status, message = role_refusal or (403, "this needs the operator role")
        return status, message, None
    ac.drop_stale_holder()
    if ac.control.acquire(ident.user):
        return None
    holder = ac.control.holder()
    who = holder.user if holder else "someone"
    since = time.strftime("%H:%M:%S", time.localtime(holder.since)) if holder else "?"
    return (
        409,
        f"{who} has control (since {since}); request control, or an admin can take it",
        ac.control.snapshot(),
    )


def check_control() -> Any:
    """None if this request may control the rig (the lock is taken for its user if free);
    otherwise the JSON refusal to return (401, 403, or 409 naming the holder)."""
    refusal = control_refusal(identity())
    if refusal is None:
        return None
    status, message, snapshot = refusal
    body: dict[str, Any] = {"error": message}
    if snapshot is not None:
        body["control"] = snapshot
    return jsonify(body), status


def require_control(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: operator role and the control lock (the gate already does this for /api/)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refusal = check_control()
        return refusal if refusal is not None else view(*args, **kwargs)

    return wrapper


# --- the control lock ----------------------------------------------------------------------


def control_holder() -> dict[str, Any] | None:
    """``{"user", "since"}`` of whoever holds control, or None."""
    holder = access().control.holder()
    return {"user": holder.user, "since": holder.since} if holder else None


def control_state() -> dict[str, Any]:
    """Holder and pending requests, plus whether access control (and so the lock) is on."""
    ac = access()
    ac.drop_stale_holder()
    return {"enabled": ac.enabled, **ac.control.snapshot()}


def acquire_control(user: str) -> bool:
    return access().control.acquire(user)


def release_control(user: str) -> bool:
    return access().control.release(user)


def on_control_change(listener: Callable[[dict[str, Any]], None]) -> None:
    """``listener(state)`` after each change of the control lock (no app context needed)."""
    access().control.subscribe(listener)
