"""Request checks that need no user store: where a request comes from and whom it addresses.

* ``same_origin()``: the browser's Origin (or Referer) names this site, or the request is not
  from a browser at all;
* ``is_loopback(host)`` / ``host_is_local()``: loopback names, for binding and for the DNS
  rebinding check of a dashboard without access control;
* ``csrf_token()`` / ``csrf_ok()``: the per-session CSRF token and its constant-time check.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from flask import current_app, request, session

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def _netloc(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme.lower())
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return netloc


def _request_origin() -> str | None:
    """The origin the browser says the request comes from (Origin, else Referer's)."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return None
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
    return origin


def same_origin() -> bool:
    """False when a browser says the request comes from another site.

    Requests without Origin and Referer (scripts, curl) pass: they carry no ambient browser
    credentials an attacker could borrow, and with access control on they still need the token.
    Scheme and host are compared: ``http://`` and ``https://`` on one host are different
    origins. Behind a TLS proxy, ``--proxy-hops`` makes the request's scheme the proxy's.
    """
    origin = _request_origin()
    if origin is None:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    if not parts.netloc:
        return False
    theirs = f"{parts.scheme.lower()}://{_netloc(parts.scheme, parts.netloc)}"
    ours = f"{request.scheme.lower()}://{_netloc(request.scheme, request.host)}"
    if hmac.compare_digest(theirs, ours):
        return True
    trusted = current_app.config.get("LANXI_TRUSTED_ORIGINS") or ()
    return origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in trusted}


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = _host_name(host.strip()).lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


def host_is_local() -> bool:
    """With access control off, only loopback Host names are answered (DNS rebinding)."""
    if is_loopback(request.host):
        return True
    allowed = {h.lower() for h in current_app.config.get("LANXI_ALLOWED_HOSTS") or ()}
    return _host_name(request.host).lower() in allowed


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok() -> bool:
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent = request.form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not isinstance(sent, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode("utf-8", "surrogateescape"))
