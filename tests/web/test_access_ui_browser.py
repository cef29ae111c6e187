"""The access-control parts of the dashboard's pages in a real browser (Debian's chromium through
Playwright) against the real ``python -m webapp serve`` with users: who is logged in, the
control lock (request, take, release) seen live by everybody, refusals shown where they happen,
the admin page (users, share links, audit log), a removed user sent to the login page, log out.
Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest

from tests.support.accounts import PASSWORD, add_users
from tests.support.browser import (
    LAPTOP,
    TABLET,
    shoot,
    skip_without_chromium,
    submit_login,
    watch_errors,
)
from tests.support.processes import serve

pytestmark = pytest.mark.browser

HOST = "127.0.3.1"  # this area's loopback block


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("access-ui")
    add_users(data_dir, {"ada": "admin", "olga": "operator", "vic": "viewer"})
    with serve(data_dir, host=HOST, ready_path="/login") as base:
        yield base, data_dir


def log_in(browser, base: str, name: str, viewport=LAPTOP, path: str = "/capture"):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base}{path}")
    submit_login(page, name, PASSWORD)
    expect(page).to_have_url(f"{base}{path}")
    expect(page.locator("#conn")).to_have_text("live", timeout=10000)
    return page


def test_a_viewer_sees_no_control_it_cannot_use(server, browser):
    from playwright.sync_api import expect

    base, _ = server
    vic = log_in(browser, base, "vic", viewport=TABLET)
    for control in ("#btn-start", "#btn-arm", "#btn-monitor", "#btn-record", "#rec-mode"):
        expect(vic.locator(control)).to_be_hidden()
    expect(vic.locator("#viewer-note")).to_be_visible()
    shoot(vic, "capture-viewer-tablet")
    olga = log_in(browser, base, "olga")
    expect(olga.locator("#btn-start")).to_be_visible()
    expect(olga.locator("#btn-monitor")).to_be_visible()
    expect(olga.locator("#viewer-note")).to_be_hidden()
    vic.context.close()
    olga.context.close()


def test_control_lock_admin_page_and_session_end(server, browser):
    from playwright.sync_api import expect

    base, _ = server
    errors: list[str] = []
    ada = log_in(browser, base, "ada")
    watch_errors(ada, errors, console=False)
    expect(ada.locator("#account-user")).to_have_text("ada · admin")
    expect(ada.locator('nav a[data-nav="admin"]')).to_be_visible()
    expect(ada.locator("#control-holder")).to_have_text("control: free")

    # ada takes the free control; olga, who logs in after, sees who holds it.
    ada.click("#control-request")
    expect(ada.locator("#control-holder")).to_have_text(re.compile("^control: you since"))
    expect(ada.locator("#control-release")).to_be_visible()
    olga = log_in(browser, base, "olga", viewport=TABLET)
    watch_errors(olga, errors, console=False)
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
    expect(ada.locator("#users-table tr[data-user]")).to_have_count(3)  # ada, olga, vic
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
    watch_errors(guest, errors, console=False)
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
    submit_login(vera_page, "vera", "a long enough password")
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
