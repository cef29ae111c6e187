"""The security headers every response carries, added at the WSGI level.

Flask's ``after_request`` does not see what the python-socketio middleware answers (the
Engine.IO polling and handshake responses), so the headers are added around the whole WSGI
application instead: pages, the API, static files, errors and Socket.IO alike
(docs/security.md, "Response headers").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # Templates and scripts set a few style attributes; no script runs from markup.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
)


class SecurityHeaders:
    """WSGI middleware: adds each of :data:`SECURITY_HEADERS` a response does not set itself."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers = list(headers) + [
                (name, value) for name, value in SECURITY_HEADERS if name.lower() not in present
            ]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
