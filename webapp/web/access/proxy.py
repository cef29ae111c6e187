"""Trusting the reverse proxies in front: client address, scheme and host from their headers."""

from __future__ import annotations

from flask import Flask


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
