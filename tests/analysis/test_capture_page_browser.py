"""The capture page in a real browser (Debian's chromium through Playwright) against the real
``python -m webapp serve`` holding a synthetic capture: report, plots down to every sample,
quality timeline, export download, on a laptop and a tablet viewport. Screenshots go to
test-artifacts/screenshots/."""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from playwright.sync_api import expect

from tests.analysis.helpers import two_modules
from tests.support.browser import (
    click_spectrum_at,
    shoot,
    skip_without_chromium,
    wait_js,
    watch_errors,
)
from tests.support.processes import serve
from webapp.analysis.reader import Capture
from webapp.analysis.synthetic import write_capture

pytestmark = pytest.mark.browser

CID = "20231114-221320-demo"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    skip_without_chromium()
    data = tmp_path_factory.mktemp("capture-page")
    modules = two_modules(quality=[(20, 1, 0x02), (24, 1, 0)], dropped=[(30, 3)], truncate=1000)
    modules[1].first_block = 1
    folder = data / "captures" / CID
    write_capture(folder, modules, seconds=3, sample_rate=65536, name="demo")
    with serve(data) as base:
        yield base, folder


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1366, "height": 768}, {"width": 820, "height": 1180}],
    ids=["laptop", "tablet"],
)
def test_capture_page(served, browser, viewport) -> None:
    base, folder = served
    page = browser.new_page(viewport=viewport, accept_downloads=True)
    errors: list[str] = []
    watch_errors(page, errors)
    page.goto(f"{base}/history")
    page.click(f'a[href="/captures/{CID}"]')
    page.wait_for_selector('#verdict[data-verdict="errors"]', timeout=20000)
    problems = page.text_content("#problems")
    assert "incomplete SignalData" in problems and "samples missing" in problems
    assert page.text_content('#files-table tr[data-file="demo.1.stream"]').count("ok") == 1
    wait_js(page, "() => document.querySelector('#capture-page').dataset.timeMode")
    assert page.get_attribute("#capture-page", "data-time-mode") == "minmax"
    wait_js(page, "() => document.querySelector('#spec-info').textContent.includes('peak')")
    assert "at 1000.0 Hz" in page.text_content("#spec-info")
    shoot(page, f"capture-page-{viewport['width']}")

    # Overlay: module 1's and module 2's 440 Hz tones (2 V peak: 1.414 V RMS, 3.01 dB re 1 V),
    # flat top, peak hold; the cursor put at 440 Hz reads both channels.
    page.select_option("#channel-select", "m1-ch2")
    page.select_option("#spec-window", "flattop")
    page.select_option("#spec-average", "peak")
    page.locator("#spec-compare summary").click()
    page.check('#spec-compare-list input[value="m2-ch1"]')
    page.locator("#spec-compare summary").click()
    expect(page.locator("#spec-plot")).to_have_attribute("data-traces", "2", timeout=10000)
    expect(page.locator("#spec-info")).to_have_attribute("data-average", "peak")
    assert "to 25.6 kHz" in page.text_content("#spec-info")
    click_spectrum_at(page, "#spec-plot", 440.0, "#spec-cursor")
    assert abs(float(page.get_attribute("#spec-cursor", "data-hz") or 0) - 440.0) < 10
    levels = json.loads(page.get_attribute("#spec-cursor", "data-levels") or "[]")
    assert len(levels) == 2 and all(abs(v - 3.01) <= 0.1 for v in levels), levels
    assert "dB re 1 V" in page.text_content("#spec-cursor")
    shoot(page, f"capture-spectrum-cursors-{viewport['width']}")
    page.select_option("#channel-select", "m1-ch1")

    # Zoomed in far enough, the plot shows every sample.
    for _ in range(10):
        page.click("#zoom-in")
    wait_js(
        page,
        "() => document.querySelector('#capture-page').dataset.timeMode === 'samples'",
        timeout=10,
    )
    assert "every sample" in page.text_content("#window-info")

    # A click on a gap in the quality timeline shows it (in module 1's second channel).
    page.click('.q-bar[data-key="m1-ch2"] .mark[data-kind="gap"]')
    wait_js(
        page,
        "() => document.querySelector('#window-info').textContent.startsWith('1.6875 – 2.2500')",
        timeout=10,
    )
    assert page.input_value("#channel-select") == "m1-ch2"

    # Export the plotted channel as HDF5 through the page.
    page.select_option("#exp-channels", "shown")
    wait_js(page, "() => document.querySelector('#exp-size').textContent.startsWith('about')")
    with page.expect_download() as dl:
        page.click("#exp-link")
    data = Path(dl.value.path()).read_bytes()
    with Capture.open(folder) as cap, h5py.File(io.BytesIO(data), "r") as h5:
        assert list(h5["module1"]) == ["channel2", "channel2_gaps", "channel2_quality"]
        want = cap.read("m1-ch2", dtype=np.float32)
        assert np.array_equal(h5["module1/channel2"][:], want, equal_nan=True)
    assert errors == []
    page.close()
