"""The transducer API over HTTP with access control on: viewers read but change nothing (and
are not shown the controls), operators change the database with every change in the audit
log; bad bodies are refused naming the field; a detection's TEDS transducers join the
database through the bus."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_support import (
    cheap_hashes,  # noqa: F401 - autouse fixture
    login,
    secure_app,
    send,
)

from webapp.auditlog import AuditLog
from webapp.capture import events as ev
from webapp.emulator.rig import microphone

BODY = {"type": "4508-B", "serial": "77001", "sensitivity": 0.0102, "unit": "m/s^2"}
CHANGES = [
    ("POST", "/api/transducers", BODY),
    ("POST", "/api/transducers/import", {"csv": "type,serial,sensitivity,unit\n4189,1,0.05,Pa\n"}),
    ("PUT", "/api/transducers/4508-B_77001", BODY),
    ("DELETE", "/api/transducers/4508-B_77001", None),
    ("POST", "/api/transducers/4508-B_77001/calibrations", {"sensitivity": 0.0101}),
    ("POST", "/api/calibration/check", {"address": "x", "channel": 1, "reference": "94dB@1kHz"}),
]


@pytest.fixture
def app(tmp_path: Path, bus, orchestrator):
    return secure_app(tmp_path / "data", bus, orchestrator)


@pytest.mark.parametrize(("method", "url", "body"), CHANGES)
def test_viewer_reads_but_cannot_change(app, method, url, body):
    vic = login(app, "vic")
    assert vic.get("/api/transducers").status_code == 200
    r = send(vic, method, url, body)
    assert r.status_code == 403, r.get_json()


def test_operator_changes_and_every_change_is_audited(app, tmp_path):
    olga = login(app, "olga")
    r = send(olga, "POST", "/api/transducers", BODY)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["history"][0]["user"] == "olga"
    r = send(
        olga,
        "POST",
        "/api/transducers/4508-B_77001/calibrations",
        {
            "sensitivity": 0.0101,
            "reference": "10m/s2@159.2Hz",
            "deviation_db": -0.09,
            "passed": True,
            "due": "2030-01-01",
        },
    )
    assert r.status_code == 201, r.get_json()
    entry = r.get_json()
    assert entry["calibrated_by"] == "olga" and entry["due"] == "2030-01-01"
    assert entry["history"][-1]["source"] == "check"
    actions = [e["action"] for e in AuditLog(tmp_path / "data").tail()]
    assert "transducer-add" in actions and "calibration-store" in actions
    store = next(
        e for e in AuditLog(tmp_path / "data").tail() if e["action"] == "calibration-store"
    )
    assert store["actor"] == "olga" and store["transducer"] == "4508-B_77001"


def test_bad_bodies_name_the_field(app):
    olga = login(app, "olga")
    r = send(olga, "POST", "/api/transducers", {**BODY, "sensitivity": -1})
    assert r.status_code == 400
    assert r.get_json() == {
        "error": "sensitivity must be a number above 0 (volts per unit)",
        "field": "sensitivity",
    }
    r = send(
        olga,
        "POST",
        "/api/transducers/import",
        {"csv": "type,serial,sensitivity,unit\n4189,1,0.05,Pa\n4189,2,x,Pa\n"},
    )
    assert r.status_code == 400 and r.get_json()["error"].startswith("row 3, column sensitivity")
    r = send(olga, "POST", "/api/transducers/nope_1/calibrations", {"sensitivity": 0.05})
    assert r.status_code == 404
    r = send(
        olga,
        "POST",
        "/api/calibration/check",
        {"address": "127.0.9.9", "channel": 1, "reference": "94dB@1kHz"},
    )
    assert r.status_code == 400 and r.get_json()["field"] == "address"


def test_detected_teds_transducers_join_the_database(app, bus):
    bus.publish(
        ev.TransducersDetected(module="127.0.5.1", transducers=[microphone(0).to_json(True), None])
    )
    vic = login(app, "vic")
    ids = [t["id"] for t in vic.get("/api/transducers").get_json()["transducers"]]
    assert ids == ["4189-A-021_3021100"]
    page = vic.get("/transducers").get_data(as_text=True)
    assert 'id="cal-form"' in page and 'data-needs="operator"' in page
