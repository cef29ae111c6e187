"""The live meters and readouts in a real browser against ``serve --emulate 1``: the calibrated
microphone reads 94.0 dB re 20 µPa and 1.00 Pa RMS, the accelerometer its documented level re
1 µm/s² on the live page and on the analysis page; an injected overload latches the meter's OVL
indicator, which holds until the next measurement starts and is cleared by disarming.
Screenshots of the meters at 1366×768 and 820×1180."""

from __future__ import annotations

import math
import re

import pytest
import requests

from tests.support.browser import (
    LAPTOP,
    TABLET,
    shoot,
    skip_without_chromium,
    wait_js,
    watch_errors,
)
from tests.support.processes import serve
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

ACCEL_DB = 20 * math.log10(math.sqrt(7.0**2 / 2 + 2.0**2 / 2 + 0.05**2) / 1e-6)  # docs/emulator.md
LEVEL = re.compile(r"^(−?[0-9.]+) dB re (.+)$")
ENG = re.compile(r"^([0-9.e+-]+) (\S+) RMS · ([0-9.e+-]+) (\S+) peak · ([+−]?[0-9.]+) dBFS$")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("levels")
    with serve(data_dir, "--emulate", "1") as base:
        yield base


def post(base: str, path: str, body: dict | None = None) -> dict:
    r = requests.post(f"{base}{path}", json=body or {}, timeout=10)
    assert r.ok, f"{path}: {r.status_code} {r.text}"
    return r.json()


def phase_is(page, phase: str, timeout: float = 30.0) -> None:
    wait_js(
        page,
        "(p) => document.getElementById('phase-chip').dataset.phase === p",
        phase,
        timeout=timeout,
    )


def faults_over(base: str) -> None:
    """Until every injected fault has run out."""

    def over() -> bool:
        injected = requests.get(f"{base}/api/emulator/faults", timeout=5).json()["injected"]
        return not any(f["active"] for f in injected)

    wait_until(over, 10.0, 0.05)


def overload_on(page, key: str) -> bool:
    return page.get_attribute(f'[data-overload="{key}"]', "data-on") == "1"


def wait_overload(page, key: str, on: bool, timeout: float = 10.0) -> None:
    wait_js(
        page,
        '([k, v]) => { const n = document.querySelector(`[data-overload="${k}"]`);'
        " return !!n && n.dataset.on === v; }",
        [key, "1" if on else "0"],
        timeout=timeout,
    )


def fresh_level(page, key: str, pattern: str) -> str:
    """The text of a channel's dB readout once it is live (not stale) and matches."""
    return str(
        wait_js(
            page,
            '([k, p]) => { const n = document.querySelector(`[data-level="${k}"]`);'
            " return n && n.dataset.stale === '0' && new RegExp(p).test(n.textContent)"
            " ? n.textContent : null; }",
            [key, pattern],
            timeout=15.0,
        )
    )


def dbfs_of_mic(eng: re.Match) -> float:
    """20·log10(peak / full scale) of the microphone on the default 10 Vpeak range."""
    from webapp.emulator.rig import microphone

    return 20 * math.log10(float(eng.group(3)) / (10.0 / microphone(0).sensitivity))


def test_meters_read_engineering_units_and_latch_overload(server, browser):
    base = server
    errors: list[str] = []
    page = browser.new_context(viewport=LAPTOP).new_page()
    watch_errors(page, errors)
    page.goto(f"{base}/capture")
    wait_js(page, "() => document.getElementById('conn').textContent === 'live'")
    address = requests.get(f"{base}/api/rig", timeout=5).json()["modules"][0]["address"]
    mic, acc = f"{address}/1", f"{address}/2"

    post(base, "/api/capture/arm", {"name": "Levels"})
    phase_is(page, "armed")
    first = post(base, "/api/capture/start", {"name": "Levels one", "duration_s": None})
    phase_is(page, "recording")

    # The calibrator: 94.0 dB re 20 µPa, 1.00 Pa RMS, well below the range's full scale.
    text = fresh_level(page, mic, r"^9[34]\.\d dB re 20 µPa$")
    live_mic_db = float(LEVEL.match(text).group(1))
    assert live_mic_db == pytest.approx(94.0, abs=0.1)
    eng = ENG.match(page.text_content(f'[data-eng="{mic}"]'))
    assert eng, page.text_content(f'[data-eng="{mic}"]')
    assert float(eng.group(1)) == pytest.approx(1.00, rel=0.01) and eng.group(2) == "Pa"
    assert float(eng.group(5).replace("−", "-")) == pytest.approx(dbfs_of_mic(eng), abs=0.1)
    # The accelerometer: re 1 µm/s², its unit printed m/s².
    text = fresh_level(page, acc, r"^13\d\.\d dB re 1 µm/s²$")
    live_acc_db = float(LEVEL.match(text).group(1))
    assert live_acc_db == pytest.approx(ACCEL_DB, abs=0.2)
    assert ENG.match(page.text_content(f'[data-eng="{acc}"]')).group(2) == "m/s²"
    assert "m/s^2" not in page.text_content("#modules")
    assert not overload_on(page, mic), page.get_attribute(f'[data-overload="{mic}"]', "title")
    dbfs = float(page.get_attribute(f'[data-meter="{mic}"]', "data-dbfs"))
    assert -45 < dbfs < -42  # 1.414 Pa peak × about 48 mV/Pa on the 10 Vpeak range: −43.4 dBFS
    shoot(page, "meters-laptop")
    page.set_viewport_size(TABLET)
    shoot(page, "meters-tablet")
    page.set_viewport_size(LAPTOP)
    post(base, "/api/capture/stop")
    phase_is(page, "armed")

    # An analog overload on the microphone channel for a second: OVL lights and stays lit.
    post(base, "/api/capture/start", {"name": "Levels two", "duration_s": None})
    phase_is(page, "recording")
    fresh_level(page, mic, r"^9[34]\.\d dB re 20 µPa$")
    post(
        base,
        "/api/emulator/faults",
        {"module": address, "fault": "overload", "channel": 1, "duration_s": 1},
    )
    wait_overload(page, mic, True)
    assert not overload_on(page, acc)
    # The bar runs into the headroom: the clipped peak is above 0 dBFS.
    wait_js(
        page,
        '(k) => Number(document.querySelector(`[data-meter="${k}"]`).dataset.dbfs) > 0',
        mic,
        timeout=5.0,
    )
    shoot(page, "meters-overload-laptop")
    page.set_viewport_size(TABLET)
    shoot(page, "meters-overload-tablet")
    page.set_viewport_size(LAPTOP)
    faults_over(base)
    fresh_level(page, mic, r"^9[34]\.\d dB re 20 µPa$")  # the fault has ended: 94 dB again
    assert overload_on(page, mic)  # ... and the latch holds
    post(base, "/api/capture/stop")
    phase_is(page, "armed")
    assert overload_on(page, mic)

    # The next measurement starts with the latch cleared.
    post(base, "/api/capture/start", {"name": "Levels three", "duration_s": None})
    phase_is(page, "recording")
    fresh_level(page, mic, r"^9[34]\.\d dB re 20 µPa$")
    assert not overload_on(page, mic), page.get_attribute(f'[data-overload="{mic}"]', "title")
    post(
        base,
        "/api/emulator/faults",
        {"module": address, "fault": "overload", "channel": 1, "duration_s": 0.5},
    )
    wait_overload(page, mic, True)
    faults_over(base)
    post(base, "/api/capture/stop")
    phase_is(page, "armed")
    assert overload_on(page, mic)
    # Disarming clears it.
    post(base, "/api/capture/disarm")
    phase_is(page, "idle")
    wait_overload(page, mic, False)

    # The analysis page of the first capture: the same figures with the same references.
    page.goto(f"{base}/captures/{first['capture_id']}")
    key_mic, key_acc = "m1-ch1", "m1-ch2"
    wait_js(
        page,
        '(k) => { const n = document.querySelector(`#channels-table [data-level="${k}"]`);'
        " return !!n && / dB re /.test(n.textContent); }",
        key_mic,
    )
    report_mic = LEVEL.match(page.text_content(f'#channels-table [data-level="{key_mic}"]'))
    assert report_mic.group(2) == "20 µPa"
    assert float(report_mic.group(1)) == pytest.approx(94.0, abs=0.1)
    assert page.text_content(f'#channels-table [data-eng="{key_mic}"]').startswith("1.00")
    report_acc = LEVEL.match(page.text_content(f'#channels-table [data-level="{key_acc}"]'))
    assert report_acc.group(2) == "1 µm/s²"
    assert float(report_acc.group(1)) == pytest.approx(ACCEL_DB, abs=0.1)
    assert float(report_acc.group(1)) == pytest.approx(live_acc_db, abs=0.2)
    assert "m/s^2" not in page.text_content("#capture-page")
    page.select_option("#channel-select", key_acc)
    wait_js(
        page, "() => / dB re 1 µm\\/s² at /.test(document.getElementById('spec-info').textContent)"
    )
    shoot(page, "analysis-levels-laptop")
    assert not errors, errors
