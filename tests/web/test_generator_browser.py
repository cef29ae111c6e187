"""The generator panel and the live FRF in a real browser (Debian's chromium) against
``serve --emulate 1 --emulate-type 3160`` with output 1 cabled to input 1 and, through the
emulator's resonance (fn 1000 Hz, ζ 0.05), to input 2 (docs/emulator.md, "Generator").

An operator (laptop size) monitors, starts random noise by hand on output 1, and computes the
live FRF input 1 → input 2: the cursor put at 1000 Hz sits on the resonance (within 1 %) with
coherence above 0.99. A viewer (tablet size) sees the output running and what it runs, but no
control, and the server refuses the viewer's start over HTTP and Socket.IO. Stop is seen by
both; output 2 started with "Start selected together" shows in the form of an operator who
opens the page later; "Stop all outputs" stops it. Then output 1 "with the recording": the
recording drives it, capture.json keeps its settings, and the capture page's FRF finds the
resonance at its cursor too. Screenshots: generator-*.png."""

from __future__ import annotations

import pytest

from tests.support.accounts import PASSWORD, add_users
from tests.support.browser import (
    LAPTOP,
    TABLET,
    click_spectrum_at,
    shoot,
    skip_without_chromium,
    submit_login,
    wait_js,
    watch_errors,
)
from tests.support.processes import serve

pytestmark = pytest.mark.browser

FN = 1000.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("generator")
    add_users(data_dir, {"olga": "operator", "vic": "viewer"})
    with serve(
        data_dir,
        "--emulate", "1", "--emulate-type", "3160", "--ptp-lock-seconds", "0.3",
        "--emulate-loopback", "1>1", "--emulate-loopback", f"1>2:{FN:g}:0.05",
        ready_path="/login",
    ) as base:  # fmt: skip
        yield base


def log_in(browser, base: str, name: str, viewport):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base}/capture")
    submit_login(page, name, PASSWORD)
    expect(page).to_have_url(f"{base}/capture")
    expect(page.locator("#conn")).to_have_text("live", timeout=10000)
    return page


def test_operator_drives_output_1_and_the_live_frf_finds_the_resonance(server, browser):
    from playwright.sync_api import expect

    errors: list[str] = []
    olga = log_in(browser, server, "olga", LAPTOP)
    vic = log_in(browser, server, "vic", TABLET)
    for p in (olga, vic):
        watch_errors(p, errors, console=False)
    address = wait_js(olga, "() => ((Dash.state.rig || {}).modules || [])[0]?.address")
    out1 = f'[data-output="{address}/1"]'
    for p in (olga, vic):
        expect(p.locator("#generator-card")).to_be_visible(timeout=10000)
        expect(p.locator(f"{out1} [data-status]")).to_have_attribute("data-running", "0")
        expect(p.locator(f'[data-output="{address}/2"]')).to_be_visible()  # a 3160 has two
    # The viewer sees the outputs but no control of them.
    expect(vic.locator(".gen-form")).to_have_count(0)
    expect(vic.locator("#gen-stop-all")).to_be_hidden()

    # A light measurement: 6.4 kHz bandwidth, inputs 1 and 2.
    olga.evaluate(
        """(a) => Dash.api('PUT', '/api/setup', {bandwidth: '6.4 kHz', channels: {[a]: [
             {channel: 1, enabled: true}, {channel: 2, enabled: true},
             {channel: 3, enabled: false}, {channel: 4, enabled: false}]}})""",
        address,
    )
    olga.click("#btn-monitor")
    for p in (olga, vic):
        expect(p.locator("#phase-chip")).to_have_attribute(
            "data-phase", "monitoring", timeout=30000
        )

    # Random noise 0-4 kHz at output gain 0.05 (the panel's defaults), started by hand.
    form = olga.locator(out1)
    expect(form.locator('select[name="waveform"]')).to_have_value("random")
    form.locator('input[name="gain"]').fill("0.05")
    form.locator('input[name="high"]').fill("4000")
    form.locator('button[name="start"]').click()
    for p in (olga, vic):
        status = p.locator(f"{out1} [data-status]")
        expect(status).to_have_attribute("data-running", "1", timeout=10000)
        expect(status).to_contain_text("running by hand")
        expect(status).to_contain_text("random 0 Hz–4 kHz")
    expect(olga.locator("#gen-error")).to_be_hidden()

    # The server refuses the viewer, over HTTP and over Socket.IO, and nothing changes.
    refused = vic.evaluate(
        """(a) => Dash.api('POST', '/api/generator/stop', {outputs: {[a]: [1]}})
                   .then(() => 'accepted', (e) => e.status)""",
        address,
    )
    assert refused == 403
    ack = vic.evaluate(
        """(a) => new Promise((done) => Dash.socket.emit('generator:stop',
             {outputs: {[a]: [1]}}, done))""",
        address,
    )
    assert ack["ok"] is False and ack["status"] == 403, ack
    expect(vic.locator(f"{out1} [data-status]")).to_have_attribute("data-running", "1")

    # The live FRF between the drive (input 1) and the response (input 2).
    olga.locator("#lfrf-card").scroll_into_view_if_needed()
    olga.select_option("#lfrf-reference", f"{address}/1")
    olga.select_option("#lfrf-response", f"{address}/2")
    olga.check("#lfrf-on")
    wait_js(olga, "() => Number(document.getElementById('lfrf-info').dataset.averages) >= 40")
    peak_hz = float(olga.get_attribute("#lfrf-info", "data-peak-hz") or 0)
    assert abs(peak_hz - FN) / FN < 0.01, peak_hz
    click_spectrum_at(olga, "#lfrf-mag", FN, "#lfrf-cursor")
    olga.mouse.move(0, 0)  # off the plot: the readout shows the pinned line
    cursor = olga.locator("#lfrf-cursor")
    expect(cursor).to_contain_text("(pinned)")
    hz = float(cursor.get_attribute("data-hz") or 0)
    assert abs(hz - FN) / FN < 0.01, hz
    assert float(cursor.get_attribute("data-coherence") or 0) > 0.99
    # |H1| at the resonance: 1/(2ζ) = 20 dB re 1 (V/V), within the line spacing's loss.
    assert 19.0 < float(cursor.get_attribute("data-db") or 0) < 20.3
    shoot(olga, "generator-frf-laptop")
    olga.set_viewport_size(TABLET)
    olga.locator("#generator-card").scroll_into_view_if_needed()
    shoot(olga, "generator-frf-tablet")
    shoot(vic, "generator-viewer-tablet")
    vic.set_viewport_size(LAPTOP)
    shoot(vic, "generator-viewer-laptop")

    olga.locator(out1).locator('button[name="stop"]').click()
    for p in (olga, vic):
        expect(p.locator(f"{out1} [data-status]")).to_have_attribute("data-running", "0")
        expect(p.locator(f"{out1} [data-status]")).to_contain_text("last: random")
    # Output 2 as a 1 kHz sine, started with "Start selected together"; an operator who
    # opens the page now finds its form showing what runs; "Stop all outputs" stops it.
    out2 = olga.locator(f'[data-output="{address}/2"]')
    out2.locator('select[name="waveform"]').select_option("sine")
    out2.locator('input[name="frequency"]').fill("1000")
    out2.locator('input[name="select"]').check()
    olga.click("#gen-start-selected")
    status2 = vic.locator(f'[data-output="{address}/2"] [data-status]')
    expect(status2).to_have_attribute("data-running", "1", timeout=10000)
    expect(status2).to_contain_text("sine 1 kHz")
    late = log_in(browser, server, "olga", TABLET)
    watch_errors(late, errors, console=False)
    late_out2 = late.locator(f'[data-output="{address}/2"]')
    expect(late_out2.locator('select[name="waveform"]')).to_have_value("sine")
    expect(late_out2.locator('input[name="frequency"]')).to_have_value("1000")
    late.context.close()
    olga.click("#gen-stop-all")
    expect(status2).to_have_attribute("data-running", "0", timeout=10000)
    olga.click("#btn-disarm")
    expect(olga.locator("#phase-chip")).to_have_attribute("data-phase", "idle", timeout=30000)

    # Output 1 "with the recording": Start sends its settings, the recording drives it and
    # capture.json keeps them; the capture page's FRF (the shared plot) finds the resonance.
    form.locator('select[name="drive"]').select_option("recording")
    expect(form.locator('button[name="start"]')).to_be_hidden()
    olga.fill("#cap-name", "FRF run")
    olga.fill("#cap-duration", "3")
    olga.click("#btn-start")
    capture = wait_js(
        olga,
        "() => { const c = (Dash.state.capture || {}).last; return c && c.name === 'FRF run' "
        "&& c.outcome === 'completed' && c.id; }",
        timeout=60,
    )
    expect(vic.locator(f"{out1} [data-status]")).to_contain_text("last: random")
    meta = olga.evaluate("(id) => Dash.api('GET', `/api/captures/${id}`)", capture)
    [driven] = meta["capture"]["modules"][0]["generator"]
    assert driven["inputs"][0]["signalType"] == "random" and driven["gain"] == 0.05
    olga.goto(f"{server}/captures/{capture}")
    expect(olga.locator("#capture-page")).to_have_attribute("data-frf-ready", "1", timeout=20000)
    olga.click("#frf-compute")
    expect(olga.locator("#frf-info")).to_contain_text("averages", timeout=20000)
    recorded_peak = float(olga.get_attribute("#frf-info", "data-peak-hz") or 0)
    assert abs(recorded_peak - FN) / FN < 0.01, recorded_peak
    click_spectrum_at(olga, "#frf-mag", FN, "#frf-cursor")
    olga.mouse.move(0, 0)
    assert abs(float(olga.get_attribute("#frf-cursor", "data-hz") or 0) - FN) / FN < 0.01
    assert float(olga.get_attribute("#frf-cursor", "data-coherence") or 0) > 0.99
    shoot(olga, "generator-capture-frf-laptop")
    assert errors == []
