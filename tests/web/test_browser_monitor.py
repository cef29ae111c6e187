"""Monitoring in a real browser (Debian's chromium) against ``serve --emulate 2``: Monitor shows
live levels in two viewers while nothing is written; Record cuts a window that both viewers see
recorded; the window's files parse strictly (HBK's grammar) and start on the same sample;
Stop ends monitoring with the rig still armed."""

from __future__ import annotations

import json

import pytest

from tests.streamcheck import check_file
from tests.support.browser import (
    LAPTOP,
    TABLET,
    click_spectrum_at,
    shoot,
    skip_without_chromium,
    wait_js,
    watch_errors,
)
from tests.support.processes import serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("monitor")
    with serve(data_dir, "--emulate", "2", "--ptp-lock-seconds", "0.3") as base:
        yield base, data_dir


def test_monitor_shows_live_levels_in_two_viewers_and_records_a_window(server, browser):
    from playwright.sync_api import expect

    base, data_dir = server
    errors: list[str] = []
    page = browser.new_context(viewport=LAPTOP).new_page()
    watcher = browser.new_context(viewport=TABLET).new_page()
    for p in (page, watcher):
        watch_errors(p, errors)
        p.goto(f"{base}/capture")
        expect(p.locator("#conn")).to_have_text("live")

    page.click("#btn-monitor")
    for p in (page, watcher):
        expect(p.locator("#phase-chip")).to_have_attribute(
            "data-phase", "monitoring", timeout=30000
        )
        # Live levels while nothing records: fresh meters with a reading on every module.
        expect(p.locator("[data-meter][data-dbfs]").first).to_be_visible(timeout=10000)
        expect(p.locator('[data-level][data-stale="1"]')).to_have_count(0)
        expect(p.locator("#mon-state")).to_have_text("running")
    assert not (data_dir / "captures").exists() or not any((data_dir / "captures").iterdir())
    expect(page.locator("#btn-record")).to_be_enabled()
    # The shown channel (the master's microphone on the 94.0 dB calibrator) has its sound
    # level meter: every sample A-weighted and time-weighted on the server.
    for p in (page, watcher):
        expect(p.locator('[data-sound="LAF"] td.num')).to_have_text("94.0", timeout=10000)
        expect(p.locator('[data-sound="LCpeak"] td.num')).to_have_text("97.0")
        expect(p.locator("#sound-ref")).to_contain_text("re 20 µPa")
        expect(p.locator("#band-plot")).to_have_attribute("data-peak", "1k")
    page.select_option("#band-fraction", "1")
    page.select_option("#band-weighting", "A")
    expect(page.locator("#band-plot")).to_have_attribute("data-peak", "1k")
    # The live spectrum, computed on the server from every sample in this viewer's settings:
    # with flat top the calibrator reads 94.0 dB re 20 µPa (the other viewer keeps Hann).
    page.select_option("#spec-window", "flattop")
    page.select_option("#spec-lines", "3200")
    expect(page.locator("#spec-info")).to_have_attribute("data-window", "flattop")
    peak = float(page.get_attribute("#spec-info", "data-peak-db") or 0)
    assert abs(peak - 94.0) <= 0.1, peak
    assert abs(float(page.get_attribute("#spec-info", "data-peak-hz") or 0) - 1000.0) < 15
    expect(watcher.locator("#spec-info")).to_have_attribute("data-window", "hann")
    page.select_option("#spec-avg", "linear")
    page.locator("#spec-plot .u-over").scroll_into_view_if_needed()
    box = page.locator("#spec-plot .u-over").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    expect(page.locator("#spec-cursor")).to_contain_text("2×")
    # Overlay the other module's microphone (on the same 94.0 dB calibrator): a cursor put at
    # 1 kHz takes the tone's peak line and reads both channels, each 94.0 dB re 20 µPa with
    # flat top.
    page.locator("#spec-compare summary").click()
    page.locator('#spec-compare-list input[value$="/1"]').first.check()
    expect(page.locator("#spec-plot")).to_have_attribute("data-traces", "2", timeout=10000)
    page.locator("#spec-compare summary").click()
    click_spectrum_at(page, "#spec-plot", 1000.0, "#spec-cursor")
    expect(page.locator("#spec-cursor")).to_contain_text("Ch 1")
    assert abs(float(page.get_attribute("#spec-cursor", "data-hz") or 0) - 1000.0) < 15
    levels = json.loads(page.get_attribute("#spec-cursor", "data-levels") or "[]")
    assert len(levels) == 2 and all(abs(v - 94.0) <= 0.15 for v in levels), levels
    shoot(page, "monitor-spectrum-laptop")
    page.set_viewport_size({"width": 820, "height": 1180})
    page.locator("#spec-plot").scroll_into_view_if_needed()
    shoot(page, "monitor-spectrum-cursors-tablet")
    page.set_viewport_size({"width": 1366, "height": 768})
    shoot(page, "monitor-laptop")
    shoot(watcher, "monitor-tablet")

    page.fill("#cap-name", "Window run")
    page.fill("#cap-duration", "1")
    page.click("#btn-record")
    for p in (page, watcher):
        wait_js(
            p,
            "() => { const c = Dash.state.capture || {}; return c.last && c.last.name === "
            "'Window run' && c.last.outcome === 'completed'; }",
        )
    # Monitoring goes on after the window: Record is offered again, Stop recording is not.
    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "monitoring")
    expect(page.locator("#btn-record")).to_be_enabled()
    expect(page.locator("#btn-stop-recording")).to_be_disabled()

    [folder] = [f for f in (data_dir / "captures").iterdir() if f.is_dir()]
    meta = json.loads((folder / "capture.json").read_text())
    assert meta["window"]["kind"] == "manual" and meta["outcome"] == "completed"
    firsts = set()
    for module in meta["modules"]:
        for f in module["files"]:
            report = check_file(folder / f["file"])
            for sig in report.signals.values():
                firsts.add(sig.first_time)
                assert sig.samples == round(meta["sample_rate"] * 1.0)
    assert firsts == {meta["window"]["start_ticks"]}

    # The window's analysis page: octave bands of the calibrator, 94.0 dB re 20 µPa at 1 kHz.
    analysis = browser.new_context(viewport=LAPTOP, accept_downloads=True).new_page()
    watch_errors(analysis, errors)
    analysis.goto(f"{base}/captures/{meta['id']}")
    expect(analysis.locator("#band-plot")).to_have_attribute("data-peak", "1k", timeout=20000)
    expect(analysis.locator("#band-info")).to_contain_text("LAeq 94.0")
    expect(analysis.locator("#band-info")).to_contain_text("dB re 20 µPa")
    expect(analysis.locator("#sync")).not_to_contain_text("null")
    analysis.select_option("#spec-window", "flattop")
    expect(analysis.locator("#spec-info")).to_have_attribute("data-window", "flattop")
    flat = float(analysis.get_attribute("#spec-info", "data-peak-db") or 0)
    assert abs(flat - 94.0) <= 0.1, flat  # the calibrator, between lines, with flat top
    analysis.select_option("#band-fraction", "1")
    analysis.select_option("#band-weighting", "A")
    expect(analysis.locator("#band-plot")).to_have_attribute("data-fraction", "1")
    expect(analysis.locator("#band-plot")).to_have_attribute("data-weighting", "A")
    expect(analysis.locator("#band-plot")).to_have_attribute("data-peak", "1k")
    shoot(analysis, "analysis-bands-laptop")
    # A download: "preparing" while the server writes the file, then that it has arrived.
    expect(analysis.locator("#exp-size")).to_contain_text("about")
    with analysis.expect_download() as download:
        analysis.click("#exp-link")
    assert download.value.suggested_filename
    expect(analysis.locator("#exp-size")).to_have_attribute("data-download", "done")
    expect(analysis.locator("#exp-size")).to_contain_text("has arrived")
    analysis.context.close()

    # A trigger that the signals never reach (100 Pa on the 1 Pa calibrator), fired by hand.
    page.select_option("#rec-mode", "trigger")
    expect(page.locator("#trg-level")).to_be_visible()
    page.fill("#trg-channel", "2")
    expect(page.locator("#trg-unit")).to_have_text("m/s²")  # the accelerometer's unit
    page.fill("#trg-channel", "1")
    expect(page.locator("#trg-unit")).to_have_text("Pa")
    page.fill("#trg-level", "100")
    page.fill("#trg-pre", "0.2")
    page.fill("#cap-duration", "0.3")
    page.click("#btn-record")
    expect(watcher.locator("#mon-trigger")).to_have_text("armed")
    expect(watcher.locator("#mon-plan")).to_contain_text("module 1 channel 1 rising through 100")
    page.click("#btn-trigger")
    wait_js(
        watcher,
        "() => { const c = Dash.state.capture || {}; return c.last && "
        "c.last.name === 'Window run-event0001' && c.last.outcome === 'completed'; }",
    )
    expect(watcher.locator("#mon-trigger")).to_have_text("done")
    shoot(page, "monitor-trigger-laptop")

    history = browser.new_context(viewport=TABLET).new_page()
    watch_errors(history, errors)
    history.goto(f"{base}/history")
    expect(history.locator("tr.group")).to_have_count(1)
    expect(history.locator("tr.group")).to_contain_text("1 recording by hand, 1 trigger event")
    expect(history.locator('[data-window="trigger"]')).to_contain_text("event 1: manual trigger")
    shoot(history, "history-monitor-tablet")

    expect(watcher.locator('[data-rate][data-streaming="1"]')).to_have_count(2)
    page.click("#btn-stop")
    expect(watcher.locator("#phase-chip")).to_have_attribute("data-phase", "armed", timeout=30000)
    expect(watcher.locator("#mon-state")).to_have_text("off")
    # Nothing streams any more: the rates read 0 (within the 2.5 s a rate is held).
    expect(watcher.locator('[data-rate][data-streaming="0"]')).to_have_count(2, timeout=5000)
    expect(watcher.locator("[data-rate]").first).to_contain_text("rate 0")
    page.click("#btn-disarm")
    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "idle", timeout=30000)
    assert not errors, errors


def requests_get(url: str) -> dict:
    import requests

    return requests.get(url, timeout=10).json()


def test_detection_on_an_idle_rig_asks_before_it_arms(server, browser):
    from playwright.sync_api import expect

    base, _ = server
    page = browser.new_context(viewport=TABLET).new_page()
    page.goto(f"{base}/setup")
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "idle", timeout=30000)
    asked: list[str] = []

    def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click("#detect-btn")
    assert asked and "arms the rig" in asked[0]
    page.wait_for_timeout(300)
    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "idle")  # nothing started
    page.once("dialog", lambda d: answer(d, True))
    page.click("#detect-btn")
    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "armed", timeout=30000)
    page.click("#detect-btn")  # armed: says why it will not, asks nothing
    expect(page.locator("#setup-error")).to_contain_text("disarm to detect again")
    assert len(asked) == 2
    # Armed: next to each "auto" what it stood for — the module's default range and filter, the
    # detected microphone's sensitivity (docs/emulator.md: 4189-A-021, about 50 mV/Pa).
    first = page.locator("section[data-module]").first
    mic = first.locator('tr[data-channel="1"]')
    expect(mic.locator('[data-applied="sensitivity"] .applied')).to_contain_text("mV/Pa")
    expect(mic.locator('[data-applied="sensitivity"] .applied')).to_contain_text("4189-A-021")
    expect(mic.locator('[data-applied="range"] .applied')).to_contain_text("Vpeak")
    expect(mic.locator('[data-applied="filter"] .applied')).to_contain_text("Hz")
    # The table fits the tablet's width.
    shoot(page, "setup-armed-tablet")
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    for wrap in page.locator(".table-wrap").all():  # the channel table and each module's
        assert wrap.evaluate("n => n.scrollWidth <= n.clientWidth"), "a table scrolls at 820 px"
    # Applying a changed setup to the armed rig lists the changes first; dismissed, nothing.
    page.select_option("#bandwidth", "12.8 kHz")
    page.once("dialog", lambda d: answer(d, False))
    page.click("#apply-btn")
    assert "bandwidth highest → 12.8 kHz" in asked[-1] and "armed again" in asked[-1]
    assert requests_get(f"{base}/api/setup")["setup"]["bandwidth"] is None
    page.click("#revert-btn")
    import requests

    requests.post(f"{base}/api/capture/disarm", json={}, timeout=10)
    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "idle", timeout=30000)
    page.context.close()
