"""The documented security headers on every response, Socket.IO's own included, over real
HTTP; and the Origin check comparing the scheme."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.support.wsgi import served_app
from webapp.web.headers import SECURITY_HEADERS


@pytest.fixture
def url(app) -> Iterator[str]:
    with served_app(app) as base:
        yield base


@pytest.mark.parametrize(
    "path",
    [
        "/socket.io/?EIO=4&transport=polling",  # answered by the python-socketio middleware
        "/",
        "/api/state",
        "/api/no-such-thing",
        "/static/no-such-file.js",
    ],
)
def test_every_response_carries_the_security_headers(url, path):
    r = requests.get(f"{url}{path}", timeout=5)
    for name, value in SECURITY_HEADERS:
        assert r.headers.get(name) == value, (path, name, r.status_code)
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_a_socketio_polling_response_is_really_socketio(url):
    r = requests.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert r.status_code == 200 and r.text.startswith("0{") and '"sid"' in r.text
    assert r.headers["X-Frame-Options"] == "DENY"


def test_the_origin_check_compares_the_scheme(url, orchestrator):
    r = requests.post(
        f"{url}/api/rig/modules",
        json={"address": "127.0.3.1"},
        headers={"Origin": url.replace("http://", "https://")},
        timeout=5,
    )
    assert r.status_code == 403, r.text
    r = requests.post(
        f"{url}/api/rig/modules", json={"address": "127.0.3.1"}, headers={"Origin": url}, timeout=5
    )
    assert r.status_code == 201, r.text
