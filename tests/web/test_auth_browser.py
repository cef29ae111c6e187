"""Access control in a real browser (Debian's chromium through Playwright) against the real
``python -m webapp serve`` under eventlet, with users configured: the login page, a viewer's
live view and refused control, a share link's live view that drops the moment the link is
revoked. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from webapp.web.accounts import ShareStore, UserStore

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HOST = "127.0.5.1"  # this area's loopback block
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    import requests

    data_dir = tmp_path_factory.mktemp("secured")
    users = UserStore(data_dir, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    users.add("vic", "viewer", PASSWORD)
    users.add("ada", "admin", PASSWORD)
    port = free_port()
    log = open(data_dir / "serve.log", "w+")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webapp",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],  # fmt: skip
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/login", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"serve did not come up:\n{log.read()}")
        time.sleep(0.1)
    try:
        yield base, data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_login_then_live_view_and_refused_control(server, browser):
    from playwright.sync_api import expect

    base, _ = server
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto(f"{base}/history")
    expect(page).to_have_url(f"{base}/login?next=/history")
    page.fill("#username", "vic")
    page.fill("#password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("wrong user name or password")
    shoot(page, "login-error-laptop")

    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{base}/history")
    page.goto(f"{base}/capture")
    expect(page.locator("#conn")).to_have_text("live", timeout=10000)
    cookie = next(c for c in context.cookies() if c["name"] == "lanxi_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]

    status = page.evaluate(
        """async () => {
            try { await Dash.api("POST", "/api/capture/start", {name: "x", duration_s: 1}); }
            catch (e) { return e.status; }
            return 200;
        }"""
    )
    assert status == 403  # a viewer, with a valid CSRF token: the role decides
    ack = page.evaluate(
        """() => new Promise((resolve) => {
            const s = io({ transports: ["websocket"] });
            s.on("connect", () => s.emit("capture:start", {name: "x"}, (ack) => {
                s.close(); resolve(ack); }));
            s.on("connect_error", (e) => resolve({error: String(e)}));
        })"""
    )
    assert ack["ok"] is False and ack["status"] == 403
    context.close()


def test_login_page_on_a_tablet(server, browser):
    base, _ = server
    page = browser.new_context(viewport={"width": 820, "height": 1180}).new_page()
    page.goto(f"{base}/login")
    shoot(page, "login-tablet")
    page.context.close()


def test_share_link_live_view_drops_when_revoked(server, browser):
    from playwright.sync_api import expect

    base, data_dir = server
    token, _ = ShareStore(data_dir).create("live", None, "test", 1)
    page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    page.goto(f"{base}/share/{token}")
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("#conn")).to_have_text("live", timeout=10000)
    shoot(page, "share-live-laptop")
    ShareStore(data_dir).revoke(token)  # as `lanxi-dashboard user revoke TOKEN` would
    expect(page.locator("#conn")).not_to_have_text("live", timeout=5000)
    expect(page.locator("#reconnect-banner")).to_be_visible()
    page.reload()
    expect(page).to_have_url(f"{base}/login?next=/")
    page.context.close()
