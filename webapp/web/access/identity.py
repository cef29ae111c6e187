"""Who is asking: the role ordering, the identity of the HTTP request or Socket.IO event being
handled, and the per-app :class:`~webapp.web.access.accesscontrol.AccessControl`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import (
    current_app,
    g,
    has_app_context,
    has_request_context,
    session,
)

from webapp.web.access.accounts import ROLES, Share
from webapp.web.access.settings import EXTENSION

if TYPE_CHECKING:
    from webapp.web.access.accesscontrol import AccessControl


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


def access() -> AccessControl:
    ac = current_app.extensions.get(EXTENSION)
    if ac is None:
        raise RuntimeError("access.install.init_app() has not been called for this app")
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
        ac.ensure_socket_gate()
        ac.start_sweeper()
    ident = identity()
    if ident is None or (ident.share is not None and ident.share.scope != "live"):
        return None
    return ident.role
