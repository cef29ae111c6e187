"""The fault panel against real emulated modules (``serve --emulate``'s backend): every kind it
offers reaches the module's own fault endpoint as the fault the emulator knows, with its
channel and duration; clearing clears; modules outside the emulator are refused."""

from __future__ import annotations

import time

import pytest
import requests
from web_fakes import FakeOrchestrator

from webapp.capture.events import EventBus
from webapp.engine.emulated import EmulatedModules
from webapp.openapi.client import ModuleClient
from webapp.web.app import create_app


@pytest.fixture(scope="module")
def emulated():
    modules = EmulatedModules.start(2, module_type="3050,3160", ptp_lock_s=0.2)
    try:
        yield modules
    finally:
        modules.stop()


@pytest.fixture
def client(tmp_path, emulated):
    bus = EventBus()
    orchestrator = FakeOrchestrator(bus)
    orchestrator.probe = lambda address: ModuleClient(address).info()  # the modules' own info
    app = create_app(tmp_path / "data", orchestrator=orchestrator, bus=bus, emulator=emulated)
    app.config["TESTING"] = True
    dash = app.extensions["lanxi"]
    for address in emulated.addresses:
        dash.rig.add(address, emulated=True, probe=False)
        dash.rig.probe(address)
    yield app.test_client()
    for address in emulated.addresses:
        requests.delete(f"http://{address}/emulator/faults", timeout=5)


def emulator_faults(address: str) -> dict:
    return requests.get(f"http://{address}/emulator/faults", timeout=5).json()


def test_rig_is_what_the_emulator_started(emulated):
    assert len(emulated.addresses) == 2
    types = [
        requests.get(f"http://{a}/rest/rec/module/info", timeout=5).json()["module"]["type"]
        for a in emulated.addresses
    ]
    assert [t["number"] for t in types] == ["3050", "3160"]


def test_every_panel_fault_reaches_the_emulator(client, emulated):
    first, second = emulated.addresses
    state = client.get("/api/emulator/faults").get_json()
    assert state["available"] and state["modules"] == [first, second]
    cases = [
        (first, "cable-fault", 2, "cable-fault:2"),
        (first, "overload", 1, "overload:1"),
        (first, "cm-overload", 3, "cmol:3"),
        (second, "ptp-loss", None, "ptp-no-lock"),
    ]
    for module, kind, channel, expected in cases:
        body = {"module": module, "fault": kind}
        if channel is not None:
            body["channel"] = channel
        r = client.post("/api/emulator/faults", json=body)
        assert r.status_code == 201, r.get_json()
        assert expected in emulator_faults(module)["active"]
    r = client.post("/api/emulator/faults", json={"module": second, "fault": "stream-drop"})
    assert r.status_code == 201
    log = emulator_faults(second)["log"]
    assert any(e["fault"] == "stream-drop" for e in log)  # one-shot: logged, not kept active
    panel = client.get("/api/emulator/faults").get_json()["injected"]
    assert [(e["fault"], e["active"]) for e in panel][-1] == ("stream-drop", False)
    assert all(e["active"] for e in panel[:-1])

    r = client.delete("/api/emulator/faults", json={"module": first})
    assert r.status_code == 200
    assert emulator_faults(first)["active"] == []
    assert emulator_faults(second)["active"] == ["ptp-no-lock"]  # only the module named
    assert not any(e["active"] for e in r.get_json()["injected"] if e["module"] == first)


def test_timed_fault_ends_by_itself(client, emulated):
    module = emulated.addresses[0]
    r = client.post(
        "/api/emulator/faults",
        json={"module": module, "fault": "overload", "channel": 4, "duration_s": 0.3},
    )
    assert r.status_code == 201
    assert "overload:4" in emulator_faults(module)["active"]
    deadline = time.monotonic() + 5
    while "overload:4" in emulator_faults(module)["active"]:
        assert time.monotonic() < deadline, "the emulator kept the timed fault"
        time.sleep(0.05)
    entry = client.get("/api/emulator/faults").get_json()["injected"][-1]
    assert entry["until"] - entry["t"] == pytest.approx(0.3)
    assert entry["active"] is False


def test_bad_fault_requests_name_the_field(client, emulated):
    module = emulated.addresses[0]
    for body, field in (
        ({"module": "127.0.3.77:80", "fault": "overload", "channel": 1}, "module"),
        ({"module": module, "fault": "meltdown"}, "fault"),
        ({"module": module, "fault": "overload"}, "channel"),
        ({"module": module, "fault": "overload", "channel": 7}, "channel"),
        ({"module": module, "fault": "overload", "channel": 1, "duration_s": -1}, "duration_s"),
    ):
        r = client.post("/api/emulator/faults", json=body)
        assert r.status_code == 400 and r.get_json()["field"] == field, (body, r.get_json())
    assert emulator_faults(module)["active"] == []
