"""The capture page's JSON endpoints through the dashboard's Flask app."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile

from webapp.analysis import export_csv
from webapp.analysis.reader import Capture
from webapp.capture.events import EventBus
from webapp.web.app import create_app

CID = "20231114-221320-faulty"


@pytest.fixture
def app_data(tmp_path: Path, faulty_capture: Path) -> tuple[object, Path]:
    data = tmp_path / "data"
    app = create_app(data, bus=EventBus())
    app.config["TESTING"] = True
    shutil.copytree(faulty_capture, data / "captures" / CID)
    return app, data / "captures" / CID


@pytest.fixture
def client(app_data):
    return app_data[0].test_client()


def api(client, path: str, status: int = 200, **params):
    res = client.get(f"/api/captures/{CID}/analysis/{path}", query_string=params)
    assert res.status_code == status, res.get_data(as_text=True)
    return res.get_json()


def test_page_and_unknown_captures(client) -> None:
    res = client.get(f"/captures/{CID}")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert f'data-capture="{CID}"' in html and "capture.js" in html and "uPlot" in html
    for bad in ("nope", "..", ".exports", "%2e%2e"):
        assert client.get(f"/captures/{bad}").status_code == 404
        assert client.get(f"/api/captures/{bad}/analysis/report").status_code == 404


def test_report_channels_quality(client) -> None:
    report = api(client, "report")
    assert report["verdict"] == "errors"
    assert [f["checksum"] for f in report["files"]] == ["ok", "ok"]
    info = api(client, "channels")
    assert [c["key"] for c in info["channels"]] == ["m1-ch1", "m1-ch2", "m2-ch1", "m2-ch3"]
    assert info["span"] == [0.0, pytest.approx(14 * 4096 / 65536)]
    assert info["common_span"] == [pytest.approx(4096 / 65536), pytest.approx(11 * 4096 / 65536)]
    q = api(client, "quality")
    mic = q["channels"][0]
    assert [i["flags"] for i in mic["intervals"]] == [["overload"], ["overrun"]]
    assert mic["gaps"][0]["missing"] == 8192


def test_time_data_decimated_then_every_sample(client, faulty_capture: Path) -> None:
    with Capture.open(faulty_capture) as cap:
        values = cap.read("m1-ch1")
    d = api(client, "data", channel="m1-ch1", points=100)
    assert d["mode"] == "minmax" and len(d["min"]) <= 100
    finite = values[~np.isnan(values)]
    assert min(v for v in d["min"] if v is not None) == pytest.approx(finite.min(), rel=1e-6)
    assert max(v for v in d["max"] if v is not None) == pytest.approx(finite.max(), rel=1e-6)
    assert None in d["min"]  # the gap shows as a hole
    d = api(client, "data", channel="m1-ch1", start=0.1, end=0.1 + 50 / 65536, points=100)
    assert d["mode"] == "samples"
    i0 = d["start_index"]
    assert i0 == round(0.1 * 65536)
    assert np.array_equal(np.array(d["values"]), values[i0 : i0 + len(d["values"])])
    assert d["t"][0] == pytest.approx(i0 / 65536)
    api(client, "data", 404, channel="m7-ch1")
    api(client, "data", 400, channel="m1-ch1", start="soon")


def test_spectrum_of_the_calibrator(client) -> None:
    s = api(client, "spectrum", channel="m1-ch1", start=0.0, end=0.3, nfft=4096)
    peak = int(np.argmax(s["db"]))
    assert s["freq"][peak] == pytest.approx(1000.0, abs=s["resolution_hz"])
    assert s["reference"] == "20 µPa"
    # One line of a Hann window holds most of the tone: its level is close to 94 dB.
    total = 10 * np.log10(sum(10 ** (d / 10) for d in s["db"][peak - 2 : peak + 3]))
    assert total == pytest.approx(94.0 + 1.76, abs=0.3)  # Hann's +1.76 dB energy spread
    api(client, "spectrum", 400, channel="m1-ch1", nfft=1000)
    bad = client.get(f"/api/captures/{CID}/analysis/spectrum?channel=m1-ch1&average=median")
    assert bad.status_code == 400 and bad.get_json()["field"] == "average"


def test_spectrum_ends_at_the_bandwidth_and_holds_peaks(client) -> None:
    q = {"channel": "m1-ch1", "start": 0.0, "end": 0.3, "nfft": 4096, "window": "flattop"}
    lin = api(client, "spectrum", **q)
    held = api(client, "spectrum", **q, average="peak")
    # 65536 S/s: the bandwidth is 65536 / 2.56 = 25.6 kHz, and no line lies above it.
    assert lin["bandwidth_hz"] == pytest.approx(25600.0)
    assert lin["freq"][-1] <= 25600.0 < lin["freq"][-1] + lin["resolution_hz"]
    assert held["average"] == "peak" and len(held["db"]) == len(lin["db"])
    # A steady tone: the same 94.0 dB flat top either way; elsewhere peak hold is never lower.
    k = int(np.argmax(lin["db"]))
    assert lin["db"][k] == pytest.approx(94.0, abs=0.1)
    assert held["db"][k] == pytest.approx(lin["db"][k], abs=0.05)
    assert all(h >= v - 1e-9 for h, v in zip(held["db"], lin["db"], strict=True))


def test_export_downloads(client, app_data, faulty_capture: Path, monkeypatch) -> None:
    with Capture.open(faulty_capture) as cap:
        arrays = cap.arrays(dtype=np.float32)
    res = client.get(f"/api/captures/{CID}/analysis/export", query_string={"format": "hdf5"})
    assert res.status_code == 200
    assert "faulty.h5" in res.headers["Content-Disposition"]
    with h5py.File(io.BytesIO(res.get_data()), "r") as h5:
        assert np.array_equal(h5["module2/channel3"][:], arrays["m2-ch3"], equal_nan=True)
    res = client.get(
        f"/api/captures/{CID}/analysis/export", query_string={"format": "wav", "trim": "1"}
    )
    assert res.status_code == 200
    with zipfile.ZipFile(io.BytesIO(res.get_data())) as z:
        assert sorted(z.namelist()) == ["faulty.m1.wav", "faulty.m2.wav"]
        m2, rate = soundfile.read(io.BytesIO(z.read("faulty.m2.wav")), dtype="float32")
    assert rate == 65536 and m2.shape == (10 * 4096, 2)
    # Exports are kept in a hidden folder of the capture, invisible to the file list.
    assert (app_data[1] / ".exports").is_dir()
    files = client.get(f"/api/captures/{CID}").get_json()["summary"]["files"]
    assert all(not f["file"].startswith(".") for f in files)
    est = api(client, "export/estimate", format="csv", channels="m1-ch1")
    assert est["bytes"] > 0
    monkeypatch.setattr(export_csv, "CSV_MAX_VALUES", 100)
    err = api(client, "export/estimate", 422, format="csv")
    assert "short captures" in err["error"]
    api(client, "export", 422, format="csv")
    api(client, "export", 400, format="xls")
    api(client, "export", 404, format="hdf5", channels="m1-ch9")


def test_viewer_role_needed(tmp_path: Path, faulty_capture: Path) -> None:
    data = tmp_path / "data"
    app = create_app(data, bus=EventBus(), auth_enabled=True)
    shutil.copytree(faulty_capture, data / "captures" / CID)
    client = app.test_client()
    assert client.get(f"/api/captures/{CID}/analysis/report").status_code == 401
