"""Everything access control keeps per app: the stores of users, share links and the audit log,
the access store (control lock, ended sessions, revoked links), the login limits, and the
Socket.IO side (control events guarded, sockets of ended logins dropped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from webapp.auditlog import AuditLog
from webapp.web.access.accounts import Share, ShareStore, UserStore
from webapp.web.access.audit import small_body
from webapp.web.access.controllock import ControlLock
from webapp.web.access.guards import control_refusal
from webapp.web.access.identity import LOCAL, Identity, role_at_least
from webapp.web.access.ratelimit import LoginLimits
from webapp.web.access.settings import AUTH_ERROR_EVENT
from webapp.web.access.sockets import init_socketio
from webapp.web.access.store import NOTICE_RESYNC, NOTICE_SWEEP, AccessStore, MemoryAccessStore

log = logging.getLogger(__name__)


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
                refusal = control_refusal(ident)
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
            small = small_body(args[0] if args else None)
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

    def ensure_socket_gate(self) -> None:
        """Gate this app's Socket.IO, once it has one, and guard its control events."""
        socketio = self.app.extensions.get("socketio")
        if socketio is None:
            return
        if self.socketio is None:
            init_socketio(socketio, self.app)
        # Handlers may be registered after init_socketio (create_app registers them last).
        self.guard_control_events(socketio)

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
