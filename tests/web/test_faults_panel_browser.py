"""The Capture page's fault-injection panel in a real browser, on ``serve --emulate 2``: the
"Clear faults" buttons say which module they clear (one, or all), and the "For (s)" field shows
its whole placeholder at laptop and tablet sizes. Screenshots: faults-panel-*.png."""

from __future__ import annotations

import pytest

from tests.support.browser import LAPTOP, TABLET, shoot, skip_without_chromium, watch_errors
from tests.support.processes import serve

pytestmark = pytest.mark.browser

PLACEHOLDER_ROOM = """() => {
  const input = document.getElementById('fi-duration');
  const cs = getComputedStyle(input);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = cs.font;
  const text = ctx.measureText(input.placeholder).width;
  const room = input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  return {text, room};
}"""
SPIN_BUTTONS_PX = 16  # chromium's number spinner takes this much of the field's inside


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("faults-panel")
    with serve(data_dir, "--emulate", "2", "--ptp-lock-seconds", "1") as base:
        yield base


@pytest.mark.parametrize("size", ["laptop", "tablet"])
def test_the_duration_placeholder_is_not_cut_off(server, browser, size):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=LAPTOP if size == "laptop" else TABLET).new_page()
    errors: list[str] = []
    watch_errors(page, errors)
    page.goto(f"{server}/capture")
    expect(page.locator("#faults-panel")).to_be_visible(timeout=10000)
    page.locator("#fi-duration").scroll_into_view_if_needed()
    shoot(page, f"faults-panel-{size}")
    room = page.evaluate(PLACEHOLDER_ROOM)
    assert room["text"] + SPIN_BUTTONS_PX <= room["room"], room
    assert errors == []
    page.context.close()


def test_clear_faults_names_its_module_and_can_clear_all(server, browser):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=LAPTOP).new_page()
    errors: list[str] = []
    watch_errors(page, errors)
    page.goto(f"{server}/capture")
    expect(page.locator("#faults-panel")).to_be_visible(timeout=10000)
    modules = [page.locator("#fi-module option").nth(i).get_attribute("value") for i in range(2)]
    expect(page.locator("#fi-clear")).to_have_text(f"Clear faults of {modules[0]}")
    for module in modules:  # a fault on each module, until cleared
        page.select_option("#fi-module", module)
        expect(page.locator("#fi-clear")).to_have_text(f"Clear faults of {module}")
        page.select_option("#fi-kind", "cable-fault")
        page.select_option("#fi-channel", "1")
        page.click("#fi-inject")
    expect(page.locator("#fi-list li.error")).to_have_count(2, timeout=5000)
    expect(page.locator("#fi-clear-all")).to_have_text("Clear faults of all modules")
    page.click("#fi-clear-all")
    expect(page.locator("#fi-list li.error")).to_have_count(0, timeout=5000)
    expect(page.locator("#fi-list li")).to_have_count(2)
    assert errors == []
    page.context.close()
