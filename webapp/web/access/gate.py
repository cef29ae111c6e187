"""The gate in front of every request: login, share-link scope, CSRF and Origin, the control
lock for state-changing API requests, and their audit entries.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from webapp.web.access.accounts import Share
from webapp.web.access.audit import AUDITED, audit_request
from webapp.web.access.guards import control_refusal
from webapp.web.access.identity import access, current_role, current_user, enabled, identity
from webapp.web.access.requestchecks import csrf_ok, csrf_token, host_is_local, same_origin
from webapp.web.access.settings import EXTENSION, SAFE_METHODS

# --- the gate in front of every request ----------------------------------------------------

PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "lanxi_auth.login",
        "lanxi_auth.logout",
        "lanxi_auth.share_landing",
        "lanxi_auth.session_info",
        "lanxi_setup.setup_admin",  # checks its own one-time token (webapp/web/access/setuptoken.py)
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


def check_request() -> Any:
    ac = current_app.extensions[EXTENSION]
    ac.ensure_socket_gate()
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
        refusal = control_refusal(ident)
        if refusal is not None:
            status, message, snapshot = refusal
            if status != 401:
                audit_request(status, error=message)
            return refuse(status, message, **({"control": snapshot} if snapshot else {}))
    return None


def _needs_control(path: str) -> bool:
    cfg = current_app.config
    if any(path.startswith(p) for p in cfg["LANXI_CONTROL_EXEMPT"]):
        return False
    return any(path.startswith(p) for p in cfg["LANXI_CONTROL_PREFIXES"])


def after_request(response: Response) -> Response:
    # Audit every state-changing API request that reached a view. The gate's refusals are
    # audited by the gate (a 409 for someone else's control) or are anonymous noise (401/403).
    if (
        request.method not in SAFE_METHODS
        and request.path.startswith("/api/")
        and not request.path.startswith("/api/auth/")
        and response.status_code not in (401, 403)
        and request.endpoint is not None
        and not request.environ.get(AUDITED)
    ):
        audit_request(response.status_code)
    # The security headers are added around the whole WSGI app (webapp/web/headers.py).
    if access().enabled:
        response.vary.add("Cookie")
    return response


def template_context() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "auth_enabled": enabled(),
        "auth_user": current_user(),
        "auth_role": current_role(),
    }
