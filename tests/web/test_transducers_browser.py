"""The Transducers page in a real browser on ``serve --emulate 1 --emulate-calibration-shaker``: adding a transducer by hand,
CSV import refusing a bad row by row and column, and the calibration flow on the emulator's
microphone (94.0 dB re 20 µPa calibrator, 48.0 mV/Pa): a passing check stored with date and
user, and a wrong stored sensitivity failing by its deviation. Screenshots: transducers-*.png."""

from __future__ import annotations

import math

import pytest
import requests

from tests.support.browser import LAPTOP, TABLET, shoot, skip_without_chromium, watch_errors
from tests.support.processes import serve

pytestmark = pytest.mark.browser

MIC_ID = "4189-A-021_3021100"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_chromium()
    data_dir = tmp_path_factory.mktemp("transducers")
    args = ["--emulate", "1", "--ptp-lock-seconds", "1", "--emulate-calibration-shaker"]
    with serve(data_dir, *args) as base:
        yield base


def test_database_by_hand_and_csv(server, browser, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=TABLET).new_page()
    errors: list[str] = []
    watch_errors(page, errors, console=False)
    page.goto(f"{server}/transducers")
    page.fill("#tr-type", "4508-B")
    page.fill("#tr-serial", "77001")
    page.fill("#tr-sensitivity", "10.2")
    page.select_option("#tr-unit", "m/s^2")
    page.check("#tr-ccld")
    page.fill("#tr-calibrated", "2020-01-01")
    page.fill("#tr-due", "2021-01-01")
    page.click("#tr-form button[type=submit]")
    row = page.locator('tr[data-transducer="4508-B_77001"]')
    expect(row).to_contain_text("10.200 mV/(m/s²)")
    expect(row.locator('[data-flag="overdue"]')).to_be_visible()
    expect(page.locator("#tr-overdue")).to_have_text("1 calibration overdue")
    bad = tmp_path / "bad.csv"
    bad.write_text("type,serial,sensitivity,unit\n4189,1,0.05,Pa\n4189,2,0.05,furlong\n")
    page.set_input_files("#tr-csv", str(bad))
    expect(page.locator("#tr-csv-error")).to_contain_text("row 3, column unit")
    good = tmp_path / "good.csv"
    good.write_text("type,serial,sensitivity,unit,ccld\n4189,1,0.05,Pa,yes\n4189,2,0.051,Pa,yes\n")
    page.set_input_files("#tr-csv", str(good))
    expect(page.locator("#tr-csv-result")).to_have_text("2 transducers imported")
    expect(page.locator('tr[data-transducer="4189_2"]')).to_contain_text("51.000 mV/Pa")
    shoot(page, "transducers-tablet")
    assert errors == []
    page.context.close()


def test_calibration_flow_on_the_microphone(server, browser):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=LAPTOP).new_page()
    errors: list[str] = []
    watch_errors(page, errors, console=False)
    page.goto(f"{server}/transducers")
    expect(page.locator("#cal-module option")).to_have_count(1, timeout=10000)
    page.fill("#cal-channel", "1")
    page.select_option("#cal-reference", "94dB@1kHz")
    page.click("#cal-measure")
    verdict = page.locator("#cal-verdict")
    expect(verdict).to_have_attribute("data-verdict", "pass", timeout=20000)
    expect(page.locator('[data-fact="Stored sensitivity"]')).to_contain_text("94.00 dB re 20 µPa")
    # The TEDS microphone is now in the database.
    expect(page.locator(f'tr[data-transducer="{MIC_ID}"]')).to_contain_text("48.000 mV/Pa")
    page.fill("#cal-due", "2031-06-30")
    page.click("#cal-store")
    expect(page.locator("#cal-stored")).to_contain_text("stored 48.0")
    entry = requests.get(f"{server}/api/transducers/{MIC_ID}", timeout=10).json()
    assert entry["history"][-1]["source"] == "check" and entry["due"] == "2031-06-30"
    assert abs(20 * math.log10(entry["sensitivity"] / 0.048)) < 0.1
    shoot(page, "transducers-calibration-pass")
    # A wrong stored sensitivity (10 % high): FAIL by -0.83 dB.
    r = requests.put(
        f"{server}/api/transducers/{MIC_ID}",
        json={**{k: entry[k] for k in ("type", "serial", "unit", "ccld")}, "sensitivity": 0.0528},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    page.click("#tr-reload")
    page.select_option("#cal-transducer", MIC_ID)
    page.click("#cal-measure")
    expect(verdict).to_have_attribute("data-verdict", "fail", timeout=20000)
    expect(page.locator('[data-fact="Deviation"]')).to_contain_text("-0.8")
    deviation = float(page.locator('[data-fact="Deviation"]').inner_text().split()[0])
    assert deviation == pytest.approx(20 * math.log10(48.0 / 52.8), abs=0.05)
    shoot(page, "transducers-calibration-fail")
    # The accelerometer on the calibration shaker: 10.0 mV/(m/s²), 140.0 dB re 1 µm/s².
    page.select_option("#cal-transducer", "")
    page.fill("#cal-channel", "2")
    page.select_option("#cal-reference", "10m/s2@159.2Hz")
    page.click("#cal-measure")
    expect(verdict).to_have_attribute("data-verdict", "pass", timeout=20000)
    new = page.locator('[data-fact="New sensitivity"]').inner_text()
    assert new.endswith(" mV/(m/s²)"), new
    assert abs(20 * math.log10(float(new.split()[0]) / 10.0)) < 0.1, new
    expect(page.locator('[data-fact="Measured"]')).to_contain_text("at 159.2 Hz")
    expect(page.locator('[data-fact="Stored sensitivity"]')).to_contain_text("140.00 dB re 1 µm/s²")
    assert errors == []
    page.context.close()


@pytest.mark.parametrize("path", ["/setup", "/capture"])
def test_overdue_calibrations_are_flagged_on_setup_and_capture(server, browser, path):
    from playwright.sync_api import expect

    body = {
        "type": "4384",
        "serial": "90001",
        "sensitivity": 0.00101,
        "unit": "m/s^2",
        "calibrated": "2022-03-01",
        "due": "2023-03-01",
    }
    r = requests.post(f"{server}/api/transducers", json=body, timeout=10)
    assert r.status_code in (201, 400), r.text  # 400: the other page's run added it
    page = browser.new_context(viewport=TABLET).new_page()
    errors: list[str] = []
    watch_errors(page, errors, console=False)
    page.goto(f"{server}{path}")
    flag = page.locator('#calibration-overdue [data-overdue="4384_90001"]')
    expect(flag).to_contain_text("4384 s/n 90001, due 2023-03-01", timeout=10000)
    expect(page.locator("#calibration-overdue a")).to_have_attribute("href", "/transducers")
    shoot(page, f"calibration-overdue{path.replace('/', '-')}")
    assert errors == []
    page.context.close()


def test_setup_picks_a_channels_transducer_from_the_database(server, browser):
    from playwright.sync_api import expect

    body = {"type": "4508-B", "serial": "880011", "sensitivity": 0.00998, "unit": "m/s^2"}
    r = requests.post(f"{server}/api/transducers", json=body, timeout=10)
    assert r.status_code == 201, r.text
    page = browser.new_context(viewport=LAPTOP).new_page()
    errors: list[str] = []
    watch_errors(page, errors, console=False)
    page.goto(f"{server}/setup")
    picker = page.locator('select[aria-label$="channel 4"].transducer-pick')
    expect(picker.locator('option[value="4508-B_880011"]')).to_have_count(1, timeout=10000)
    picker.select_option("4508-B_880011")
    expect(page.locator('input[aria-label$="channel 4"][placeholder="V/unit"]')).to_have_value(
        "0.00998"
    )
    page.click("#apply-btn")
    expect(page.locator("#dirty-note")).to_be_hidden(timeout=10000)
    setup = requests.get(f"{server}/api/setup", timeout=10).json()["setup"]
    (rows,) = setup["channels"].values()
    row = next(r for r in rows if r["channel"] == 4)
    assert row["transducer"] == {
        "sensitivity": 0.00998,
        "unit": "m/s^2",
        "serial": 880011,
        "type": "4508-B",
    }
    shoot(page, "setup-transducer-picker")
    assert errors == []
    page.context.close()
