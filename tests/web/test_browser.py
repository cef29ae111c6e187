"""The dashboard in a real browser (Debian's chromium through Playwright) against the real
``python -m webapp serve --emulate 3``: a user sets up the rig, records until they stop it,
watches PTP lock, recording time, levels and the waveform; several viewers see the same; an
injected fault lights its lamp everywhere; the capture's files download and parse. Screenshots of every page
go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.browser import (
    LAPTOP,
    TABLET,
    shoot,
    skip_without_chromium,
    wait_js,
    watch_errors,
)
from tests.support.net import free_port
from tests.support.processes import serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        from webapp.emulator import EmulatedRig  # noqa: F401
    except ImportError as exc:
        pytest.skip(str(exc))
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("dashboard")
    with serve(data_dir, "--emulate", "3", "--ptp-lock-seconds", "1") as base:
        yield base, data_dir


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """The dashboard without modules: pages, layout and reconnection need no emulator."""
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("plain")
    with serve(data_dir) as base:
        yield base, data_dir


def lamp_color(page, lamp: str) -> str | None:
    return page.get_attribute(f'[data-lamp="{lamp}"]', "data-color")


def test_user_records_a_capture_and_viewers_follow(server, browser):
    from playwright.sync_api import expect

    base, data_dir = server
    import requests

    errors: list[str] = []

    user = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    page = user.new_page()
    watch_errors(page, errors)

    # --- Rig: the user removes the third emulated module and adds it back by address.
    page.goto(f"{base}/rig")
    rows = page.locator("#rig-table tbody tr[data-module]")
    expect(rows).to_have_count(3)
    expect(page.locator('#rig-table tr[data-reachable="true"]')).to_have_count(3, timeout=10000)
    third = rows.nth(2).get_attribute("data-module")
    page.click(f'button[aria-label="remove {third}"]')
    expect(rows).to_have_count(2)
    page.fill("#add-address", third)
    page.click("#add-btn")
    expect(
        page.locator(f'#rig-table tr[data-module="{third}"][data-reachable="true"]')
    ).to_have_count(1, timeout=10000)
    expect(page.locator(f'#rig-table tr[data-module="{third}"]')).to_contain_text("emulated")
    expect(page.locator("#rig-table tbody")).to_contain_text("Type 3050")
    shoot(page, "rig-laptop")
    modules = [rows.nth(i).get_attribute("data-module") for i in range(3)]

    page.goto(f"{base}/setup")
    expect(page.locator("#module-tables section[data-module]")).to_have_count(3)
    shoot(page, "setup-laptop")

    # --- Capture: until stopped (it records for as long as the fault and the late viewer take,
    # however busy the machine), watched by a second browser on a tablet.
    page.goto(f"{base}/capture")
    expect(page.locator("#conn")).to_have_text("live")
    page.fill("#cap-name", "Browser run")
    page.check("#cap-until")
    expect(page.locator("#cap-duration")).to_be_disabled()
    watcher = browser.new_context(viewport=TABLET).new_page()
    watch_errors(watcher, errors)
    watcher.goto(f"{base}/capture")
    expect(watcher.locator("#conn")).to_have_text("live")
    expect(page.locator("#viewers")).to_have_text("2 viewers")
    page.click("#btn-start")
    # From the moment Start is pressed, every viewer sees what is being prepared.
    expect(watcher.locator('[data-prepared="Browser run"]')).to_be_visible(timeout=5000)
    expect(watcher.locator("#cap-name")).to_have_value("Browser run")

    # PTP lock progress appears for every module, then the recording starts.
    expect(page.locator("[data-ptp-module]")).to_have_count(3, timeout=10000)
    shoot(page, "capture-ptp-laptop")
    expect(page.locator('[data-ptp-module][data-locked="1"]')).to_have_count(3, timeout=20000)
    expect(page.locator("#phase-chip")).to_have_attribute("data-phase", "recording", timeout=30000)

    # A cable fault on module 2, channel 2, injected from the fault panel as soon as the
    # recording runs: red in every viewer within a second, magenta (an earlier fault) once it
    # has cleared.
    lamp = f"{modules[1]}/2"
    page.select_option("#fi-module", modules[1])
    page.select_option("#fi-kind", "cable-fault")
    page.select_option("#fi-channel", "2")
    page.fill("#fi-duration", "1.5")
    page.click("#fi-inject")
    for viewer in (page, watcher):
        expect(viewer.locator(f'[data-lamp="{lamp}"]')).to_have_attribute(
            "data-color", "red", timeout=1000
        )
    expect(page.locator("#fi-list li").first).to_contain_text("cable fault on Ch 2")
    expect(page.locator(f'[data-lamp="{lamp}"] + span + div .fault-name')).to_have_text(
        "cable fault"
    )
    shoot(page, "capture-fault-laptop")
    shoot(watcher, "capture-fault-tablet")

    # Recording time advances; levels and the waveform move; both viewers agree.
    rec = page.locator("#rec-time")
    first = float(rec.get_attribute("data-elapsed") or 0)
    wait_js(
        page,
        "(min) => Number(document.getElementById('rec-time').dataset.elapsed) > min",
        first + 0.3,
    )
    level = page.locator(f'[data-level="{modules[0]}/1"]')
    expect(level).to_have_text(re.compile(r"^9[0-9]\.[0-9] dB re 20 µPa$"), timeout=2000)  # 94 dB
    expect(level).to_have_attribute("data-stale", "0")
    waves = int(page.get_attribute("#wave-info", "data-count") or 0)
    wait_js(
        page,
        "(min) => Number(document.getElementById('wave-info').dataset.count || 0) > min",
        waves + 2,
        timeout=3.0,
    )
    expect(page.locator("#wave-info")).to_contain_text(f"{modules[0]} Ch 1")
    # This viewer switches its own waveform to module 3, channel 3; the others keep theirs.
    page.select_option("#wave-select", f"{modules[2]}/3")
    expect(page.locator("#wave-info")).to_contain_text(f"{modules[2]} Ch 3", timeout=2000)
    expect(watcher.locator("#wave-info")).to_contain_text(f"{modules[0]} Ch 1")
    expect(watcher.locator("#phase-chip")).to_have_attribute("data-phase", "recording")
    a = float(rec.get_attribute("data-elapsed"))
    b = float(watcher.get_attribute("#rec-time", "data-elapsed"))
    assert abs(a - b) < 1.0

    # A third viewer that opens now shows the current state, the fault included, within a
    # second of loading.
    late = browser.new_context(viewport=LAPTOP).new_page()
    watch_errors(late, errors)
    late.goto(f"{base}/capture", wait_until="domcontentloaded")
    expect(late.locator("#phase-chip")).to_have_attribute("data-phase", "recording", timeout=1000)
    expect(late.locator("#rec-time")).not_to_have_text("–", timeout=1000)
    expect(late.locator(f'[data-lamp="{lamp}"]')).to_have_attribute(
        "data-color", re.compile("red|magenta"), timeout=1000
    )
    expect(late.locator(f'[data-lamp="{modules[0]}/1"]')).to_have_attribute(
        "data-color", "green", timeout=1000
    )
    # The fault is module 1's alone: module 2's lamp stays green while the capture records.
    assert lamp_color(page, f"{modules[1]}/1") == "green"
    shoot(page, "capture-recording-laptop")

    for viewer in (page, watcher, late):
        expect(viewer.locator(f'[data-lamp="{lamp}"]')).to_have_attribute(
            "data-color", "magenta", timeout=5000
        )

    # The user stops it; the capture completes and the rig is back to Idle: the lamps say what
    # holds now, nothing measures (the capture's report keeps the fault).
    page.click("#btn-stop")
    expect(page.locator("#phase-chip")).to_have_attribute(
        "data-phase", re.compile("completed|idle"), timeout=30000
    )
    for viewer in (page, late):
        expect(viewer.locator(f'[data-lamp="{lamp}"]')).to_have_attribute(
            "data-color", "off", timeout=2000
        )
    # The last levels stay, dimmed as stale, in every viewer.
    for viewer in (page, watcher, late):
        stale = viewer.locator(f'[data-level="{modules[0]}/1"]')
        expect(stale).to_have_attribute("data-stale", "1", timeout=2000)
        expect(stale).to_have_class(re.compile(r"\bstale\b"))
        expect(stale).to_have_text(re.compile(r"^9[0-9]\.[0-9] dB re 20 µPa$"))
    shoot(page, "capture-done-laptop")
    shoot(watcher, "capture-done-tablet")

    # Setup shows what TEDS detection found while arming: microphone and accelerometer.
    page.goto(f"{base}/setup")
    ch1 = page.locator(f'#module-tables section[data-module="{modules[0]}"] tr[data-channel="1"]')
    expect(ch1).to_contain_text("4189")
    shoot(page, "setup-detected-laptop")

    # History: the capture with its files, which download and parse with HBK's grammar.
    page.goto(f"{base}/history")
    row = page.locator("#history-table tr[data-capture]").first
    expect(row).to_have_attribute("data-outcome", "stopped", timeout=10000)  # by the user
    row.locator("details summary").click()
    expect(row.locator("details dl")).to_contain_text(f"domain 42, master {modules[0]}")
    shoot(page, "history-laptop")
    watcher.goto(f"{base}/history")
    expect(watcher.locator("#history-table tr[data-capture]").first).to_be_visible()
    shoot(watcher, "history-tablet")
    watcher.goto(f"{base}/rig")
    expect(watcher.locator('#rig-table tr[data-reachable="true"]')).to_have_count(3)
    shoot(watcher, "rig-tablet")
    watcher.goto(f"{base}/setup")
    expect(watcher.locator("#module-tables section[data-module]")).to_have_count(3)
    shoot(watcher, "setup-detected-tablet")
    links = row.locator("a[data-file]")
    names = [links.nth(i).get_attribute("data-file") for i in range(links.count())]
    streams = [n for n in names if n.endswith(".stream")]
    assert len(streams) == 3 and "capture.json" in names
    capture_id = row.get_attribute("data-capture")
    with page.expect_download() as got:
        row.locator(f'a[data-file="{streams[0]}"]').click()
    downloaded = Path(got.value.path()).read_bytes()
    assert downloaded == (data_dir / "captures" / capture_id / streams[0]).read_bytes()
    manifest = requests.get(f"{base}/api/captures/{capture_id}", timeout=10).json()["capture"]
    sizes = {f["file"]: f["bytes"] for m in manifest["modules"] for f in m["files"]}
    firsts = set()
    for name in streams:
        href = row.locator(f'a[data-file="{name}"]').get_attribute("href")
        body = requests.get(base + href, timeout=10).content
        assert len(body) == sizes[name]  # every byte the module sent, as capture.json says
        firsts.add(_check_stream(body))
    assert len(firsts) == 1  # the three modules' first samples are simultaneous

    # The capture's analysis page, from its History link.
    row.locator("a[data-analyse]").click()
    expect(page).to_have_url(f"{base}/captures/{capture_id}")
    expect(page.locator("#verdict")).to_have_attribute(
        "data-verdict", re.compile("ok|warnings"), timeout=20000
    )
    shoot(page, "capture-analysis-laptop")
    watcher.goto(f"{base}/captures/{capture_id}")
    expect(watcher.locator("#verdict")).to_have_attribute(
        "data-verdict", re.compile("ok|warnings"), timeout=20000
    )
    shoot(watcher, "capture-analysis-tablet")
    assert not errors, errors


def test_ptp_wait_shows_the_time_waited_running(server, browser):
    """While a module cannot lock, the text beside its PTP bar counts the time waited (between
    the server's once-a-second reports too) against the usual lock time and the timeout, and
    the panel clears once the rig is back to Idle."""
    from playwright.sync_api import expect

    base, _ = server
    page = browser.new_context(viewport=TABLET).new_page()
    page.goto(f"{base}/capture")
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#phase-chip")).to_have_attribute(
        "data-phase", re.compile("completed|idle|failed"), timeout=30000
    )
    slave = page.locator("#fi-module option").nth(1).get_attribute("value")
    page.select_option("#fi-module", slave)
    page.select_option("#fi-kind", "ptp-loss")
    page.click("#fi-inject")
    expect(page.locator("#fi-list li").first).to_contain_text("PTP loss")
    try:
        page.fill("#cap-name", "No lock")
        page.click("#btn-start")
        elapsed = page.locator(f'[data-ptp-elapsed="{slave}"]')
        expect(elapsed).to_be_visible(timeout=10000)
        expect(elapsed).to_have_text(
            re.compile(r"^\d+\.\d s \(usually 2 min or less, timeout 10 min\)$")
        )
        # The text is rewritten many times a second: measure it in the page, in one step.
        wait_js(
            page,
            "(sel) => { const e = document.querySelector(sel);"
            " if (!e) return false; const r = e.getBoundingClientRect();"
            " return r.width > 50 && r.height > 5; }",
            f'[data-ptp-elapsed="{slave}"]',
            timeout=10.0,
        )
        shoot(page, "capture-ptp-waiting-tablet")
        # The server reports once a second; the text moves in between, in small steps.
        seen = wait_js(
            page,
            """(module) => {
                const text = document.querySelector(`[data-ptp-elapsed="${module}"]`).textContent;
                const seen = (window.seenWaited = window.seenWaited || []);
                const value = parseFloat(text);
                if (seen[seen.length - 1] !== value) seen.push(value);
                return seen.length >= 6 && seen;
            }""",
            slave,
            timeout=10.0,
        )
        steps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
        assert all(step > 0 for step in steps) and min(steps) < 0.6, seen
        page.click("#btn-stop")
        expect(page.locator("#phase-chip")).not_to_have_attribute(
            "data-phase", "ptp-lock", timeout=10000
        )
        # Back to Idle, nobody waits for PTP any more: the panel says so instead of a bar.
        expect(page.locator("#phase-chip")).to_have_attribute(
            "data-phase", re.compile("idle"), timeout=10000
        )
        expect(page.locator("#ptp")).to_have_text("Not waiting for PTP lock.")
    finally:
        page.click("#fi-clear")
        page.context.close()


def test_a_module_left_open_elsewhere_is_returned_to_idle_from_the_rig_page(server, browser):
    from playwright.sync_api import expect

    from webapp.openapi.client import ModuleClient

    base, _ = server
    page = browser.new_context(viewport=LAPTOP).new_page()
    page.goto(f"{base}/capture")
    expect(page.locator("#phase-chip")).to_have_attribute(
        "data-phase", re.compile("completed|idle|failed"), timeout=30000
    )
    page.goto(f"{base}/rig")
    rows = page.locator("#rig-table tbody tr[data-module]")
    expect(page.locator('#rig-table tr[data-reachable="true"]')).to_have_count(3, timeout=10000)
    address = rows.nth(1).get_attribute("data-module")
    other = ModuleClient(address)  # another program opens the recorder and goes away
    other.open(single_module=False)
    try:
        page.click("#refresh-btn")
        row = page.locator(f'#rig-table tr[data-module="{address}"]')
        expect(row).to_contain_text("RecorderOpened", timeout=10000)
        button = page.locator(f'button[data-return-to-idle="{address}"]')
        expect(button).to_be_visible()
        shoot(page, "rig-module-left-open-laptop")
        button.click()
        expect(row).not_to_contain_text("RecorderOpened", timeout=10000)
        expect(row).to_contain_text("Idle")
        expect(button).to_have_count(0)
        assert other.onchange()["moduleState"] == "Idle"
    finally:
        if other.onchange()["moduleState"] != "Idle":
            other.close()
        page.context.close()


def _check_stream(data: bytes) -> int:
    """Parse a whole stream file with the strict grammar checker; every signal complete, no
    overrun, no gap. Returns the first sample's time."""
    from tests import streamcheck

    report = streamcheck.check_stream(data)
    assert report.by_type.get("signal_data", 0) > 0
    signals = list(report.signals.values())
    assert len(signals) == 6  # every channel of a Type 3050
    for sig in signals:
        assert not sig.gaps
        assert not any(flags & streamcheck.OVERRUN for _, flags in sig.qualities)
        # It recorded through the 1.5 s cable fault and until the lamps turned magenta.
        assert sig.samples / sig.sample_rate >= 1.5
    assert len({sig.samples for sig in signals}) == 1
    assert len({sig.first_time for sig in signals}) == 1
    return signals[0].first_time


def test_every_page_at_both_sizes(plain_server, browser):
    base, _ = plain_server
    for size_name, viewport in (("laptop", LAPTOP), ("tablet", TABLET)):
        ctx = browser.new_context(viewport=viewport)
        page = ctx.new_page()
        for name in ("capture", "rig", "setup", "history", "admin"):
            page.goto(f"{base}/{name}")
            page.wait_for_selector("#conn.conn-ok")
            shoot(page, f"page-{name}-{size_name}")
        ctx.close()


def test_page_reconnects_after_server_restart_shows_reconnecting(tmp_path, browser):
    """The server process goes away and comes back: the page shows that it is reconnecting,
    reconnects by itself and gets the new server's state."""
    from playwright.sync_api import expect

    port = free_port()
    page = browser.new_context(viewport=LAPTOP).new_page()
    try:
        with serve(tmp_path, port=port) as base:
            page.goto(f"{base}/capture")
            expect(page.locator("#conn")).to_have_text("live", timeout=10000)
        # The server has been terminated.
        expect(page.locator("#reconnect-banner")).to_be_visible(timeout=5000)
        expect(page.locator("#conn")).to_have_text("reconnecting…")
        expect(page.locator("#btn-start")).to_be_disabled()
        shoot(page, "capture-reconnecting-laptop")
        with serve(tmp_path, port=port):
            expect(page.locator("#conn")).to_have_text("live", timeout=10000)
            expect(page.locator("#reconnect-banner")).to_be_hidden()
            expect(page.locator("#btn-start")).to_be_enabled()
            expect(page.locator("#viewers")).to_have_text("1 viewer")
    finally:
        page.context.close()
