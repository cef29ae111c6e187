"""The access-control parts of the dashboard's pages in a real browser (Debian's chromium through
Playwright) against the real ``python -m webapp serve`` with users: who is logged in, the
control lock (request, take, release) seen live by everybody, refusals shown where they happen,
the admin page (users, share links, audit log), a removed user sent to the login page, log out.
Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from webapp.web.accounts import UserStore

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
HOST = "127.0.3.1"  # this area's loopback block
PASSWORD = "correct horse battery"
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    import requests

    data_dir = tmp_path_factory.mktemp("access-ui")
    users = UserStore(data_dir, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    users.add("ada", "admin", PASSWORD)
    users.add("olga", "operator", PASSWORD)
    port = free_port()
    log = open(data_dir / "serve.log", "w+")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "webapp", "serve", "--host", HOST, "--port", str(port),
         "--data-dir", str(data_dir)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
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
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(browser, base: str, name: str, viewport=LAPTOP, path: str = "/capture"):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base}{path}")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{base}{path}")
    expect(page.locator("#conn")).to_have_text("live", timeout=10000)
    return page


def test_control_lock_admin_page_and_session_end(server, browser):
    from playwright.sync_api import expect

    base, _ = server
    errors: list[str] = []
    ada = log_in(browser, base, "ada")
    ada.on("pageerror", lambda e: errors.append(str(e)))
    expect(ada.locator("#account-user")).to_have_text("ada · admin")
    expect(ada.locator('nav a[data-nav="admin"]')).to_be_visible()
    expect(ada.locator("#control-holder")).to_have_text("control: free")

    # ada takes the free control; olga, who logs in after, sees who holds it.
    ada.click("#control-request")
    expect(ada.locator("#control-holder")).to_have_text(re.compile("^control: you since"))
    expect(ada.locator("#control-release")).to_be_visible()
    olga = log_in(browser, base, "olga", viewport=TABLET)
    olga.on("pageerror", lambda e: errors.append(str(e)))
    expect(olga.locator("#account-user")).to_have_text("olga · operator")
    expect(olga.locator('nav a[data-nav="admin"]')).to_have_count(0)
    expect(olga.locator("#control-take")).to_have_count(0)  # only admins take control
    expect(olga.locator("#control-holder")).to_have_text(re.compile("^control: ada since"))

    # Her Start is refused where she clicked it, naming the holder.
    olga.fill("#cap-duration", "1")
    olga.click("#btn-start")
    expect(olga.locator("#control-error")).to_contain_text("ada")
    # She asks; ada sees the request at once, gives control up; olga sees that live too.
    olga.click("#control-request")
    expect(ada.locator("#control-holder")).to_contain_text("asking: olga", timeout=1000)
    shoot(olga, "control-requested-tablet")
    ada.click("#control-release")
    expect(olga.locator("#control-holder")).to_have_text(
        "control: free · asking: olga", timeout=1000
    )
    olga.click("#control-request")  # labelled "Take control" while free
    expect(olga.locator("#control-holder")).to_have_text(re.compile("^control: you since"))
    expect(ada.locator("#control-holder")).to_have_text(
        re.compile("^control: olga since"), timeout=1000
    )
    # An admin takes it back.
    ada.click("#control-take")
    expect(olga.locator("#control-holder")).to_have_text(
        re.compile("^control: ada since"), timeout=1000
    )
    shoot(ada, "control-held-laptop")

    # --- The admin page: users, share links, audit log.
    ada.click('nav a[data-nav="admin"]')
    expect(ada).to_have_url(f"{base}/admin")
    expect(ada.locator("#users-table tr[data-user]")).to_have_count(2)
    ada.fill("#user-name", "vera")
    ada.select_option("#user-role", "viewer")
    ada.fill("#user-password", "a long enough password")
    ada.click("#user-add")
    vera = ada.locator('#users-table tr[data-user="vera"]')
    expect(vera).to_have_count(1, timeout=10000)
    ada.select_option('select[aria-label="role of vera"]', "operator")
    expect(ada.locator('#audit-table tr[data-action="user-role"]')).to_have_count(1)
    assert ada.input_value('select[aria-label="role of vera"]') == "operator"

    ada.select_option("#share-scope", "live")
    ada.click("#share-create")
    url = ada.locator("#share-url").input_value()
    assert re.match(rf"{re.escape(base)}/share/\S+$", url)
    guest = browser.new_context(viewport=LAPTOP).new_page()
    guest.on("pageerror", lambda e: errors.append(str(e)))
    guest.goto(url)
    expect(guest.locator("#conn")).to_have_text("live", timeout=10000)
    expect(guest.locator("#account-user")).to_have_text("shared view")
    expect(guest.locator('nav a[data-nav="history"]')).to_have_count(0)
    expect(guest.locator("#logout-btn")).to_have_count(0)
    active = ada.locator('#shares-table tr[data-state="active"]')
    expect(active).to_have_count(1)
    for action in ("user-add", "share-create", "control-take", "login"):
        expect(ada.locator(f'#audit-table tr[data-action="{action}"]').first).to_be_visible()
    shoot(ada, "admin-laptop")
    ada.set_viewport_size(TABLET)
    shoot(ada, "admin-tablet")
    ada.set_viewport_size(LAPTOP)
    active.locator("button").click()
    expect(ada.locator('#shares-table tr[data-state="revoked"]')).to_have_count(1)
    expect(guest.locator("#conn")).not_to_have_text("live", timeout=3000)

    # --- A session that ended sends the page to the login page: at the next API call (401)...
    olga.context.clear_cookies()
    olga.click("#control-request")
    expect(olga).to_have_url(f"{base}/login?next=/capture", timeout=5000)
    # ...and by itself when the server drops the page's connection (a removed user).
    vera_page = browser.new_context(viewport=TABLET).new_page()
    vera_page.goto(f"{base}/setup")
    vera_page.fill("#username", "vera")
    vera_page.fill("#password", "a long enough password")
    vera_page.click("#login-submit")
    expect(vera_page.locator("#conn")).to_have_text("live", timeout=10000)
    ada.once("dialog", lambda d: d.accept())
    ada.click('button[aria-label="remove vera"]')
    expect(ada.locator('#users-table tr[data-user="vera"]')).to_have_count(0)
    expect(vera_page).to_have_url(f"{base}/login?next=/setup", timeout=8000)

    # --- Log out.
    ada.click("#logout-btn")
    expect(ada).to_have_url(re.compile(rf"{re.escape(base)}/login"))
    ada.goto(f"{base}/admin")
    expect(ada).to_have_url(f"{base}/login?next=/admin")
    assert not errors, errors
