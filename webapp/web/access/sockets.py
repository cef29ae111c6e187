"""Access control for Socket.IO: the role and control-lock decorators for handlers, and the gate
on the Engine.IO handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import (
    Flask,
    current_app,
    has_app_context,
    request,
    session,
)

from webapp.web.access.accounts import ROLES
from webapp.web.access.audit import audit, small_body
from webapp.web.access.guards import control_refusal
from webapp.web.access.identity import access_or_none, identity, role_at_least, socket_role
from webapp.web.access.proxy import trust_proxy
from webapp.web.access.requestchecks import host_is_local, same_origin
from webapp.web.access.settings import AUTH_ERROR_EVENT, CONTROL_EVENT, EXTENSION

if TYPE_CHECKING:
    from webapp.web.access.accesscontrol import AccessControl

log = logging.getLogger(__name__)


def _socket_refusal(status: int, message: str, **extra: Any) -> dict[str, Any]:
    from flask_socketio import emit

    body = {"ok": False, "error": message, "status": status, **extra}
    try:
        emit(AUTH_ERROR_EVENT, body)
    except Exception:  # no socket context (a direct call in a test)
        log.debug("could not emit %s", AUTH_ERROR_EVENT, exc_info=True)
    return body


def socket_require_role(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for Socket.IO handlers: refused events emit ``auth_error`` and ack the same
    ``{"ok": false, "error", "status"}``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            have = socket_role()
            if have is None:
                return _socket_refusal(401, "login required")
            if not role_at_least(have, role):
                return _socket_refusal(403, f"this needs the {role} role")
            return handler(*args, **kwargs)

        return wrapper

    return decorate


def socket_require_control(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for Socket.IO control handlers: operator role, the control lock, and an audit
    entry ``action`` with the outcome (``ok`` from the handler's ack when it is a dict)."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ac = access_or_none()
            event = (getattr(request, "event", None) or {}).get("message")
            if ac is not None and event in ac.guarded_events:
                return handler(*args, **kwargs)  # the server-level guard has done it all
            ident = identity()
            if socket_role() is None:
                ident = None
            refusal = control_refusal(ident)
            if refusal is not None:
                status, message, snapshot = refusal
                if status != 401:
                    audit(action, via="socket", ok=False, status=status, error=message)
                extra = {"control": snapshot} if snapshot is not None else {}
                return _socket_refusal(status, message, **extra)
            result = handler(*args, **kwargs)
            ok = result.get("ok", True) if isinstance(result, dict) else True
            details = small_body(args[0] if args else None)
            audit(action, via="socket", ok=bool(ok), **({"body": details} if details else {}))
            return result

        return wrapper

    return decorate


def init_socketio(socketio: Any, app: Flask | None = None) -> None:
    """Gate Socket.IO handshakes and drop sockets whose login or share link ended.

    The handshake (Engine.IO connect, before any Socket.IO handler) is refused with 401 for
    anonymous clients, capture-only share links, other sites (Origin) and, without access
    control, non-loopback Host names. Idempotent; ``init_app`` calls it when SocketIO(app)
    came first, and the request gate calls it on the first request otherwise.
    """
    middleware = getattr(socketio, "sockio_mw", None)
    flask_app: Flask | None = app or getattr(middleware, "flask_app", None)
    if flask_app is None and has_app_context():
        flask_app = current_app._get_current_object()  # type: ignore[attr-defined]
    if flask_app is None:
        raise RuntimeError("init_socketio needs a SocketIO bound to the app")
    ac: AccessControl = flask_app.extensions[EXTENSION]
    if ac.socketio is socketio:
        return
    ac.socketio = socketio
    hops = int(flask_app.config.get("LANXI_PROXY_HOPS") or 0)
    if hops and flask_app.wsgi_app is middleware:
        trust_proxy(flask_app, hops)
    eio = socketio.server.eio
    original = eio.handlers.get("connect")

    def gate(eio_sid: str, environ: dict[str, Any]) -> Any:
        refusal = _handshake_refusal(flask_app, ac, environ)
        if refusal is not None:
            log.info("refused a Socket.IO connection from %s: %s",
                     environ.get("REMOTE_ADDR"), refusal)  # fmt: skip
            return {"message": refusal}
        ac.start_sweeper()
        return original(eio_sid, environ) if original else None

    eio.on("connect", gate)
    ac.guard_control_events(socketio)
    # Everybody sees who holds control, as it changes (through any web process; with a
    # Socket.IO message queue the emit of the process that changed it reaches them all).
    from socketio import PubSubManager

    ac.control.subscribe(
        lambda snapshot: socketio.emit(CONTROL_EVENT, {"enabled": ac.enabled, **snapshot}),
        remote=not isinstance(socketio.server.manager, PubSubManager),
    )


def _handshake_refusal(app: Flask, ac: AccessControl, environ: dict[str, Any]) -> str | None:
    with app.request_context(environ):
        if not ac.enabled:
            if not host_is_local():
                return "this dashboard answers on loopback names only"
            return None if same_origin() else "cross-site connection refused"
        if not same_origin():
            return "cross-site connection refused"
        ident = ac.identity_of(session)
        if ident is None:
            return "login required"
        if ident.share is not None and ident.share.scope != "live":
            return "this share link is for one capture, not the live view"
    return None
