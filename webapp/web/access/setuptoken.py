"""The first admin account, created from the browser with a one-time set-up token.

``serve --setup-token`` on a data directory without users (what the Docker image runs, on
``0.0.0.0``) starts with access control on, makes one random token, and prints the link that
carries it (as Jupyter does). The first visitor with that link chooses the admin's name and
password; the token is then dead, in this process and after a restart (users exist, so no new
token is made). The token lives in memory only and is compared in constant time.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from webapp import runtime
from webapp.web.access.accounts import AccessError, UserStore
from webapp.web.access.audit import audit
from webapp.web.access.identity import access

bp = Blueprint("lanxi_setup", __name__)
EXTENSION = "lanxi_setup_token"


def setup_mode(requested: bool, data_dir: Path) -> bool:
    """Whether ``serve`` runs in set-up-token mode: asked for, and no users yet."""
    if not requested:
        return False
    try:
        return not UserStore(Path(data_dir)).any()
    except AccessError:
        return False  # an unreadable users.json is refused as before


class SetupToken:
    def __init__(self) -> None:
        self.token: str | None = secrets.token_urlsafe(32)
        self._lock = threading.Lock()

    def valid(self, candidate: str) -> bool:
        token = self.token
        return token is not None and secrets.compare_digest(token.encode(), candidate.encode())

    def spend(self, candidate: str) -> bool:
        """True once, for the right token; then never again."""
        with self._lock:
            if not self.valid(candidate):
                return False
            self.token = None
            return True


def install(app: Any) -> str:
    """Arms the set-up route on ``app``; returns the token (for the printed link)."""
    holder = SetupToken()
    app.extensions[EXTENSION] = holder
    assert holder.token is not None
    return holder.token


def _holder() -> SetupToken | None:
    return current_app.extensions.get(EXTENSION)


@bp.route("/setup-admin/<token>", methods=["GET", "POST"])
def setup_admin(token: str) -> Any:
    holder = _holder()
    if holder is None or not holder.valid(token):
        return render_template("setup_admin.html", token=None, error=(
            "this set-up link is not valid (any more): the admin account exists; log in"
        )), 404  # fmt: skip
    if request.method == "GET":
        return render_template("setup_admin.html", token=token, error=None)
    name = request.form.get("username", "")
    password = request.form.get("password", "")
    users = access().users
    with holder._lock:  # one visitor at a time; the token dies with the first account
        if not holder.valid(token):
            return redirect(url_for("lanxi_auth.login"))
        try:
            user = runtime.offload(users.add, name, "admin", password)
        except AccessError as exc:
            return render_template("setup_admin.html", token=token, error=str(exc)), 400
        holder.token = None
    audit("user-add", actor="setup-token", user=user.name, role=user.role)
    return redirect(url_for("lanxi_auth.login"))
