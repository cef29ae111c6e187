"""The FRF of a recorded capture: a 3160 drives random noise from output 1 into input 1 (the
reference) and, through the emulator's resonance (fn 1000 Hz, ζ 0.05), into input 2; the
capture's H1 finds it within 1 % and matches the analytic |H| within 0.2 dB with coherence
above 0.99; the UFF 58 export reads back as the same function records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.analysis import frf as capture_frf
from webapp.analysis.reader import Capture
from webapp.capture.events import EventBus
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings, ChannelSettings
from webapp.dsp.frf import peak
from webapp.emulator import EmulatedRig
from webapp.emulator.waveforms import Loopback

FN, ZETA = 1000.0, 0.05
RANDOM = {
    "number": 1,
    "gain": 0.05,
    "inputs": [
        {"number": 1, "signalType": "random", "center_frequency": 2000.0, "bandwidth": 4000.0,
         "gain": 0.999},
        {"number": 2, "signalType": "none"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def frf_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rig = EmulatedRig.start(1, types="3160", loopbacks=("1>1", f"1>2:{FN:g}:{ZETA:g}"), **FAST)
    try:
        orch = Orchestrator(EventBus(), tmp_path_factory.mktemp("frf"))
        (address,) = rig.addresses
        off = [ChannelSettings(channel=c, enabled=False) for c in (3, 4)]
        orch.start(
            CaptureSettings(
                modules=[address],
                name="FRF",
                duration_s=2.5,
                bandwidth="6.4 kHz",
                channels={address: off},
                generators={address: [RANDOM]},
            )
        )
        assert orch.wait(60) and orch.last_outcome == "completed", orch.last_error
        assert orch.last_folder is not None
        return orch.last_folder
    finally:
        rig.stop()


def test_capture_frf_finds_the_resonance(frf_capture: Path) -> None:
    with Capture.open(frf_capture) as cap:
        keys = [c.key for c in cap.channels]
        result, facts = capture_frf.compute(cap, keys[0], [keys[1]], nfft=4096)
    f, h1, coh = result.frequency, result.h1[0], result.coherence[0]
    assert facts["averages"] >= 15 and facts["sample_rate"] == 16384
    assert abs(peak(f, h1, 100, 3000) - FN) / FN < 0.01
    band = (f >= 50) & (f <= 3500)
    exact = Loopback(1, 2, FN, ZETA).response(f[band])
    assert np.max(np.abs(20 * np.log10(np.abs(h1[band]) / np.abs(exact)))) < 0.2
    assert np.min(coh[band]) > 0.99
    doc = capture_frf.as_json(result, facts)
    assert doc["frf"][0]["unit"] == "V/V" and "dB re 1" in doc["db_reference"]
    at_fn = int(np.argmin(np.abs(np.asarray(doc["freq"]) - FN)))
    assert doc["frf"][0]["h1_db"][at_fn] == pytest.approx(20.0, abs=0.2)  # 1/(2ζ) = 10


def test_uff58_export_reads_back(frf_capture: Path, tmp_path: Path) -> None:
    import pyuff

    with Capture.open(frf_capture) as cap:
        keys = [c.key for c in cap.channels]
        result, facts = capture_frf.compute(cap, keys[0], [keys[1]], nfft=1024)
    path = tmp_path / "frf.uff"
    capture_frf.uff58(path, result, facts, "FRF")
    sets = pyuff.UFF(str(path)).read_sets()
    sets = sets if isinstance(sets, list) else [sets]
    assert [s["func_type"] for s in sets] == [4, 9]
    assert np.allclose(sets[0]["x"], result.frequency)
    assert np.allclose(sets[0]["data"], result.h1[0], rtol=1e-5, atol=1e-9)
    assert np.allclose(sets[1]["data"], result.coherence[0], rtol=1e-5)


def test_refusals_in_the_users_terms(frf_capture: Path) -> None:
    with Capture.open(frf_capture) as cap:
        keys = [c.key for c in cap.channels]
        with pytest.raises(ValueError, match="nfft must be one of"):
            capture_frf.compute(cap, keys[0], [keys[1]], nfft=1000)
        with pytest.raises(ValueError, match="cannot be its own response"):
            capture_frf.compute(cap, keys[0], [keys[0]])
        with pytest.raises(ValueError, match="at least one response"):
            capture_frf.compute(cap, keys[0], [])


def test_frf_api_and_uff_download(frf_capture: Path, tmp_path: Path) -> None:
    import shutil

    from webapp.web.app import create_app

    data = tmp_path / "data"
    app = create_app(data, bus=EventBus())
    app.config["TESTING"] = True
    shutil.copytree(frf_capture, data / "captures" / frf_capture.name)
    client = app.test_client()
    with Capture.open(frf_capture) as cap:
        ref, rsp = (c.key for c in cap.channels[:2])
    base = f"/api/captures/{frf_capture.name}/analysis"
    res = client.get(f"{base}/frf", query_string={"reference": ref, "response": rsp})
    assert res.status_code == 200, res.get_data(as_text=True)
    doc = res.get_json()
    freq = np.asarray(doc["freq"])
    at_fn = int(np.argmin(np.abs(freq - FN)))
    assert doc["frf"][0]["h1_db"][at_fn] == pytest.approx(20.0, abs=0.2)
    assert doc["frf"][0]["h1_phase_deg"][at_fn] == pytest.approx(-90, abs=2)
    bad = client.get(f"{base}/frf", query_string={"reference": ref, "response": "nope"})
    assert bad.status_code == 404 and bad.get_json()["field"] == "response"
    bad = client.get(f"{base}/frf", query_string={"reference": ref, "response": rsp, "nfft": 7})
    assert bad.status_code == 400 and "nfft must be one of" in bad.get_json()["error"]
    uff = client.get(f"{base}/frf.uff", query_string={"reference": ref, "response": rsp})
    assert uff.status_code == 200 and len(uff.data) > 1000


@pytest.mark.browser
@pytest.mark.parametrize(
    "viewport",
    [{"width": 1366, "height": 768}, {"width": 820, "height": 1180}],
    ids=["laptop", "tablet"],
)
def test_frf_plot_on_the_capture_page(frf_capture: Path, tmp_path: Path, browser, viewport) -> None:
    import shutil

    from tests.support.browser import shoot, skip_without_chromium, wait_js, watch_errors
    from tests.support.processes import serve

    skip_without_chromium()
    data = tmp_path / "data"
    shutil.copytree(frf_capture, data / "captures" / frf_capture.name)
    with serve(data) as base:
        page = browser.new_page(viewport=viewport)
        errors: list[str] = []
        watch_errors(page, errors)
        page.goto(f"{base}/captures/{frf_capture.name}")
        wait_js(page, "() => document.querySelector('#capture-page').dataset.frfReady")
        page.click("#frf-compute")
        wait_js(page, "() => document.querySelector('#frf-info').dataset.peakHz")
        found = float(page.get_attribute("#frf-info", "data-peak-hz"))
        assert abs(found - FN) / FN < 0.01
        assert "dB re 1" in page.text_content("#frf-info")
        assert page.get_attribute("#frf-uff", "href").startswith("/api/captures/")
        page.locator("#frf-mag .u-over").scroll_into_view_if_needed()  # hover needs it on screen
        box = page.locator("#frf-mag .u-over").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        wait_js(page, "() => document.querySelector('#frf-cursor').dataset.freq")
        text = page.text_content("#frf-cursor")
        assert "Hz · |H1|" in text and "dB re 1 V/V" in text and "γ²" in text
        page.select_option("#frf-estimator", "h2")
        found = float(page.get_attribute("#frf-info", "data-peak-hz"))
        assert abs(found - FN) / FN < 0.01  # H2 too: the peak is looked for where γ² ≥ 0.9
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
        assert "|H2|" in page.text_content("#frf-cursor")
        shoot(page, f"capture-frf-{viewport['width']}")
        assert not errors, errors
