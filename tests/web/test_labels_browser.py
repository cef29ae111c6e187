"""The channel table and History's management in a real browser (Debian's chromium through
Playwright) against the real ``python -m webapp serve``: an operator names channels and their
points, imports a CSV table (a bad row is refused naming row and column), renames, tags, finds
and deletes a capture after confirming; a viewer sees none of these controls. Screenshots go to
test-artifacts/screenshots/."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.accounts import PASSWORD, add_users
from tests.support.browser import (
    LAPTOP,
    TABLET,
    shoot,
    skip_without_chromium,
    submit_login,
    watch_errors,
)
from tests.support.captures import make_capture
from tests.support.processes import serve

pytestmark = pytest.mark.browser

HOST = "127.0.3.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("labels-ui")
    add_users(data_dir, {"olga": "operator", "vic": "viewer"})
    make_capture(data_dir, "20260101-120000-Run")
    make_capture(data_dir, "20260102-120000-Coastdown")
    with serve(data_dir, "--emulate", "2", host=HOST, ready_path="/login") as base:
        yield base, data_dir


def log_in(browser, base: str, name: str, path: str, viewport=LAPTOP):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base}{path}")
    submit_login(page, name, PASSWORD)
    expect(page).to_have_url(f"{base}{path}")
    expect(page.locator("#conn")).to_have_text("live", timeout=10000)
    return page


def setup_on_disk(data_dir) -> dict:
    return json.loads((data_dir / "setup.json").read_text())


def test_operator_names_channels_and_imports_a_table(server, browser, tmp_path):
    from playwright.sync_api import expect

    base, data_dir = server
    errors: list[str] = []
    page = log_in(browser, base, "olga", "/setup")
    watch_errors(page, errors, console=False)
    rows = page.locator("#channel-table tbody tr[data-module]")
    expect(rows.first).to_be_visible(timeout=15000)
    first = rows.first.get_attribute("data-module")
    where = f"{first} channel 1"
    page.fill(f'[aria-label="name {where}"]', "Gearbox 1X+")
    page.fill(f'[aria-label="point {where}"]', "gearbox:1")
    page.select_option(f'[aria-label="direction {where}"]', "+X")
    page.fill('[aria-label="test object"]', "Car 7")
    page.fill("#test-tags", "nvh, road")
    page.fill('[aria-label="file-name template"]', "{object}_{date}_{n}")
    expect(page.locator("#dirty-note")).to_be_visible()
    page.click("#labels-apply")
    expect(page.locator("#labels-note")).to_have_text("saved")
    saved = setup_on_disk(data_dir)
    row = saved["channels"][first][0]
    assert (row["name"], row["point"], row["direction"]) == ("Gearbox 1X+", "gearbox:1", "+X")
    assert saved["test"]["tags"] == ["nvh", "road"] and saved["test"]["object"] == "Car 7"

    bad = tmp_path / "bad.csv"
    bad.write_text(f"module,channel,name,point\n{first},2,Mic,cabin:7\n{first},3,Hub,hub:x\n")
    page.set_input_files("#csv-file", str(bad))
    expect(page.locator("#labels-error")).to_contain_text("row 3, column point: node 'x'")
    assert setup_on_disk(data_dir)["channels"][first][1]["name"] == ""  # nothing changed
    good = tmp_path / "good.csv"
    good.write_text(f"module;channel;name;point;direction\n{first};2;Driver's ear;cabin:7;\n"
                    f"{first};3;Hub;hub:4:-z\n")  # fmt: skip
    page.set_input_files("#csv-file", str(good))
    expect(page.locator("#labels-note")).to_have_text("good.csv: 2 channels imported")
    expect(page.locator(f'[aria-label="name {first} channel 2"]')).to_have_value("Driver's ear")
    expect(page.locator(f'[aria-label="direction {first} channel 3"]')).to_have_value("-Z")
    expect(page.locator(f'[aria-label="name {first} channel 1"]')).to_have_value("Gearbox 1X+")
    shoot(page, "setup-channel-table-laptop")
    page.goto(f"{base}/capture")  # the live meters name the channel too
    expect(page.locator(f'[data-channel-name="{first}/1"]')).to_contain_text("Ch 1 Gearbox 1X+")
    assert (
        page.get_attribute(f'[data-channel-name="{first}/1"]', "title")
        == "Gearbox 1X+ · gearbox:1:+X"
    )
    page.goto(f"{base}/setup")
    expect(rows.first).to_be_visible(timeout=15000)
    page.set_viewport_size(TABLET)
    shoot(page, "setup-channel-table-tablet")
    assert not errors, errors
    page.context.close()


def test_history_rename_tag_search_and_delete(server, browser):
    from playwright.sync_api import expect

    base, data_dir = server
    errors: list[str] = []
    page = log_in(browser, base, "olga", "/history")
    watch_errors(page, errors, console=False)
    run = page.locator('tr[data-capture="20260101-120000-Run"]')
    expect(run).to_be_visible()
    run.locator('[data-edit-capture="20260101-120000-Run"]').click()
    form = run.locator(".manage-form")
    form.locator('[data-edit="title"]').fill("Run 3, second gear")
    form.locator('[data-edit="object"]').fill("Car 7")
    form.locator('[data-edit="tags"]').fill("nvh, road")
    form.locator('[data-edit="notes"]').fill("wet road")
    form.locator("[data-save]").click()
    expect(run.locator('[data-title="20260101-120000-Run"]')).to_have_text("Run 3, second gear")
    expect(run.locator('.badge.tag[data-tag="road"]')).to_be_visible()
    expect(run).to_contain_text("recorded as Run")
    doc = json.loads((data_dir / "captures" / "20260101-120000-Run" / "capture.json").read_text())
    assert doc["title"] == "Run 3, second gear" and doc["test"]["notes"] == "wet road"

    page.fill("#history-search", "second gear")
    expect(page.locator("tr[data-capture]")).to_have_count(1)
    page.fill("#history-search", "")
    expect(page.locator("tr[data-capture]")).to_have_count(2)
    page.select_option("#history-tag", "nvh")
    expect(page.locator("tr[data-capture]")).to_have_count(1)
    page.select_option("#history-tag", "")
    shoot(page, "history-manage-laptop")

    coast = page.locator('tr[data-capture="20260102-120000-Coastdown"]')
    coast.locator("[data-delete-capture]").click()
    expect(coast.locator("[data-confirming]")).to_contain_text("Delete “Run” for good?")
    coast.locator("[data-keep]").click()  # changed its mind: nothing happens
    expect(coast.locator("[data-confirming]")).to_have_count(0)
    assert (data_dir / "captures" / "20260102-120000-Coastdown").is_dir()
    coast.locator("[data-delete-capture]").click()
    shoot(page, "history-delete-confirm-laptop")
    coast.locator("[data-confirm-delete]").click()
    expect(page.locator("tr[data-capture]")).to_have_count(1)
    assert not (data_dir / "captures" / "20260102-120000-Coastdown").exists()
    assert not errors, errors
    page.context.close()


def test_a_viewer_sees_no_management_controls(server, browser):
    from playwright.sync_api import expect

    base, _ = server
    page = log_in(browser, base, "vic", "/history", viewport=TABLET)
    expect(page.locator("tr[data-capture]").first).to_be_visible()
    expect(page.locator("#history-search")).to_be_visible()  # finding is for everybody
    expect(page.locator("[data-edit-capture], [data-delete-capture]")).to_have_count(0)
    shoot(page, "history-viewer-tablet")
    page.goto(f"{base}/setup")
    expect(page.locator("#channel-table tbody tr[data-module]").first).to_be_visible(timeout=15000)
    expect(
        page.locator("#channel-table input, #channel-table select, #test-card input")
    ).to_have_count(0)
    for control in ("#labels-apply", "#csv-import", "#setup-import"):
        expect(page.locator(control)).to_have_count(0)
    expect(page.locator("#csv-export")).to_be_visible()
    # and the server refuses what the page does not offer
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    r = requests.delete(f"{base}/api/captures/20260101-120000-Run", cookies=cookies,
                        json={"id": "20260101-120000-Run", "confirm": True})  # fmt: skip
    assert r.status_code in (403, 401)
    page.context.close()
