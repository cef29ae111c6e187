"""Issue 15's acceptance test, as a lab runs it: a real redis-server, one capture engine
(``engine --emulate 2``), two ``serve --message-queue`` web processes on one data dir, Debian's
nginx in front with the shipped configuration, access control on, and two real browsers
(Debian's chromium through Playwright): the operator at laptop size on web process A, a viewer
at tablet size on web process B. The operator starts an until-stopped capture; A is killed
(SIGKILL) mid-capture; the operator's page says it is reconnecting, is served by B through
nginx, still logged in and still holding control, with the whole state; the capture never
stops recording; the operator stops it from the page, both pages show the length it
recorded, and its files are complete.
Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.accounts import PASSWORD, add_users
from tests.support.browser import (
    LAPTOP,
    TABLET,
    shoot,
    skip_without_chromium,
    submit_login,
    wait_js,
    watch_errors,
)
from tests.support.nginx import NginxProxy, nginx_proxy, route_to
from tests.support.processes import engine_process, enter_together, serve_process
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.browser

HOST = "127.0.47.1"  # this test's loopback address: no other test's ports to collide with
EMULATOR = ("--emulate", "2", "--ptp-lock-seconds", "0.3")
IN_CONTROL = re.compile("^control: you since")
SLOW = 30_000  # ms: bounded, and generous for a loaded 2-core machine

# Installed in a page before the kill: every text the connection chip shows, in order (with
# whether the reconnect banner shows and the Stop button is disabled at that moment), and how
# many whole-state snapshots the page was sent.
WATCH_PAGE = """() => {
  window.connTexts = [];
  window.connSeen = [];
  window.statesSeen = 0;
  const chip = document.getElementById("conn");
  const banner = document.getElementById("reconnect-banner");
  const stop = document.getElementById("btn-stop");
  new MutationObserver(() => {
    window.connTexts.push(chip.textContent);
    window.connSeen.push({ text: chip.textContent, banner: !banner.hidden, stop: !stop.disabled });
  }).observe(chip, { childList: true, characterData: true, subtree: true });
  Dash.socket.on("state", () => { window.statesSeen += 1; });
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """redis-server, the engine and web processes A and B (started at once), nginx in front."""
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("data")
    add_users(data_dir, {"olga": "operator", "vic": "viewer"})
    with redis_server(tmp_path_factory.mktemp("redis"), HOST) as url, ExitStack() as stack:
        web = ("--message-queue", url, "--proxy-hops", "1")
        engine, (a, proc_a), (b, _) = enter_together(
            stack,
            engine_process(data_dir, url, *EMULATOR),
            serve_process(data_dir, *web, host=HOST, ready_path="/login", log_name="a.log"),
            serve_process(data_dir, *web, host=HOST, ready_path="/login", log_name="b.log"),
        )
        ports = [int(u.rsplit(":", 1)[1]) for u in (a, b)]
        proxy = stack.enter_context(nginx_proxy(tmp_path_factory.mktemp("nginx"), ports, HOST))
        yield {
            "data_dir": data_dir,
            "engine": engine,
            "proxy": proxy,
            "a": a.removeprefix("http://"),
            "b": b.removeprefix("http://"),
            "proc_a": proc_a,
        }


def open_live(browser, proxy: NginxProxy, route: str, name: str, viewport: dict) -> Any:
    """A browser whose nginx route id is ``route`` (so it lands on a known web process), logged
    in as ``name`` on the live page."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=viewport)
    context.add_cookies([{"name": "lanxi_route", "value": route, "url": proxy.url}])
    page = context.new_page()
    page.goto(f"{proxy.url}/capture")
    submit_login(page, name, PASSWORD)
    expect(page).to_have_url(f"{proxy.url}/capture")
    expect(page.locator("#conn")).to_have_text("live", timeout=SLOW)
    return page


def as_browser(page: Any) -> requests.Session:
    """The API through nginx as this page's browser: its cookies (route and login)."""
    s = requests.Session()
    for c in page.context.cookies():
        s.cookies.set(c["name"], c["value"])
    return s


def elapsed(page: Any) -> float:
    return float(page.get_attribute("#rec-time", "data-elapsed") or 0)


def recording_advances(page: Any, beyond: float) -> None:
    """The page's recording time passes ``beyond`` by half a second."""
    wait_js(
        page, "(t) => Number(document.getElementById('rec-time').dataset.elapsed) > t", beyond + 0.5
    )


def shows_the_rig_live(page: Any, modules: list[str]) -> None:
    """Phase recording, every module's first channel lamp green with a level in dB."""
    from playwright.sync_api import expect

    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "recording", timeout=SLOW)
    for module in modules:
        lamp = page.locator(f'[data-lamp="{module}/1"]')
        expect(lamp).to_have_attribute("data-color", "green", timeout=SLOW)
        expect(page.locator(f'[data-level="{module}/1"]')).to_contain_text("dB", timeout=SLOW)


def test_the_operator_keeps_control_of_a_capture_when_their_web_process_is_killed(lab, browser):
    from playwright.sync_api import expect

    proxy: NginxProxy = lab["proxy"]
    a, b = lab["a"], lab["b"]
    to_a, to_b = route_to(proxy, a, "/login"), route_to(proxy, b, "/login")
    errors: list[str] = []
    olga = open_live(browser, proxy, to_a, "olga", LAPTOP)
    vic = open_live(browser, proxy, to_b, "vic", TABLET)
    try:
        watch_errors(olga, errors)
        watch_errors(vic, errors)
        api = as_browser(olga)
        modules = [
            m["address"] for m in api.get(f"{proxy.url}/api/rig", timeout=10).json()["modules"]
        ]
        assert len(modules) == 2

        # The operator takes control and starts a capture that records until stopped.
        olga.click("#control-request")
        expect(olga.locator("#control-holder")).to_have_text(IN_CONTROL, timeout=SLOW)
        expect(vic.locator("#control-holder")).to_have_attribute(
            "data-holder", "olga", timeout=SLOW
        )
        # 3.2 kHz (8192 samples/s): the emulated modules, the receivers and the live view in
        # one engine process keep up even on a loaded machine, so nothing here is about load.
        olga.evaluate("() => Dash.api('PUT', '/api/setup', { bandwidth: '3.2 kHz' })")
        olga.fill("#cap-name", "Failover")
        olga.check("#cap-until")
        olga.click("#btn-start")
        for page in (olga, vic):
            shows_the_rig_live(page, modules)
            recording_advances(page, 0.0)
        state = api.get(f"{proxy.url}/api/state", timeout=10).json()
        capture_id = state["capture"]["current"]["id"]
        assert state["capture"]["current"]["duration_s"] is None
        shoot(olga, "failover-operator-recording-laptop")
        shoot(vic, "failover-viewer-recording-tablet")
        # Each browser is served by its own process, every request of it.
        served = {r.route: set() for r in proxy.requests()}
        for r in proxy.requests():
            served[r.route].add(r.upstream)
        assert served[to_a] == {a} and served[to_b] == {b}

        # A dies mid-capture.
        for page in (olga, vic):
            page.evaluate(WATCH_PAGE)
        before_kill = elapsed(olga)
        lab["proc_a"].send_signal(signal.SIGKILL)
        lab["proc_a"].wait(10)
        killed_at = len(proxy.requests())

        # The operator's page says it is reconnecting, then is live again with a whole state.
        wait_js(
            olga,
            "() => window.connTexts.includes('reconnecting…') && window.statesSeen > 0"
            " && document.getElementById('conn').textContent === 'live'",
            timeout=SLOW / 1000,
        )
        seen = olga.evaluate("window.connSeen")
        assert seen[-1] == {"text": "live", "banner": False, "stop": True}, seen
        # While it reconnected: the banner said so, and Stop could not be pressed.
        waiting = [e for e in seen if e["text"] == "reconnecting…"]
        assert waiting and all(e["banner"] and not e["stop"] for e in waiting), seen
        shows_the_rig_live(olga, modules)
        recording_advances(olga, max(before_kill, elapsed(olga)))
        expect(olga.locator("#control-holder")).to_have_text(IN_CONTROL)
        shoot(olga, "failover-operator-after-kill-laptop")
        after = [r for r in proxy.requests()[killed_at:] if r.route == to_a]
        assert f"{a}, {b}" in {r.upstream for r in after}, after  # nginx tried A, then B
        assert after[-1].upstream == b
        # The viewer's page never noticed: its process stayed.
        assert vic.evaluate("window.connTexts") == []
        recording_advances(vic, before_kill)

        # The capture kept recording (the API through nginx, as the operator's browser).
        state = api.get(f"{proxy.url}/api/state", timeout=10).json()
        assert state["phase"]["phase"] == "recording"
        assert state["capture"]["current"]["id"] == capture_id
        assert lab["engine"].poll() is None

        # A reload lands on B too: still logged in, still in control, the whole state.
        olga.reload()
        expect(olga).to_have_url(f"{proxy.url}/capture")
        expect(olga.locator("#conn")).to_have_text("live", timeout=SLOW)
        expect(olga.locator("#account-user")).to_contain_text("olga")
        expect(olga.locator("#control-holder")).to_have_text(IN_CONTROL, timeout=SLOW)
        shows_the_rig_live(olga, modules)
        recording_advances(olga, elapsed(olga))

        # The dead process's viewer stops counting (its watch key expires): two viewers.
        for page in (olga, vic):
            expect(page.locator("#viewers")).to_have_text("2 viewers", timeout=SLOW)

        # The operator stops it from the page; both pages see it end.
        stopped_at = elapsed(olga)
        olga.click("#btn-stop")
        for page in (olga, vic):
            expect(page.locator("#phase-chip")).not_to_have_attribute(
                "data-phase", "recording", timeout=SLOW
            )
            expect(page.locator("#cap-current .badge")).to_have_text("stopped", timeout=SLOW)
        # Its last recording time on both pages is what was recorded, not the last one sent
        # while recording (under load the streams deliver seconds of data after the stop).
        folder = Path(lab["data_dir"]) / "captures" / capture_id
        record = json.loads((folder / "capture.json").read_text())  # written before the end
        assert record["outcome"] == "stopped"
        recorded = round(record["recorded_s"], 3)
        for page in (olga, vic):
            wait_js(
                page, "(t) => document.getElementById('rec-time').dataset.elapsed == t", recorded
            )
        shoot(olga, "failover-operator-stopped-laptop")
        shoot(vic, "failover-viewer-stopped-tablet")
    finally:
        olga.context.close()
        vic.context.close()
    assert errors == []

    # The capture's files are complete, and the integrity check through nginx finds no error.
    assert record["recorded_s"] >= stopped_at
    assert (record["bandwidth"], record["sample_rate"]) == ("3.2 kHz", 8192)
    files = [f for m in record["modules"] for f in m["files"]]
    assert len(files) == 2
    for f in files:
        assert (folder / f["file"]).stat().st_size == f["bytes"] > 0
    report = api.get(f"{proxy.url}/api/captures/{capture_id}/analysis/report", timeout=120).json()
    assert report["verdict"] != "errors", report["problems"]
    assert "interrupted" not in (Path(lab["data_dir"]) / "engine.log").read_text()
