"""Installing access control on an app: sessions, CSRF, the request gate, the login, share-link
and setup routes, and the reverse-proxy headers.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from flask import Flask

from webapp.web.access import gate
from webapp.web.access.accesscontrol import AccessControl
from webapp.web.access.proxy import trust_proxy
from webapp.web.access.sessions import SessionInterface, secret_key, tighten
from webapp.web.access.settings import DEFAULTS, EXTENSION, SECRET_KEY_FILE
from webapp.web.access.setuptoken import bp as setup_bp
from webapp.web.access.sockets import init_socketio
from webapp.web.access.views import bp

log = logging.getLogger(__name__)


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
        app.config["SECRET_KEY"] = secret_key(data_dir)
    tighten(data_dir / SECRET_KEY_FILE)
    app.config.update(
        SESSION_COOKIE_NAME="lanxi_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE=app.config["LANXI_COOKIE_SAMESITE"],
        PERMANENT_SESSION_LIFETIME=timedelta(hours=float(app.config["LANXI_SESSION_HOURS"])),
    )
    app.session_interface = SessionInterface()

    ac = AccessControl(app, data_dir, bool(enabled))
    app.extensions[EXTENSION] = ac
    if enabled:
        for name in ("users.json", "shares.json", "audit.log"):
            tighten(data_dir / name)
        if not ac.users.any():
            log.warning("access control is on but %s has no users: nobody can log in", data_dir)

    if proxy_hops is None:
        proxy_hops = int(os.environ.get("LANXI_PROXY_HOPS") or 0)
    if proxy_hops:
        trust_proxy(app, proxy_hops)

    app.register_blueprint(bp)
    app.register_blueprint(setup_bp)
    app.before_request(gate.check_request)
    app.after_request(gate.after_request)
    app.context_processor(gate.template_context)
    if "socketio" in app.extensions:
        init_socketio(app.extensions["socketio"])
