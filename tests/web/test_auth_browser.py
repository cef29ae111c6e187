"""Access control in a real browser (Debian's chromium through Playwright) against the real
``python -m webapp serve`` under eventlet, with users configured: the login page, a viewer's
live view and refused control, a share link's live view that drops the moment the link is
revoked. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

from tests.support.accounts import PASSWORD, add_users
from tests.support.browser import LAPTOP, TABLET, shoot, skip_without_chromium, submit_login
from tests.support.processes import serve
from webapp.web.access.accounts import ShareStore

pytestmark = pytest.mark.browser

HOST = "127.0.5.1"  # this area's loopback block


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("secured")
    add_users(data_dir, {"vic": "viewer", "ada": "admin"})
    with serve(data_dir, host=HOST, ready_path="/login") as base:
        yield base, data_dir


def test_login_then_live_view_and_refused_control(server, browser):
    from playwright.sync_api import expect

    base, _ = server
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.goto(f"{base}/history")
    expect(page).to_have_url(f"{base}/login?next=/history")
    submit_login(page, "vic", "not the password")
    expect(page.locator("#login-error")).to_have_text("wrong user name or password")
    shoot(page, "login-error-laptop")

    submit_login(page, "vic", PASSWORD)
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
    page = browser.new_context(viewport=TABLET).new_page()
    page.goto(f"{base}/login")
    shoot(page, "login-tablet")
    page.context.close()


def test_share_link_live_view_drops_when_revoked(server, browser):
    from playwright.sync_api import expect

    base, data_dir = server
    token, _ = ShareStore(data_dir).create("live", None, "test", 1)
    page = browser.new_context(viewport=LAPTOP).new_page()
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
