"""Access control: who may watch, who may control.

Interface used by the rest of the web layer (kept stable):

* ``init_app(app, data_dir, enabled)`` — install sessions, CSRF and login routes.
* ``require_role(role)`` — decorator for Flask views; 401 JSON when not logged in, 403 when the
  role is too low.
* ``socket_role()`` — role of the Socket.IO client handling the current event (or None).
* ``role_at_least(have, need)`` — role ordering viewer < operator < admin.
* ``bind_refusal(host, data_dir)`` — why the dashboard must not bind ``host`` (or None).

With access control off (a personal bench on loopback) everybody is an admin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Flask, current_app, jsonify

ROLES = ("viewer", "operator", "admin")


def role_at_least(have: str | None, need: str) -> bool:
    if have not in ROLES:
        return False
    return ROLES.index(have) >= ROLES.index(need)


def init_app(app: Flask, data_dir: Path, enabled: bool) -> None:
    app.config["LANXI_AUTH_ENABLED"] = enabled
    app.config["LANXI_DATA_DIR"] = Path(data_dir)


def enabled() -> bool:
    return bool(current_app.config.get("LANXI_AUTH_ENABLED"))


def current_role() -> str | None:
    """Role of the HTTP request being handled."""
    return "admin" if not enabled() else None


def socket_role() -> str | None:
    """Role of the Socket.IO connection whose event is being handled."""
    return current_role()


def require_role(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            have = current_role()
            if have is None:
                return jsonify(error="login required"), 401
            if not role_at_least(have, role):
                return jsonify(error=f"this needs the {role} role"), 403
            return view(*args, **kwargs)

        return wrapper

    return decorate


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def bind_refusal(host: str, data_dir: Path) -> str | None:
    """A message if binding ``host`` without access control would expose the modules."""
    if is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without access control: LAN-XI modules have no login of "
        "their own. Create a user first: lanxi-dashboard user add NAME --role admin"
    )
