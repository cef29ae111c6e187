"""The shipped nginx configuration (docs/nginx/lanxi-dashboard.conf) in front of two real
``serve`` processes, run by Debian's nginx on loopback: pages and the API answer through it,
Socket.IO connects over WebSocket and over long polling, every request of one browser reaches
the same process (sticky), and a browser follows a capture through the proxy."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests
import socketio

from tests.support.browser import LAPTOP, watch_errors
from tests.support.nginx import nginx_proxy, route_to
from tests.support.processes import serve
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """Two dashboards (each with one emulated module) behind nginx: (proxy, upstream URLs)."""
    try:
        from webapp.emulator import EmulatedRig  # noqa: F401
    except ImportError as exc:
        pytest.skip(str(exc))
    with ExitStack() as stack:
        upstreams = []
        for name in ("web1", "web2"):
            data_dir = tmp_path_factory.mktemp(name)
            extra = ("--emulate", "1", "--ptp-lock-seconds", "0.5", "--proxy-hops", "1")
            upstreams.append(stack.enter_context(serve(data_dir, *extra)))
        ports = [urlsplit(u).port for u in upstreams]
        proxy = stack.enter_context(nginx_proxy(tmp_path_factory.mktemp("nginx"), ports))
        yield proxy, upstreams


def upstream_of(proxy, route: str) -> set[str]:
    return {r.upstream for r in proxy.requests() if r.route == route}


def test_pages_and_api_answer_through_nginx(proxied):
    proxy, _ = proxied
    browser = requests.Session()
    page = browser.get(f"{proxy.url}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    route = browser.cookies.get("lanxi_route")
    assert route, page.headers
    assert page.headers["X-Frame-Options"] == "DENY"  # the app's own headers pass through
    state = browser.get(f"{proxy.url}/api/state", timeout=10)
    assert state.status_code == 200 and len(state.json()["rig"]["modules"]) == 1
    assert "Set-Cookie" not in state.headers  # the route is given once
    script = browser.get(f"{proxy.url}/static/dashboard.js", timeout=10)
    assert script.status_code == 200 and "io(" in script.text
    # The app sees the address the browser used (Host, scheme, port through X-Forwarded-*):
    # a same-origin POST is taken, one from another site is refused.
    ours = browser.post(
        f"{proxy.url}/api/rig/refresh", headers={"Origin": proxy.url}, json={}, timeout=10
    )
    assert ours.status_code < 400, ours.text
    other = browser.post(
        f"{proxy.url}/api/rig/refresh",
        headers={"Origin": "http://evil.example"},
        json={},
        timeout=10,
    )
    assert other.status_code == 403
    assert len(upstream_of(proxy, route)) == 1


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_socketio_through_nginx_gets_the_state(proxied, transport):
    proxy, _ = proxied

    def upgrades():
        return [r for r in proxy.requests() if "transport=websocket" in r.uri and r.status == 101]

    before = len(upgrades())
    got: list[dict] = []
    arrived = threading.Event()
    http = requests.Session()
    client = socketio.Client(reconnection=False, http_session=http)
    client.on("state", lambda snap: (got.append(snap), arrived.set()))
    client.connect(proxy.url, transports=[transport], wait_timeout=10)
    try:
        assert arrived.wait(10)
        assert client.transport() == transport
        assert len(got[0]["rig"]["modules"]) == 1
        # A round trip after the connection is established (an ack through the proxy).
        ack = client.call("select-waveform", {"module": "nowhere", "channel": 1}, timeout=10)
        assert isinstance(ack, dict) and "ok" in ack
    finally:
        client.disconnect()
    if transport == "websocket":  # logged by nginx when the WebSocket closes
        wait_until(lambda: len(upgrades()) == before + 1)


def test_every_polling_request_of_one_client_reaches_one_process(proxied):
    proxy, _ = proxied
    http = requests.Session()
    client = socketio.Client(reconnection=False, http_session=http)
    arrived = threading.Event()
    client.on("state", lambda _snap: arrived.set())
    client.connect(proxy.url, transports=["polling"], wait_timeout=10)
    try:
        assert arrived.wait(10)
        for channel in range(1, 11):  # each call: a POST and the long poll's answer
            client.call("select-waveform", {"module": "nowhere", "channel": channel}, timeout=10)
        route = http.cookies.get("lanxi_route")
        connected = [r for r in proxy.requests() if r.route == route]
    finally:
        client.disconnect()
    # Answered while connected: all by the process that knows the connection (another would
    # have answered 400, "invalid session", and the calls above would have failed).
    assert len(connected) >= 20
    assert all(r.uri.startswith("/socket.io/") and r.status == 200 for r in connected)
    assert len({r.upstream for r in connected}) == 1
    # And the requests still open at the disconnect went there too.
    assert {r.upstream for r in proxy.requests() if r.route == route} == {connected[0].upstream}


def test_different_browsers_are_spread_over_the_processes(proxied):
    """The route cookie decides: other cookies land on the other process, each for good."""
    proxy, upstreams = proxied
    seen: dict[str, str] = {}
    for n in range(40):
        route = f"browser-{n}"
        for _ in range(3):
            r = requests.get(f"{proxy.url}/api/state", cookies={"lanxi_route": route}, timeout=10)
            assert r.status_code == 200
        (upstream,) = upstream_of(proxy, route)  # three requests, one process
        seen[route] = upstream
        if len(set(seen.values())) == len(upstreams):
            break
    assert set(seen.values()) == {u.removeprefix("http://") for u in upstreams}


@pytest.mark.browser
def test_a_browser_follows_a_capture_through_nginx(proxied, browser):
    from playwright.sync_api import expect

    proxy, upstreams = proxied
    errors: list[str] = []
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        watch_errors(page, errors)
        page.goto(f"{proxy.url}/capture")
        expect(page.locator("#conn")).to_have_text("live", timeout=10000)
        route = next(c["value"] for c in context.cookies() if c["name"] == "lanxi_route")
        (upstream,) = upstream_of(proxy, route)
        mine = f"http://{upstream}"
        other = next(u for u in upstreams if u != mine)
        (module,) = [
            m["address"] for m in requests.get(f"{mine}/api/state").json()["rig"]["modules"]
        ]

        page.fill("#cap-name", "Through nginx")
        page.click("#btn-start")
        expect(page.locator("#phase-chip")).to_have_attribute(
            "data-phase", "recording", timeout=20000
        )
        expect(page.locator(f'[data-lamp="{module}/1"]')).to_have_attribute(
            "data-color", "green", timeout=5000
        )
        # The capture runs in the process this browser is kept with, not in the other one.
        assert requests.get(f"{mine}/api/state", timeout=5).json()["phase"]["phase"] == "recording"
        assert requests.get(f"{other}/api/state", timeout=5).json()["phase"]["phase"] != "recording"
        page.click("#btn-stop")
        expect(page.locator("#phase-chip")).not_to_have_attribute(
            "data-phase", "recording", timeout=20000
        )
    finally:
        context.close()
    assert errors == []

    # nginx logs a WebSocket when it closes: the browser upgraded, at the same process.
    def upgraded():
        return [r for r in proxy.requests() if r.route == route and r.status == 101]

    wait_until(upgraded)
    assert all("transport=websocket" in r.uri for r in upgraded())
    assert {r.upstream for r in proxy.requests() if r.route == route} == {upstream}


def test_browsers_of_a_stopped_process_reconnect_to_the_other(tmp_path):
    """One web process goes away: its Socket.IO clients reconnect through nginx to the other
    and get the state again; its browsers' pages and API answer from the other."""
    for name in ("web1", "web2"):
        (tmp_path / name).mkdir()
    with ExitStack() as stack:
        first = ExitStack()
        stack.enter_context(first)
        gone = first.enter_context(serve(tmp_path / "web1"))
        stays = stack.enter_context(serve(tmp_path / "web2"))
        ports = [urlsplit(u).port for u in (gone, stays)]
        proxy = stack.enter_context(nginx_proxy(tmp_path / "nginx", ports))
        gone_at, stays_at = (u.removeprefix("http://") for u in (gone, stays))
        route = route_to(proxy, gone_at)

        http = requests.Session()
        http.cookies.set("lanxi_route", route)
        states: list[dict] = []
        client = socketio.Client(
            reconnection_delay=0.1, reconnection_delay_max=0.5, http_session=http
        )
        client.on("state", states.append)
        client.connect(proxy.url, transports=["polling"], wait_timeout=10)
        try:
            wait_until(lambda: len(states) == 1)
            first.close()  # the process stops (SIGTERM), its connections with it
            # (the state may come just before the connection's acceptance)
            wait_until(lambda: len(states) == 2 and client.connected, timeout=15)
            ack = client.call("select-waveform", {"module": "nowhere", "channel": 1}, timeout=10)
            assert isinstance(ack, dict)
        finally:
            client.disconnect()
        assert http.get(f"{proxy.url}/api/state", timeout=10).status_code == 200
        served = [r.upstream for r in proxy.requests() if r.route == route]
        assert served[0] == gone_at and served[-1] == stays_at
        assert f"{gone_at}, {stays_at}" in served  # nginx tried the stopped one, then the other
