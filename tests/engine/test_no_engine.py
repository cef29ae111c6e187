"""A web process on a message queue where no capture engine runs: pages and state still
answer, and every control request is refused with a clear 503 at once (HTTP and Socket.IO)."""

from __future__ import annotations

import time

import pytest

from webapp.web.access.settings import EXTENSION
from webapp.web.app import create_app


@pytest.fixture
def app(redis_url, tmp_path):
    app = create_app(tmp_path, message_queue=redis_url)
    yield app
    app.extensions["lanxi"].engine.close()
    app.extensions[EXTENSION].stop()  # the shared access store's notices too


def test_control_requests_get_a_503_naming_the_missing_engine(app, tmp_path):
    http = app.test_client()
    t0 = time.monotonic()
    for path in ("/api/capture/start", "/api/capture/arm", "/api/rig/refresh"):
        r = http.post(path, json={})
        assert r.status_code == 503, (path, r.get_json())
        assert r.get_json()["error"].startswith("the capture engine is not running"), path
    assert time.monotonic() - t0 < 2
    r = http.post("/api/rig/modules", json={"address": "127.0.0.1:5000"})
    assert r.status_code == 503
    assert not (tmp_path / "rig.json").exists()  # nothing done behind the user's back


def test_the_state_still_answers_and_says_the_engine_is_missing(app):
    http = app.test_client()
    state = http.get("/api/state").get_json()
    assert state["phase"]["phase"] == "idle"
    assert state["control"]["engine"].startswith("the capture engine is not running")
    assert http.get("/").status_code == 200


def test_socketio_control_events_get_the_same_503(app):
    from flask_socketio import SocketIO

    socketio: SocketIO = app.extensions["lanxi"].socketio
    client = socketio.test_client(app)
    assert client.is_connected()
    ack = client.emit("capture:start", {}, callback=True)
    assert ack["ok"] is False and ack["status"] == 503, ack
    assert ack["error"].startswith("the capture engine is not running")
    client.disconnect()
