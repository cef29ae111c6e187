"""Access control: who may watch, who may control.

Interface used by the rest of the web layer (kept stable):

* ``init_app(app, data_dir, enabled)`` — sessions, CSRF, login routes, the request gate.
* ``enabled()``, ``current_role()``, ``current_user()``, ``socket_role()``.
* ``require_role(role)`` — decorator for Flask views; 401 JSON when not logged in, 403 when the
  role is too low.
* ``socket_require_role(role)``, ``socket_require_control(action)`` — the same for Socket.IO
  handlers: a refusal is emitted as ``auth_error`` and returned as the ack.
* ``role_at_least(have, need)`` — role ordering viewer < operator < admin.
* ``bind_refusal(host, data_dir)`` — why the dashboard must not bind ``host`` (or None);
  ``users_configured(data_dir)``.
* control lock: ``control_holder()``, ``acquire_control(user)``, ``release_control(user)``,
  ``check_control()``, ``control_state()``, ``on_control_change(listener)``.
* ``audit(action, **details)``; ``safe_name(name)``; ``safe_capture_file(data_dir, id, name)``.
* ``init_socketio(socketio)``, ``trust_proxy(app, hops)``, ``csrf_token()``.

With access control off (a personal bench on loopback) everybody is an admin, but requests must
still name a loopback host and state-changing requests must not come from another site, so a web
page elsewhere cannot drive the bench through the user's browser (CSRF, DNS rebinding).

With it on, ``init_app`` installs one gate in front of every view: anonymous requests get 401
(API) or a redirect to /login (pages); share-link sessions are read-only and confined to their
scope; every POST/PUT/PATCH/DELETE needs the session's CSRF token and a same-origin
Origin/Referer; state-changing API requests need the control lock; and every state-changing API
request is written to the audit log with its outcome. Views therefore need only
``require_role``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    Response,
    current_app,
    g,
    has_app_context,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from webapp.auditlog import AuditLog
from webapp.web.access_store import NOTICE_RESYNC, NOTICE_SWEEP, AccessStore, MemoryAccessStore
from webapp.web.accounts import (
    ROLES,
    AccessError,
    Share,
    ShareStore,
    UserStore,
)
from webapp.web.controllock import ControlLock
from webapp.web.ratelimit import LoginLimits
from webapp.web.requestchecks import (
    csrf_ok,
    csrf_token,
    host_is_local,
    is_loopback,
    same_origin,
)
from webapp.web.safepaths import safe_capture_file, safe_name

__all__ = [
    "ROLES",
    "access_configured",
    "acquire_control",
    "audit",
    "bind_refusal",
    "check_control",
    "control_holder",
    "control_state",
    "csrf_token",
    "current_role",
    "current_user",
    "enabled",
    "init_app",
    "init_socketio",
    "on_control_change",
    "release_control",
    "require_control",
    "require_role",
    "role_at_least",
    "safe_capture_file",
    "safe_name",
    "socket_require_control",
    "socket_require_role",
    "socket_role",
    "transport_warning",
    "trust_proxy",
    "users_configured",
]

log = logging.getLogger(__name__)

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


def role_at_least(have: str | None, need: str) -> bool:
    if have not in ROLES:
        return False
    return ROLES.index(have) >= ROLES.index(need)


# --- who is asking -------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    role: str
    user: str | None = None
    share: Share | None = None

    @property
    def actor(self) -> str:
        if self.user:
            return self.user
        if self.share:
            return f"share:{self.share.id}"
        return "local"


LOCAL = Identity(role="admin")
_UNSET = object()


class AccessControl:
    """Everything access control keeps per app (``app.extensions["lanxi_auth"]``)."""

    def __init__(self, app: Flask, data_dir: Path, enabled: bool) -> None:
        self.app = app
        self.data_dir = Path(data_dir)
        self.enabled = enabled
        self.users = UserStore(self.data_dir)
        self.shares = ShareStore(self.data_dir)
        self.audit_log = AuditLog(self.data_dir)
        self.store: AccessStore = MemoryAccessStore()  # shared ones: access_store.py
        self.control = ControlLock(store=self.store)
        self.limiter = LoginLimits(
            account_failures=int(app.config["LANXI_LOGIN_MAX_FAILURES"]),
            account_window_s=float(app.config["LANXI_LOGIN_WINDOW_S"]),
            address_failures=int(app.config["LANXI_LOGIN_ADDR_MAX_FAILURES"]),
            address_window_s=float(app.config["LANXI_LOGIN_ADDR_WINDOW_S"]),
        )
        self.socketio: Any = None
        self.guarded_events: set[str] = set()
        self._sweeper_running = False
        self._sweeper_lock = threading.Lock()
        self._stopped = threading.Event()

    # sessions ------------------------------------------------------------------------------

    def use_store(self, store: AccessStore) -> None:
        """Keep the control lock, ended sessions and revoked links in ``store`` (shared with
        other web processes) and act on their notices."""
        self.store = store
        self.control.use_store(store)
        store.on_notice(self._on_notice)

    def _on_notice(self, notice: str) -> None:
        if notice in (NOTICE_SWEEP, NOTICE_RESYNC):
            self.sweep_sockets()

    def sessions_changed(self) -> None:
        """A login or share link ended here: drop its sockets in every process, now."""
        self.sweep_sockets()
        self.store.announce(NOTICE_SWEEP)

    def end_session(self, nonce: str | None) -> None:
        if not nonce:
            return
        self.store.end_session(nonce, float(self.app.config["LANXI_SESSION_MAX_HOURS"]) * 3600)

    def revoke_share(self, token_or_id: str) -> Share:
        """Revoke a share link in its file and in the store; its sockets end everywhere."""
        share = self.shares.revoke(token_or_id)
        self.store.revoke_share(share.id)
        self.sessions_changed()
        return share

    def identity_of(self, sess: Any) -> Identity | None:
        """Who a session (a dict-like Flask session) belongs to, checked against the stores."""
        if not self.enabled:
            return LOCAL
        if not sess:
            return None
        name = sess.get("user")
        if isinstance(name, str):
            nonce = sess.get("nonce")
            if not isinstance(nonce, str) or not nonce or self.store.session_ended(nonce):
                return None
            login_at = sess.get("login_at")
            max_age = float(self.app.config["LANXI_SESSION_MAX_HOURS"]) * 3600
            if not isinstance(login_at, int | float) or time.time() - login_at > max_age:
                return None
            user = self.users.get(name)
            if user is None or user.epoch != sess.get("epoch"):
                return None
            return Identity(role=user.role, user=user.name)
        share_id = sess.get("share")
        if isinstance(share_id, str):
            share = self.shares.active(share_id)
            if share is None or self.store.share_revoked(share.id):
                return None
            return Identity(role="viewer", share=share)
        return None

    def guard_control_events(self, socketio: Any) -> None:
        """Control lock and audit for the configured Socket.IO control events, whoever
        registered their handlers: each handler is wrapped once, where python-socketio keeps it.
        """
        handlers = socketio.server.handlers.get("/", {})
        for event in self.app.config["LANXI_CONTROL_EVENTS"]:
            handler = handlers.get(event)
            if handler is None or getattr(handler, "_lanxi_guarded", False):
                continue
            guarded = self._guarded(socketio, event, handler)
            socketio.server.on(event, guarded, namespace="/")
            self.guarded_events.add(event)

    def _guarded(self, socketio: Any, event: str, handler: Callable[..., Any]) -> Any:
        action = event.replace(":", "-")

        def guarded(sid: str, *args: Any) -> Any:
            environ = socketio.server.get_environ(sid, namespace="/") or {}
            addr = environ.get("REMOTE_ADDR")
            with self.app.request_context(environ):
                ident = self.identity_of(self.session_of_environ(environ))
                if ident is not None and ident.share is not None and ident.share.scope != "live":
                    ident = None
                refusal = _control_refusal(ident)
            actor = ident.actor if ident else "anonymous"
            if refusal is not None:
                status, message, snapshot = refusal
                if status != 401:
                    self.audit_log.append(action, actor, via="socket", ok=False, status=status,
                                          error=message, addr=addr)  # fmt: skip
                body: dict[str, Any] = {"ok": False, "error": message, "status": status}
                if snapshot is not None:
                    body["control"] = snapshot
                socketio.emit(AUTH_ERROR_EVENT, body, to=sid)
                return body
            result = handler(sid, *args)
            ok = result.get("ok", True) if isinstance(result, dict) else True
            details: dict[str, Any] = {"via": "socket", "ok": bool(ok), "addr": addr}
            small = _small_body(args[0] if args else None)
            if small:
                details["body"] = small
            self.audit_log.append(action, actor, **details)
            return result

        guarded._lanxi_guarded = True  # type: ignore[attr-defined]
        return guarded

    def drop_stale_holder(self) -> None:
        """Free control held by a user removed or demoted (e.g. by the ``user`` command)."""
        holder = self.control.holder()
        if holder is None or not self.enabled:
            return
        user = self.users.get(holder.user)
        if user is None or not role_at_least(user.role, "operator"):
            self.control.forget(holder.user)

    # Socket.IO -----------------------------------------------------------------------------

    def session_of_environ(self, environ: dict[str, Any]) -> Any:
        saved = environ.get("saved_session")  # Flask-SocketIO's per-connection copy
        if saved is not None:
            return saved
        req = self.app.request_class(environ)
        return self.app.session_interface.open_session(self.app, req)

    def sweep_sockets(self) -> int:
        """Disconnect every socket whose session is no longer good; returns how many."""
        sio = self.socketio
        if sio is None or not self.enabled:
            return 0
        server = sio.server
        sockets: list[tuple[str, str, Any]] = []
        for namespace in list(server.manager.get_namespaces()):
            for sid, eio_sid in list(server.manager.get_participants(namespace, None)):
                environ = server.environ.get(eio_sid)
                if environ is None:
                    continue
                try:
                    sess = self.session_of_environ(environ)
                except Exception:
                    log.exception("reading the session of socket %s failed", sid)
                    sess = None  # disconnected below
                sockets.append((namespace, sid, sess))
        # One look-up in the store for all of them (one round trip to Redis, not one each).
        sessions = [sess for _, _, sess in sockets if sess]
        dropped = 0
        with self.store.batch_checks(
            [sess.get("nonce") for sess in sessions], [sess.get("share") for sess in sessions]
        ):
            for namespace, sid, sess in sockets:
                try:
                    ident = self.identity_of(sess)
                except Exception:
                    log.exception("checking socket %s failed; disconnecting it", sid)
                    ident = None
                if ident is None or (ident.share is not None and ident.share.scope != "live"):
                    log.info("disconnecting socket %s: its login or share link ended", sid)
                    server.disconnect(sid, namespace=namespace)
                    dropped += 1
        return dropped

    def stop(self) -> None:
        """Stop the socket sweep and the store's notices for good (the server is shutting
        down; tests)."""
        self._stopped.set()
        self.store.close()

    def start_sweeper(self) -> None:
        sio = self.socketio
        if sio is None or not self.enabled or self._stopped.is_set():
            return
        with self._sweeper_lock:
            if self._sweeper_running:
                return
            self._sweeper_running = True
        sio.start_background_task(self._sweeper)

    def _any_sockets(self) -> bool:
        server = self.socketio.server
        if server.eio.sockets:
            return True
        return any(
            next(iter(server.manager.get_participants(ns, None)), None) is not None
            for ns in list(server.manager.get_namespaces())
        )

    def _sweeper(self) -> None:
        # Runs while any Engine.IO connection is open, and stops by itself after the last.
        interval = float(self.app.config["LANXI_SOCKET_RECHECK_S"])
        try:
            while True:
                # A stdlib Event: green under eventlet's monkey patching, and ``stop`` wakes it.
                if self._stopped.wait(interval) or not self._any_sockets():
                    return
                try:
                    self.sweep_sockets()
                except Exception:
                    log.exception("socket sweep failed")
        finally:
            with self._sweeper_lock:
                self._sweeper_running = False


def access() -> AccessControl:
    ac = current_app.extensions.get(EXTENSION)
    if ac is None:
        raise RuntimeError("auth.init_app() has not been called for this app")
    return ac


def access_or_none() -> AccessControl | None:
    return current_app.extensions.get(EXTENSION) if has_app_context() else None


def enabled() -> bool:
    return bool(current_app.config.get("LANXI_AUTH_ENABLED"))


def identity() -> Identity | None:
    ac = access_or_none()
    if ac is None or not ac.enabled:
        return LOCAL
    if not has_request_context():
        return None
    cached = g.get("_lanxi_identity", _UNSET)
    if cached is _UNSET:
        cached = ac.identity_of(session)
        g._lanxi_identity = cached
    return cached  # type: ignore[return-value]


def forget_identity() -> None:
    g.pop("_lanxi_identity", None)


def current_role() -> str | None:
    """Role of the HTTP request being handled (None: not logged in)."""
    ident = identity()
    return ident.role if ident else None


def current_user() -> str | None:
    """Login name of the request's user (None for share links, anonymous or no access control)."""
    ident = identity()
    return ident.user if ident else None


def current_share() -> Share | None:
    ident = identity()
    return ident.share if ident else None


def socket_role() -> str | None:
    """Role of the Socket.IO connection whose event is being handled (None: refuse it).

    Flask-SocketIO hands handlers the session the connection was opened with; the user or share
    link in it is checked against the stores on every call, so a removed user or a revoked
    link is refused at its next event. Only live-view share links may hold a socket.
    """
    ac = access_or_none()
    if ac is not None and ac.enabled:
        # The first socket may arrive before any HTTP request has installed the gate.
        _ensure_socket_gate(ac)
        ac.start_sweeper()
    ident = identity()
    if ident is None or (ident.share is not None and ident.share.scope != "live"):
        return None
    return ident.role


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


def _control_refusal(ident: Identity | None) -> tuple[int, str, dict[str, Any] | None] | None:
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
    refusal = _control_refusal(identity())
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
            refusal = _control_refusal(ident)
            if refusal is not None:
                status, message, snapshot = refusal
                if status != 401:
                    audit(action, via="socket", ok=False, status=status, error=message)
                extra = {"control": snapshot} if snapshot is not None else {}
                return _socket_refusal(status, message, **extra)
            result = handler(*args, **kwargs)
            ok = result.get("ok", True) if isinstance(result, dict) else True
            details = _small_body(args[0] if args else None)
            audit(action, via="socket", ok=bool(ok), **({"body": details} if details else {}))
            return result

        return wrapper

    return decorate


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


def _small_body(body: Any, limit: int = 2000) -> Any:
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


# --- sessions ------------------------------------------------------------------------------


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with Secure decided per request when set to "auto"."""

    def get_cookie_secure(self, app: Flask) -> bool:
        mode = str(app.config.get("LANXI_SECURE_COOKIES", "auto")).lower()
        if mode == "auto":
            return bool(has_request_context() and request.is_secure)
        return mode in ("always", "true", "1", "yes")


def _secret_key(data_dir: Path) -> bytes:
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


def _tighten(path: Path) -> None:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(0o600)
            log.warning("%s was readable by others (mode %o); now 0600", path, mode)
    except FileNotFoundError:
        pass


# --- setup ---------------------------------------------------------------------------------


def users_configured(data_dir: Path) -> bool:
    """True once at least one user exists in ``data_dir`` (access control is configured)."""
    try:
        return UserStore(Path(data_dir)).any()
    except AccessError:
        return False


access_configured = users_configured


def bind_refusal(host: str, data_dir: Path) -> str | None:
    """A message if binding ``host`` would expose the modules without access control.

    Loopback needs nothing; any other address needs at least one user in ``data_dir`` (and
    ``serve`` then runs with access control on).
    """
    if is_loopback(host):
        return None
    data_dir = Path(data_dir)
    try:
        if UserStore(data_dir).any():
            return None
        problem = f"there are no users in {data_dir / 'users.json'}"
    except AccessError as exc:
        problem = str(exc)
    return (
        f"refusing to listen on {host or 'all addresses'} without access control: {problem}. "
        "LAN-XI modules have no login of their own, so whoever reaches the dashboard could "
        "start and stop measurements. Create an admin first:\n"
        f"    lanxi-dashboard user add NAME --role admin --data-dir {data_dir}\n"
        "or pass --setup-token to create the admin from the browser with a one-time link,\n"
        "or listen on 127.0.0.1 only (see docs/security.md)."
    )


def transport_warning(host: str, tls: bool) -> str | None:
    """A warning for ``serve`` to print when logins would cross the network in clear text."""
    if tls or is_loopback(host):
        return None
    return (
        f"serving plain HTTP on {host or 'all addresses'}: passwords and session cookies cross "
        "the network unencrypted. Use --certfile/--keyfile, or a TLS reverse proxy in front of "
        "a loopback address (docs/security.md)."
    )


def init_app(
    app: Flask,
    data_dir: Path,
    enabled: bool,
    *,
    secure_cookies: str | None = None,
    proxy_hops: int | None = None,
) -> None:
    """Install sessions, CSRF, the request gate, the login and share-link routes.

    ``secure_cookies``: "auto" (default, or $LANXI_SECURE_COOKIES), "always" or "never".
    ``proxy_hops``: reverse proxies in front (default 0, or $LANXI_PROXY_HOPS); see
    ``trust_proxy``.
    """
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    if secure_cookies is None:
        secure_cookies = os.environ.get("LANXI_SECURE_COOKIES")
    if secure_cookies is not None:
        app.config["LANXI_SECURE_COOKIES"] = secure_cookies
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    app.config["LANXI_AUTH_ENABLED"] = bool(enabled)
    app.config["LANXI_DATA_DIR"] = data_dir

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(data_dir)
    _tighten(data_dir / SECRET_KEY_FILE)
    app.config.update(
        SESSION_COOKIE_NAME="lanxi_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE=app.config["LANXI_COOKIE_SAMESITE"],
        PERMANENT_SESSION_LIFETIME=timedelta(hours=float(app.config["LANXI_SESSION_HOURS"])),
    )
    app.session_interface = _SessionInterface()

    ac = AccessControl(app, data_dir, bool(enabled))
    app.extensions[EXTENSION] = ac
    if enabled:
        for name in ("users.json", "shares.json", "audit.log"):
            _tighten(data_dir / name)
        if not ac.users.any():
            log.warning("access control is on but %s has no users: nobody can log in", data_dir)

    if proxy_hops is None:
        proxy_hops = int(os.environ.get("LANXI_PROXY_HOPS") or 0)
    if proxy_hops:
        trust_proxy(app, proxy_hops)

    from webapp.web.authviews import bp  # the routes use this module's helpers

    app.register_blueprint(bp)
    from webapp.web.setuptoken import bp as setup_bp

    app.register_blueprint(setup_bp)
    app.before_request(_gate)
    app.after_request(_after)
    app.context_processor(_template_context)
    if "socketio" in app.extensions:
        init_socketio(app.extensions["socketio"])


def trust_proxy(app: Flask, hops: int = 1) -> None:
    """Behind ``hops`` reverse proxies: take client address, scheme and host from their
    X-Forwarded-For/-Proto/-Host/-Port headers (werkzeug's ProxyFix). Never without a proxy:
    clients could then forge their address (and dodge the login rate limit).

    Applied to whatever ``app.wsgi_app`` is now; ``init_socketio`` applies it once more around
    the Socket.IO middleware, so Socket.IO requests get it too. ProxyFix reads the headers, not
    the environ it rewrote, so applying it twice gives the same result.
    """
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
    )
    app.config["LANXI_PROXY_HOPS"] = hops


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


# --- the gate in front of every request ----------------------------------------------------

PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "lanxi_auth.login",
        "lanxi_auth.logout",
        "lanxi_auth.share_landing",
        "lanxi_auth.session_info",
        "lanxi_setup.setup_admin",  # checks its own one-time token (webapp/web/setuptoken.py)
    }
)


def wants_json() -> bool:
    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def refuse(status: int, message: str, **extra: Any) -> Any:
    return jsonify(error=message, **extra), status


def _share_permits(share: Share) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    path = request.path
    if share.scope == "live":
        return path in current_app.config["LANXI_SHARE_LIVE_PATHS"]
    if share.scope == "capture" and share.capture_id:
        prefix = f"/api/captures/{share.capture_id}"
        return (
            path == prefix
            or path.startswith(prefix + "/")
            or path == url_for("lanxi_auth.shared_capture")
        )
    return False


def _ensure_socket_gate(ac: AccessControl) -> None:
    socketio = current_app.extensions.get("socketio")
    if socketio is None:
        return
    if ac.socketio is None:
        init_socketio(socketio, current_app._get_current_object())  # type: ignore[attr-defined]
    # Handlers may be registered after init_socketio (create_app registers them last).
    ac.guard_control_events(socketio)


def _gate() -> Any:
    ac = current_app.extensions[EXTENSION]
    _ensure_socket_gate(ac)
    unsafe = request.method not in SAFE_METHODS
    if not ac.enabled:
        if not host_is_local():
            return refuse(
                403,
                "without access control this dashboard answers on loopback names only; "
                "create users to serve it on the network (docs/security.md)",
            )
        if unsafe and not same_origin():
            return refuse(403, "cross-site request refused")
        return None

    csrf_refusal = "CSRF check failed: missing or wrong X-CSRF-Token, or another site"
    if request.endpoint in PUBLIC_ENDPOINTS:
        if unsafe and not (same_origin() and csrf_ok()):
            if request.endpoint == "lanxi_auth.login" and not request.is_json:
                # A login form left open longer than the session lives: a new form, not JSON.
                page = render_template(
                    "login.html", next="/", error="the login form expired; please try again"
                )
                return page, 403
            return refuse(403, csrf_refusal)
        return None
    ident = identity()
    if ident is None:
        if wants_json() or unsafe:
            return refuse(401, "login required")
        return redirect(url_for("lanxi_auth.login", next=request.full_path.rstrip("?")))
    if ident.share is not None and not _share_permits(ident.share):
        message = "this share link does not give access to that"
        if not wants_json():
            # A page for a browser (a share viewer who followed a link or typed /history):
            # what the link shows, and the way to log in for more.
            shown = "the live view" if ident.share.scope == "live" else "one capture"
            page = render_template(
                "login.html",
                next=request.full_path.rstrip("?"),
                error=f"{message}: it shows {shown} only. Log in to see more.",
            )
            return page, 403
        return refuse(403, message)
    if unsafe and not (same_origin() and csrf_ok()):
        return refuse(403, csrf_refusal)
    if unsafe and _needs_control(request.path):
        refusal = _control_refusal(ident)
        if refusal is not None:
            status, message, snapshot = refusal
            if status != 401:
                _audit_request(status, error=message)
            return refuse(status, message, **({"control": snapshot} if snapshot else {}))
    return None


_AUDITED = "lanxi.audited"  # in the WSGI environ: this request has its audit entry


def _audit_request(status: int, **extra: Any) -> None:
    """One audit entry for this state-changing API request (marked, so it is not written
    again after the response)."""
    body = None
    if request.is_json and status not in (413,):
        try:  # a body refused as too large or too deep is not read again for the log
            body = request.get_json(silent=True)
        except (HTTPException, RecursionError):
            body = None
    details: dict[str, Any] = {"ok": status < 400, "status": status, **extra}
    small = _small_body(body)
    if small:
        details["body"] = small
    audit(_audit_action(request.method, request.path), **details)
    request.environ[_AUDITED] = True


def _needs_control(path: str) -> bool:
    cfg = current_app.config
    if any(path.startswith(p) for p in cfg["LANXI_CONTROL_EXEMPT"]):
        return False
    return any(path.startswith(p) for p in cfg["LANXI_CONTROL_PREFIXES"])


def _after(response: Response) -> Response:
    # Audit every state-changing API request that reached a view. The gate's refusals are
    # audited by the gate (a 409 for someone else's control) or are anonymous noise (401/403).
    if (
        request.method not in SAFE_METHODS
        and request.path.startswith("/api/")
        and not request.path.startswith("/api/auth/")
        and response.status_code not in (401, 403)
        and request.endpoint is not None
        and not request.environ.get(_AUDITED)
    ):
        _audit_request(response.status_code)
    # The security headers are added around the whole WSGI app (webapp/web/headers.py).
    if access().enabled:
        response.vary.add("Cookie")
    return response


def _template_context() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "auth_enabled": enabled(),
        "auth_user": current_user(),
        "auth_role": current_role(),
    }
