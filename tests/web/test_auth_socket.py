"""Access control over Socket.IO on the real dashboard app: anonymous connections refused
(through the test client and through a real server's handshake), every control event checked
for role on the server, and sockets of a revoked share link or ended login disconnected."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
import socketio
from auth_support import (
    CAPTURE_ID,
    PASSWORD,
    cheap_hashes,  # noqa: F401 - autouse fixture
    login,
    secure_app,
    send,
    share_token,
)

from tests.support.live_packets import unpacked
from tests.support.waiting import wait_until
from tests.support.wsgi import served_app
from webapp.web.access.accounts import ShareStore, UserStore
from webapp.web.access.settings import EXTENSION
from webapp.web.access.sockets import socket_require_control, socket_require_role

CONTROL_EVENTS = ["capture:arm", "capture:start", "capture:stop", "capture:disarm"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def app(data_dir, bus, orchestrator):
    # Sockets of a link revoked in another process are found by a periodic sweep; make it quick.
    app = secure_app(data_dir, bus, orchestrator, LANXI_SOCKET_RECHECK_S=0.05)
    app.test_sockets = []
    yield app
    # The sweep runs while sockets are open; a real server's may outlive the test.
    for client in app.test_sockets:
        if client.is_connected():
            client.disconnect()
    ac = app.extensions[EXTENSION]
    ac.stop()
    deadline = time.monotonic() + 5
    while ac._sweeper_running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not ac._sweeper_running


def sio_client(app, http_client=None):
    client = app.extensions["lanxi"].socketio.test_client(app, flask_test_client=http_client)
    app.test_sockets.append(client)
    return client


def share_guest(app, data_dir: Path, scope: str, capture_id: str | None = None):
    """A browser that opened a share link: its HTTP client, the link's token and id."""
    token, share_id = share_token(data_dir, scope, capture_id)
    guest = app.test_client()
    guest.get(f"/share/{token}")
    return guest, token, share_id


def add_rig(app) -> None:
    admin = login(app, "ada")
    assert send(admin, "POST", "/api/rig/modules", {"address": "127.0.5.1"}).status_code == 201
    send(admin, "POST", "/api/auth/control/release")


def test_anonymous_socket_is_refused(app):
    assert not sio_client(app).is_connected()
    assert not sio_client(app, app.test_client()).is_connected()


def test_logged_in_viewer_gets_the_state(app):
    viewer = sio_client(app, login(app, "vic"))
    assert viewer.is_connected()
    assert unpacked(viewer.get_received())[0]["name"] == "state"


@pytest.mark.parametrize("event", CONTROL_EVENTS)
def test_viewer_cannot_control_over_socketio(app, orchestrator, event):
    add_rig(app)
    viewer = sio_client(app, login(app, "vic"))
    ack = viewer.emit(event, {"name": "Run", "duration_s": 1}, callback=True)
    assert ack["ok"] is False and ack["status"] == 403
    assert orchestrator.calls == []


def test_operator_controls_over_socketio(app, orchestrator):
    add_rig(app)
    op = sio_client(app, login(app, "olga"))
    assert op.emit("capture:start", {"name": "Run", "duration_s": 1}, callback=True)["ok"]
    assert op.emit("capture:stop", callback=True)["ok"]
    assert [c[0] for c in orchestrator.calls] == ["start", "stop"]


def test_every_event_rechecks_the_session(app, data_dir, orchestrator):
    add_rig(app)
    app.config["LANXI_SOCKET_RECHECK_S"] = 60  # no sweep: the event itself must refuse
    op = sio_client(app, login(app, "olga"))
    assert op.is_connected()
    UserStore(data_dir).remove("olga")  # `lanxi-dashboard user remove olga`, another process
    ack = op.emit("capture:start", {"name": "Run", "duration_s": 1}, callback=True)
    assert ack["ok"] is False
    assert orchestrator.calls == []


def test_socket_decorators_check_role_and_control_lock(app, orchestrator):
    dash = app.extensions["lanxi"]
    done = []

    @socket_require_control("test-action")
    def control_handler(data=None):
        done.append(data)
        return {"ok": True}

    @socket_require_role("admin")
    def admin_handler(data=None):
        return {"ok": True}

    dash.socketio.on_event("test:control", control_handler)
    dash.socketio.on_event("test:admin", admin_handler)
    olga_http, otto_http = login(app, "olga"), login(app, "otto")
    olga, otto, vic = (sio_client(app, c) for c in (olga_http, otto_http, login(app, "vic")))
    for c in (olga, otto, vic):
        unpacked(c.get_received())

    ack = vic.emit("test:control", {"x": 1}, callback=True)
    assert ack == {"ok": False, "error": "this needs the operator role", "status": 403}
    # (a viewer count pushed by the sender may come in between: not what this is about)
    assert [p["name"] for p in unpacked(vic.get_received()) if p["name"] != "viewers"] == [
        "auth_error"
    ]
    assert olga.emit("test:control", {"x": 2}, callback=True) == {"ok": True}  # takes control
    ack = otto.emit("test:control", {"x": 3}, callback=True)
    assert ack["status"] == 409 and ack["control"]["holder"]["user"] == "olga"
    assert done == [{"x": 2}]
    assert olga.emit("test:admin", callback=True)["status"] == 403

    entries = login(app, "ada").get("/api/auth/audit").get_json()["entries"]
    mine = [(e["actor"], e["ok"]) for e in entries if e["action"] == "test-action"]
    assert mine == [("vic", False), ("olga", True), ("otto", False)]


def test_capture_share_link_cannot_open_a_socket(app, data_dir):
    guest, _, _ = share_guest(app, data_dir, "capture", CAPTURE_ID)
    assert not sio_client(app, guest).is_connected()


def test_live_socket_of_a_revoked_share_link_is_disconnected_at_once(app, data_dir):
    guest, _, share_id = share_guest(app, data_dir, "live")
    live = sio_client(app, guest)
    assert live.is_connected()
    assert live.emit("capture:start", {"name": "x"}, callback=True)["status"] == 403
    app.config["LANXI_SOCKET_RECHECK_S"] = 60  # the HTTP revoke itself must disconnect
    admin = login(app, "ada")
    assert send(admin, "DELETE", f"/api/auth/shares/{share_id}").status_code == 200
    assert not live.is_connected()
    assert not sio_client(app, guest).is_connected()  # and cannot come back


def test_live_socket_of_a_link_revoked_from_the_command_line_is_disconnected(app, data_dir):
    guest, token, _ = share_guest(app, data_dir, "live")
    live = sio_client(app, guest)
    assert live.is_connected()
    ShareStore(data_dir).revoke(token)  # another process: only the sweep can notice
    wait_until(lambda: not live.is_connected())


def test_logout_disconnects_the_sessions_sockets(app):
    http = login(app, "vic")
    sock = sio_client(app, http)
    assert sock.is_connected()
    send(http, "POST", "/logout")
    assert not sock.is_connected()


# --- a real server: the Engine.IO handshake itself is refused ------------------------------


@pytest.fixture
def server_url(app):
    with served_app(app) as base:
        yield base


def http_login(url: str, name: str) -> requests.Session:
    s = requests.Session()
    token = s.get(f"{url}/api/auth/session", timeout=5).json()["csrf_token"]
    r = s.post(
        f"{url}/login",
        json={"username": name, "password": PASSWORD},
        headers={"X-CSRF-Token": token},
        timeout=5,
    )
    assert r.status_code == 200
    return s


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_real_handshake_refuses_anonymous_and_cross_site(server_url, transport):
    anonymous = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect(server_url, transports=[transport], wait_timeout=5)

    session = http_login(server_url, "vic")
    cross = socketio.Client(reconnection=False, http_session=session)
    with pytest.raises(socketio.exceptions.ConnectionError):
        cross.connect(
            server_url,
            transports=[transport],
            headers={"Origin": "https://evil.example"},
            wait_timeout=5,
        )

    got_state = threading.Event()
    viewer = socketio.Client(reconnection=False, http_session=session)
    viewer.on("state", lambda _snap: got_state.set())
    viewer.connect(server_url, transports=[transport], wait_timeout=5)
    try:
        assert got_state.wait(5)
        ack = viewer.call("capture:start", {"name": "Run"}, timeout=5)
        assert ack["ok"] is False and ack["status"] == 403
    finally:
        viewer.disconnect()


def test_real_handshake_is_refused_before_any_socketio_handler(server_url):
    requests.get(f"{server_url}/login", timeout=5)  # a browser loads a page first
    r = requests.get(f"{server_url}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert r.status_code == 401
    assert r.json() == {"message": "login required"}
    session = http_login(server_url, "vic")
    r = session.get(f"{server_url}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert r.status_code == 200 and '"sid"' in r.text


def test_socket_control_events_respect_the_control_lock_and_are_audited(app, orchestrator):
    add_rig(app)
    olga_http, otto_http = login(app, "olga"), login(app, "otto")
    olga, otto = sio_client(app, olga_http), sio_client(app, otto_http)
    assert olga.emit("capture:start", {"name": "Run", "duration_s": 1}, callback=True)["ok"]
    unpacked(otto.get_received())
    ack = otto.emit("capture:stop", callback=True)
    assert ack["ok"] is False and ack["status"] == 409
    assert ack["control"]["holder"]["user"] == "olga"
    assert [p["name"] for p in unpacked(otto.get_received())] == ["auth_error"]
    assert send(otto_http, "POST", "/api/capture/stop").status_code == 409  # same over HTTP
    assert olga.emit("capture:stop", callback=True)["ok"]
    assert [c[0] for c in orchestrator.calls] == ["start", "stop"]

    entries = login(app, "ada").get("/api/auth/audit").get_json()["entries"]
    socket_entries = [
        (e["actor"], e["action"], e["ok"]) for e in entries if e.get("via") == "socket"
    ]
    assert socket_entries == [
        ("olga", "capture-start", True),
        ("otto", "capture-stop", False),
        ("olga", "capture-stop", True),
    ]
    start = next(e for e in entries if e.get("via") == "socket")
    assert start["body"] == {"name": "Run", "duration_s": 1}


def test_every_viewer_is_told_who_holds_control(app):
    add_rig(app)
    viewer = sio_client(app, login(app, "vic"))
    unpacked(viewer.get_received())
    olga = login(app, "olga")
    assert send(olga, "POST", "/api/auth/control/request").get_json()["granted"] is True
    pushed = [p["args"][0] for p in unpacked(viewer.get_received()) if p["name"] == "control-lock"]
    assert pushed[-1]["holder"]["user"] == "olga" and pushed[-1]["enabled"] is True
    send(olga, "POST", "/api/auth/control/release")
    pushed = [p["args"][0] for p in unpacked(viewer.get_received()) if p["name"] == "control-lock"]
    assert pushed[-1]["holder"] is None
