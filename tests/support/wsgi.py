"""A Flask app on a real (werkzeug, threaded) HTTP server on a free port of 127.0.0.1, for
tests that need real sockets without a whole ``serve`` process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server


@contextmanager
def served_app(app: Any) -> Iterator[str]:
    """Yields the base URL while the server runs; shuts it down afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
