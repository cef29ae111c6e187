"""Debian's chromium through Playwright, launched with the project's flags; screenshots, page
errors and the login form as the browser tests use them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO
from tests.support.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = REPO / "test-artifacts" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}


def skip_without_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")


def launch_chromium() -> Iterator[Any]:
    """A headless chromium for the duration of a fixture (skips when it is not installed)."""
    skip_without_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shoot(page: Any, name: str) -> None:
    """A full-page screenshot to test-artifacts/screenshots/NAME.png (scrolled to the top
    first: the sticky top bar belongs there)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def watch_errors(page: Any, errors: list[str], console: bool = True) -> None:
    """Append the page's uncaught errors (and console errors) to ``errors``."""
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    if console:
        page.on(
            "console",
            lambda m: (
                errors.append(f"{page.url}: {m.text} ({(m.location or {}).get('url', '')})")
                if m.type == "error"
                else None
            ),
        )


def submit_login(page: Any, name: str, password: str) -> None:
    """Fill the login page's form and send it."""
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login-submit")


def wait_js(page: Any, fn: str, arg: object = None, timeout: float = 30.0) -> object:
    """``fn(arg)``'s first truthy value in the page. Evaluated from outside the page (as
    ``page.evaluate``), because ``wait_for_function`` compiles its predicate with ``eval``
    inside the page, which the dashboard's Content-Security-Policy forbids."""
    result: list[object] = []
    wait_until(lambda: result.append(page.evaluate(fn, arg)) or result[-1], timeout, 0.02)
    return result[-1]


def click_spectrum_at(page: Any, plot: str, hz: float, readout: str, tries: int = 3) -> None:
    """Click ``plot`` (a static/spectrum_plot.js plot) at ``hz`` on its log axis and wait for
    ``readout`` to read a cursor. The plot's box is measured right before each click, and the
    click is made again when a late layout change (a reply arriving, a legend appearing) moved
    the plot under it before the cursor took."""
    import math

    def share_of_width() -> float:
        fmin = float(page.get_attribute(plot, "data-fmin") or 1)
        fmax = float(page.get_attribute(plot, "data-fmax") or 2)
        return (math.log10(hz) - math.log10(fmin)) / (math.log10(fmax) - math.log10(fmin))

    for attempt in range(tries):
        # The axis' ends are those of the plot as last drawn: while a reply that changes them
        # (another window, an overlay) is on its way they can leave ``hz`` off the plot.
        wait_until(lambda: 0 < share_of_width() < 1, timeout=10)
        share = share_of_width()
        over = page.locator(f"{plot} .u-over")
        over.scroll_into_view_if_needed()
        box = over.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] * share, box["y"] + box["height"] / 2)
        try:
            wait_js(page, f"() => document.querySelector('{readout}').dataset.hz", timeout=10)
            got = float(page.get_attribute(readout, "data-hz") or 0)
            if abs(got - hz) / hz < 0.03 or attempt == tries - 1:
                return
        except AssertionError:
            if attempt == tries - 1:
                raise
