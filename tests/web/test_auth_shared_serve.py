"""Two real ``serve --message-queue`` processes (eventlet, as users run them) on one data
directory and one redis-server: the control lock, a logout and the pushes of lock changes reach
the other process's browsers within moments."""

from __future__ import annotations

import argparse
import threading
import time

import pytest
import requests
import socketio

from tests.support.accounts import PASSWORD, add_users
from tests.support.processes import serve
from webapp.web import cli as web_cli


@pytest.fixture(scope="module")
def message_queue_option():
    parser = argparse.ArgumentParser()
    web_cli.add_parser(parser.add_subparsers())
    serve_parser = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    if not any("--message-queue" in a.option_strings for a in serve_parser._actions):
        pytest.skip("serve has no --message-queue option in this build")


@pytest.fixture
def two_processes(message_queue_option, tmp_path, redis_url):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_users(data_dir, {"olga": "operator", "otto": "operator", "vic": "viewer"})
    with (
        serve(data_dir, "--message-queue", redis_url, ready_path="/login") as a,
        serve(data_dir, "--message-queue", redis_url, ready_path="/login") as b,
    ):
        yield a, b


def login(base: str, name: str) -> requests.Session:
    s = requests.Session()
    token = s.get(f"{base}/api/auth/session", timeout=5).json()["csrf_token"]
    r = s.post(
        f"{base}/login",
        json={"username": name, "password": PASSWORD},
        headers={"X-CSRF-Token": token},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    s.headers.update({"X-CSRF-Token": r.json()["csrf_token"], "Origin": base})
    return s


def test_lock_logout_and_pushes_cross_real_processes(two_processes):
    a, b = two_processes
    olga = login(a, "olga")
    assert olga.post(f"{a}/api/auth/control/request", timeout=5).json()["granted"] is True
    otto = login(b, "otto")
    assert otto.get(f"{b}/api/auth/control", timeout=5).json()["holder"]["user"] == "olga"
    assert otto.post(f"{b}/api/auth/control/request", timeout=5).status_code == 202

    viewer_http = login(b, "vic")
    viewer_http.headers.pop("Origin")  # the socket client sends its own
    pushes: list[dict] = []
    freed = threading.Event()

    def on_lock(data: dict) -> None:
        pushes.append(data)
        if data["holder"] is None:
            freed.set()

    viewer = socketio.Client(reconnection=False, http_session=viewer_http)
    viewer.on("control-lock", on_lock)
    ended = threading.Event()
    viewer.on("disconnect", lambda *_: ended.set())
    viewer.connect(b, transports=["websocket"], wait_timeout=5)
    try:
        released = time.monotonic()
        assert olga.post(f"{a}/api/auth/control/release", timeout=5).status_code == 200
        assert freed.wait(5)
        assert time.monotonic() - released < 1.0

        vic_a = requests.Session()  # the viewer's browser, sent to A by the proxy
        vic_a.cookies.update(viewer_http.cookies)
        token = vic_a.get(f"{a}/api/auth/session", timeout=5).json()["csrf_token"]
        logged_out = time.monotonic()
        vic_a.post(f"{a}/logout", headers={"X-CSRF-Token": token, "Origin": a}, timeout=5)
        assert ended.wait(5)  # B dropped the socket of the ended login
        assert time.monotonic() - logged_out < 1.0
        assert viewer_http.get(f"{b}/api/state", timeout=5).status_code == 401
    finally:
        viewer.disconnect()
