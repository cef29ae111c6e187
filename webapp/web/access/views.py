"""The access-control routes: login, logout, share links, users, control lock, audit log.

Registered by ``install.init_app``; the request gate (:mod:`webapp.web.access.gate`) runs before
each of them (CSRF included), so only the role checks are spelled out here.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from webapp import runtime
from webapp.web.access.accounts import AccessError
from webapp.web.access.audit import audit
from webapp.web.access.gate import refuse, wants_json
from webapp.web.access.guards import control_holder, control_state, require_role
from webapp.web.access.identity import (
    access,
    current_share,
    current_user,
    forget_identity,
    identity,
    role_at_least,
)
from webapp.web.access.requestchecks import csrf_token
from webapp.web.access.safepaths import capture_dir

log = logging.getLogger(__name__)
bp = Blueprint("lanxi_auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a local path: never another site (open redirect), never ``//host``."""
    if not target or not isinstance(target, str):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target


def _start_session(**values: Any) -> None:
    old = session.get("nonce")
    session.clear()
    if old:
        access().end_session(old)
    session.permanent = True
    session.update(values)
    session["csrf"] = secrets.token_urlsafe(32)
    forget_identity()


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    ac = access()
    if request.method == "GET":
        if not ac.enabled:
            return redirect("/")
        return render_template("login.html", next=_safe_next(request.args.get("next")), error=None)

    as_json = request.is_json
    data = request.get_json(silent=True) if as_json else request.form
    data = data if hasattr(data, "get") else {}
    name = data.get("username") or data.get("name") or ""
    password = data.get("password") or ""
    target = _safe_next(data.get("next"))

    def answer(status: int, error: str, headers: dict[str, str] | None = None) -> Any:
        if as_json:
            resp = jsonify(error=error)
        else:
            resp = current_app.make_response(
                render_template("login.html", next=target, error=error, username=name)
            )
        resp.status_code = status
        resp.headers.update(headers or {})
        return resp

    if not ac.enabled:
        return answer(400, "access control is off: there is nothing to log in to")
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        return answer(400, "user name and password are required")
    addr = request.remote_addr
    throttle = ac.limiter.throttle(name, addr)
    if throttle is not None:
        log.warning("login for %r from %s throttled (%s)", name, addr, throttle.scope)
        return answer(429, throttle.message(), {"Retry-After": str(throttle.wait_s)})
    user = runtime.offload(ac.users.verify, name, password)  # argon2 takes ~0.1 s of CPU
    if user is None:
        ac.limiter.failure(name, addr)
        audit("login-failed", actor="anonymous", user=name[:64])
        return answer(401, "wrong user name or password")
    ac.limiter.success(name, addr)
    _start_session(
        user=user.name, epoch=user.epoch, nonce=secrets.token_urlsafe(16), login_at=time.time()
    )
    audit("login", actor=user.name)
    if as_json:
        return jsonify(ok=True, user=user.name, role=user.role, csrf_token=session["csrf"])
    return redirect(target)


@bp.post("/logout")
def logout() -> Any:
    ac = access()
    ident = identity()
    if ac.enabled and ident is not None and ident.user:
        audit("logout")
        ac.control.forget(ident.user)
    ac.end_session(session.get("nonce"))
    session.clear()
    forget_identity()
    ac.sessions_changed()
    if request.is_json or wants_json():
        return jsonify(ok=True)
    return redirect(url_for("lanxi_auth.login") if ac.enabled else "/")


@bp.get("/share/<token>")
def share_landing(token: str) -> Any:
    ac = access()
    if not ac.enabled:
        return redirect("/")
    share = ac.shares.by_token(token)
    if share is None or not share.active():
        return render_template("login.html", next="/", error="this share link is not valid (any "
                               "more); ask for a new one"), 404  # fmt: skip
    ident = identity()
    if ident is None or ident.share is not None:
        # A logged-in user keeps their own session; anyone else becomes this link's viewer.
        _start_session(share=share.id)
        audit("share-open", actor=f"share:{share.id}", scope=share.scope)
    if share.scope == "live":
        return redirect(current_app.config["LANXI_SHARE_LIVE_URL"])
    return redirect(url_for("lanxi_auth.shared_capture"))


@bp.get("/shared/capture")
def shared_capture() -> Any:
    share = current_share()
    if share is None or share.scope != "capture" or not share.capture_id:
        return refuse(404, "no capture is shared with this session")
    from webapp.web import history  # the History page's reading of capture folders

    detail = history.capture_detail(access().data_dir, share.capture_id)
    return render_template(
        "share_capture.html",
        capture_id=share.capture_id,
        summary=detail["summary"] if detail else None,
    )


@bp.get("/api/auth/session")
def session_info() -> Any:
    ac = access()
    ident = identity()
    return jsonify(
        enabled=ac.enabled,
        user=ident.user if ident else None,
        role=ident.role if ident else None,
        share=ident.share.public() if ident and ident.share else None,
        csrf_token=csrf_token(),
        control=ac.control.snapshot(),
    )


@bp.post("/api/auth/password")
@require_role("viewer")
def change_own_password() -> Any:
    ident = identity()
    if ident is None or ident.user is None:
        return refuse(403, "only a logged-in user can change a password")
    body = request.get_json(silent=True) or {}
    ac = access()
    current = body.get("current") if isinstance(body, dict) else None
    new = body.get("new") if isinstance(body, dict) else None
    if (
        not isinstance(current, str)
        or runtime.offload(ac.users.verify, ident.user, current) is None
    ):
        return refuse(400, "the current password is wrong", field="current")
    try:
        user = runtime.offload(ac.users.set_password, ident.user, new)
    except AccessError as exc:
        return refuse(400, str(exc), field="new")
    session["epoch"] = user.epoch  # this session stays; every other one of this user ends
    forget_identity()
    audit("user-password", user=user.name)
    ac.sessions_changed()
    return jsonify(ok=True)


# --- routes: users (admin) -----------------------------------------------------------------


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@bp.get("/api/auth/users")
@require_role("admin")
def list_users() -> Any:
    return jsonify(users=[u.public() for u in access().users.list()])


@bp.post("/api/auth/users")
@require_role("admin")
def add_user() -> Any:
    body = _json_object()
    ac = access()
    try:
        user = runtime.offload(
            ac.users.add, body.get("name"), body.get("role"), body.get("password")
        )
    except AccessError as exc:
        return refuse(400, str(exc))
    audit("user-add", user=user.name, role=user.role)
    return jsonify(user.public()), 201


@bp.route("/api/auth/users/<name>", methods=["PATCH", "PUT"])
@require_role("admin")
def change_user(name: str) -> Any:
    body = _json_object()
    ac = access()
    if ac.users.get(name) is None:
        return refuse(404, f"no user {name}")
    unknown = set(body) - {"role", "password"}
    if unknown or not body:
        return refuse(
            400, "send role and/or password", field=sorted(unknown)[0] if unknown else None
        )
    try:
        if "role" in body:
            user = ac.users.set_role(name, body["role"])
            audit("user-role", user=name, role=user.role)
            if not role_at_least(user.role, "operator"):
                ac.control.forget(name)
        if "password" in body:
            runtime.offload(ac.users.set_password, name, body["password"])
            audit("user-password", user=name)
    except AccessError as exc:
        return refuse(400, str(exc))
    ac.sessions_changed()
    user = ac.users.get(name)
    return jsonify(user.public() if user else None)


@bp.delete("/api/auth/users/<name>")
@require_role("admin")
def remove_user(name: str) -> Any:
    ac = access()
    try:
        ac.users.remove(name)
    except AccessError as exc:
        return refuse(404 if ac.users.get(name) is None else 400, str(exc))
    ac.control.forget(name)
    audit("user-remove", user=name)
    ac.sessions_changed()
    return jsonify(ok=True)


# --- routes: share links (admin) -----------------------------------------------------------


@bp.get("/api/auth/shares")
@require_role("admin")
def list_shares() -> Any:
    return jsonify(shares=[s.public() for s in access().shares.list()])


@bp.post("/api/auth/shares")
@require_role("admin")
def create_share() -> Any:
    body = _json_object()
    ac = access()
    if not ac.enabled:
        return refuse(
            409,
            "share links need access control: without it everybody on this computer already "
            "has full access and a link would give nothing more; add a user "
            "(lanxi-dashboard user add NAME --role admin) and restart serve",
        )
    capture_id = body.get("capture_id")
    live = bool(body.get("live"))
    if live == bool(capture_id):
        return refuse(400, "send either capture_id or live: true", field="capture_id")
    if capture_id is not None:
        try:
            folder = capture_dir(ac.data_dir, capture_id)
        except ValueError as exc:
            return refuse(400, str(exc), field="capture_id")
        if not folder.is_dir():
            return refuse(404, f"no capture {capture_id!r}", field="capture_id")
    expires = body.get("expires_hours")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
        return refuse(400, "expires_hours must be a number", field="expires_hours")
    try:
        token, share = ac.shares.create(
            "live" if live else "capture", capture_id, current_user() or "local", expires
        )
    except AccessError as exc:
        return refuse(400, str(exc), field="expires_hours")
    audit("share-create", share=share.id, scope=share.scope, capture_id=share.capture_id,
          expires=share.expires)  # fmt: skip
    return jsonify(token=token, url=share_url(token), share=share.public()), 201


def share_url(token: str) -> str:
    """The link as the recipient opens it: on the configured public URL (``serve
    --public-url``, app config ``LANXI_PUBLIC_URL``) if there is one, else on the address the
    admin's browser used (behind a trusted proxy, the host the proxy reports)."""
    path = url_for("lanxi_auth.share_landing", token=token)
    base = current_app.config.get("LANXI_PUBLIC_URL") or request.host_url
    return base.rstrip("/") + path


@bp.delete("/api/auth/shares/<share_id>")
@require_role("admin")
def revoke_share(share_id: str) -> Any:
    ac = access()
    try:
        share = ac.revoke_share(share_id)
    except AccessError as exc:
        return refuse(404, str(exc))
    audit("share-revoke", share=share.id)
    return jsonify(share.public())


# --- routes: control lock, audit log -------------------------------------------------------


@bp.get("/api/auth/control")
@require_role("viewer")
def get_control() -> Any:
    return jsonify(control_state())


@bp.post("/api/auth/control/request")
@require_role("operator")
def request_control() -> Any:
    ac = access()
    user = current_user() or "local"
    if ac.control.acquire(user):
        audit("control-acquire")
        return jsonify(granted=True, **control_state())
    ac.control.request(user)
    audit("control-request", holder=(control_holder() or {}).get("user"))
    return jsonify(granted=False, **control_state()), 202


@bp.post("/api/auth/control/take")
@require_role("admin")
def take_control() -> Any:
    ac = access()
    previous = ac.control.take(current_user() or "local")
    audit("control-take", previous=previous.user if previous else None)
    return jsonify(granted=True, **control_state())


@bp.post("/api/auth/control/release")
@require_role("operator")
def release_control_view() -> Any:
    ac = access()
    if not ac.control.release(current_user() or "local"):
        return refuse(409, "you do not hold control", control=ac.control.snapshot())
    audit("control-release")
    return jsonify(control_state())


@bp.get("/api/auth/audit")
@require_role("admin")
def read_audit() -> Any:
    try:
        limit = max(1, min(int(request.args.get("limit", 200)), 10_000))
    except ValueError:
        return refuse(400, "limit must be a whole number", field="limit")
    return jsonify(entries=access().audit_log.tail(limit))
