"""The JSON HTTP API: rig, setup, capture control, history, downloads, field-named errors."""

from __future__ import annotations

import json

import pytest

from tests.support.captures import make_capture
from tests.support.waiting import wait_until
from webapp.capture import events as ev


def add_modules(client, *addresses: str) -> None:
    for address in addresses:
        r = client.post("/api/rig/modules", json={"address": address})
        assert r.status_code == 201, r.get_json()


def test_rig_add_probe_master_remove(client, dash):
    add_modules(client, "127.0.3.1", "127.0.3.2", "127.0.3.99")
    wait_until(lambda: all(m.get("probing") is False for m in dash.rig.view()["modules"]))
    rig = client.get("/api/rig").get_json()
    by_address = {m["address"]: m for m in rig["modules"]}
    assert by_address["127.0.3.1"]["role"] == "master"
    assert by_address["127.0.3.1"]["info"]["type"] == "3050"
    assert by_address["127.0.3.1"]["info"]["input_channels"] == 6
    assert by_address["127.0.3.1"]["info"]["ptp"] is True
    assert by_address["127.0.3.99"]["reachable"] is False
    assert "connection refused" in by_address["127.0.3.99"]["error"]

    r = client.put("/api/rig", json={"master": "127.0.3.2", "ptp_domain": 7})
    assert r.status_code == 200
    assert dash.rig.ordered_addresses()[0] == "127.0.3.2"
    assert client.delete("/api/rig/modules/127.0.3.99").status_code == 200
    assert [m["address"] for m in client.get("/api/rig").get_json()["modules"]] == [
        "127.0.3.1",
        "127.0.3.2",
    ]
    # The rig survives a restart of the dashboard.
    saved = json.loads((dash.data_dir / "rig.json").read_text())
    assert saved == {"modules": ["127.0.3.1", "127.0.3.2"], "master": "127.0.3.2", "ptp_domain": 7}


def test_return_to_idle_of_a_rig_module(client, dash, orchestrator):
    add_modules(client, "127.0.3.1", "127.0.3.99")
    r = client.post("/api/rig/modules/127.0.3.1/return-to-idle")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["sent"] == ["finish", "close"]
    assert ("return_to_idle", "127.0.3.1") in orchestrator.calls
    # a module the module's own answer names, with the request
    r = client.post("/api/rig/modules/127.0.3.99/return-to-idle")
    assert r.status_code == 502 and "127.0.3.99" in r.get_json()["error"]
    # only modules of the rig: the API is no way to poke at any address
    r = client.post("/api/rig/modules/127.0.3.7/return-to-idle")
    assert r.status_code == 404 and r.get_json()["field"] == "address"
    assert ("return_to_idle", "127.0.3.7") not in orchestrator.calls
    orchestrator.busy = True
    r = client.post("/api/rig/modules/127.0.3.1/return-to-idle")
    assert r.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": ""}, "address"),
        ({"address": "http://x/y"}, "address"),
        ({"address": "a b"}, "address"),
        ({}, "address"),
    ],
)
def test_rig_rejects_bad_addresses(client, body, field):
    r = client.post("/api/rig/modules", json=body)
    assert r.status_code == 400
    assert r.get_json()["field"] == field


def test_rig_rejects_bad_domain_and_master(client):
    add_modules(client, "127.0.3.1")
    r = client.put("/api/rig", json={"ptp_domain": 200})
    assert r.status_code == 400 and r.get_json()["field"] == "ptp_domain"
    r = client.put("/api/rig", json={"master": "127.0.3.50"})
    assert r.status_code == 400 and r.get_json()["field"] == "master"
    assert client.post("/api/rig/modules", json={"address": "127.0.3.1"}).status_code == 400


def test_start_builds_settings_from_rig_setup_and_overrides(client, dash, orchestrator):
    add_modules(client, "127.0.3.1", "127.0.3.2")
    wait_until(lambda: all(m.get("probing") is False for m in dash.rig.view()["modules"]))
    setup = client.get("/api/setup").get_json()["setup"]
    assert len(setup["channels"]["127.0.3.1"]) == 6
    rows = setup["channels"]["127.0.3.2"]
    rows[1]["enabled"] = False
    rows[2]["transducer"] = {"sensitivity": 0.05, "unit": "Pa", "serial": 1234}
    rows[3]["ccld"] = True
    r = client.put("/api/setup", json={"bandwidth": "25.6 kHz", "channels": {"127.0.3.2": rows}})
    assert r.status_code == 200, r.get_json()

    r = client.post(
        "/api/capture/start",
        json={"name": "Run 1", "duration_s": 5, "setup": {"multi_socket": True}},
    )
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["capture_id"].endswith("Run 1")
    ((what, settings),) = orchestrator.calls
    assert what == "start"
    assert settings.modules == ["127.0.3.1", "127.0.3.2"]
    assert settings.name == "Run 1" and settings.duration_s == 5
    assert settings.bandwidth == "25.6 kHz" and settings.multi_socket is True
    assert settings.ptp_domain == 42
    second = {c.channel: c for c in settings.channels["127.0.3.2"]}
    assert second[2].enabled is False
    assert second[3].transducer == {
        "sensitivity": 0.05,
        "unit": "Pa",
        "serialNumber": 1234,
        "type": None,
    }
    assert second[4].ccld is True and second[1].ccld is None

    # While busy, a second start is refused and nothing is called.
    r = client.post("/api/capture/start", json={"name": "Run 2"})
    assert r.status_code == 409
    assert len(orchestrator.calls) == 1
    assert client.post("/api/capture/stop").status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "duration_s": -1}, "duration_s"),
        ({"name": "x", "duration_s": "5"}, "duration_s"),
        ({"name": "../etc"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "ptp_domain": 3}, "ptp_domain"),
        ({"name": "x", "ptp_domain": True}, "ptp_domain"),
        ({"name": "x", "modules": "127.0.3.1"}, "modules"),
        ({"name": "x", "modules": ["127.0.3.1", "127.0.3.1"]}, "modules[1]"),
        ({"name": "x", "setup": {"bandwidth": "51 kHz"}}, "setup.bandwidth"),
        (
            {"name": "x", "setup": {"channels": {"127.0.3.1": [{"channel": 0}]}}},
            "setup.channels.127.0.3.1[0].channel",
        ),
        ({"name": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_start_requests_name_the_field_and_start_nothing(client, orchestrator, body, field):
    add_modules(client, "127.0.3.1", "127.0.3.2")
    r = client.post("/api/capture/start", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["field"] == field
    assert r.get_json()["error"]
    assert orchestrator.calls == []


def test_start_without_modules_is_refused(client, orchestrator):
    r = client.post("/api/capture/start", json={"name": "x"})
    assert r.status_code == 400 and r.get_json()["field"] == "modules"
    r = client.post("/api/capture/start", data="not json", content_type="application/json")
    assert r.status_code == 400
    assert orchestrator.calls == []


def test_arm_then_start_then_disarm(client, orchestrator):
    add_modules(client, "127.0.3.1", "127.0.3.2")
    assert client.post("/api/capture/arm", json={"name": "a"}).status_code == 202
    assert client.post("/api/capture/arm", json={"name": "a"}).status_code == 409
    assert client.post("/api/capture/start", json={"name": "b", "duration_s": 1}).status_code == 202
    assert client.post("/api/capture/stop").status_code == 202
    assert client.post("/api/capture/disarm").status_code == 202
    assert [c[0] for c in orchestrator.calls] == ["arm", "start", "stop", "disarm"]


def test_state_snapshot_folds_events(client, bus):
    bus.publish(ev.PhaseChanged(phase="ptp-lock", previous="ptp-sync"))
    bus.publish(
        ev.PtpProgress(
            module="127.0.3.1", status="Locking", locked=False, elapsed_s=2.0, timeout_s=600
        )
    )
    bus.publish(ev.ChannelFault(module="127.0.3.1", channel=2, anol="none", cmol="none", cf="curr"))
    bus.publish(ev.Error(message="boom", module="127.0.3.2", request="PUT /rest/rec/open"))
    state = client.get("/api/state").get_json()
    assert state["phase"]["phase"] == "ptp-lock"
    assert [t["phase"] for t in state["phase"]["timeline"]] == ["ptp-lock"]
    assert state["ptp"]["127.0.3.1"]["status"] == "Locking"
    assert state["channel-fault"]["127.0.3.1"]["2"]["cf"] == "curr"
    assert state["log"][-1]["message"] == "boom"
    assert state["log"][-1]["module"] == "127.0.3.2"
    assert state["control"] == {"armed": False, "busy": False}


def test_named_setups_save_load_delete(client):
    add_modules(client, "127.0.3.1")
    assert client.put("/api/setup", json={"bandwidth": "12.8 kHz"}).status_code == 200
    assert client.post("/api/setups", json={"name": "quiet room"}).status_code == 201
    assert client.put("/api/setup", json={"bandwidth": "51.2 kHz"}).status_code == 200
    assert client.get("/api/setups").get_json() == {"setups": ["quiet room"]}
    r = client.post("/api/setups/quiet room/load")
    assert r.status_code == 200 and r.get_json()["setup"]["bandwidth"] == "12.8 kHz"
    assert client.post("/api/setups", json={"name": "../x"}).get_json()["field"] == "name"
    assert client.post("/api/setups/nothing/load").status_code == 400
    assert client.delete("/api/setups/quiet room").status_code == 200
    assert client.get("/api/setups").get_json() == {"setups": []}


def test_setup_names_in_other_languages_and_windows_reserved_names(client):
    add_modules(client, "127.0.3.1")
    r = client.post("/api/setups", json={"name": "Me\u0301sure 測定"})
    assert r.status_code == 201
    assert client.get("/api/setups").get_json() == {"setups": ["Mésure 測定"]}
    assert client.post("/api/setups/Mésure 測定/load").status_code == 200
    for bad in ("CON", "nul.txt", "name.", "-rf", "a\\b"):
        r = client.post("/api/setups", json={"name": bad})
        assert r.status_code == 400 and r.get_json()["field"] == "name", bad
    assert client.get("/api/setups").get_json() == {"setups": ["Mésure 測定"]}


def test_setup_rejects_bad_values(client):
    bad = {"channels": {"127.0.3.1": [{"channel": 1, "transducer": {"sensitivity": 0}}]}}
    r = client.put("/api/setup", json=bad)
    assert r.status_code == 400
    assert r.get_json()["field"] == "channels.127.0.3.1[0].transducer.sensitivity"
    r = client.put("/api/setup", json={"bandwidth": 3})
    assert r.status_code == 400 and r.get_json()["field"] == "bandwidth"


def test_history_lists_and_downloads(client, dash):
    make_capture(dash.data_dir, address="127.0.3.1")
    captures = client.get("/api/captures").get_json()["captures"]
    assert [c["id"] for c in captures] == ["20260101-120000-Run"]
    assert captures[0]["outcome"] == "completed" and captures[0]["bytes"] == 3
    assert [f["file"] for f in captures[0]["files"]] == ["capture.json", "Run.1.stream"]
    detail = client.get("/api/captures/20260101-120000-Run").get_json()
    assert detail["capture"]["name"] == "Run"
    r = client.get("/api/captures/20260101-120000-Run/files/Run.1.stream")
    assert r.status_code == 200 and r.data == b"\x01\x02\x03"
    assert "attachment" in r.headers["Content-Disposition"]
    assert client.get("/api/captures/nope").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/captures/20260101-120000-Run/files/..%2F..%2Frig.json",
        "/api/captures/20260101-120000-Run/files/%2Fetc%2Fpasswd",
        "/api/captures/..%2Fcaptures/files/capture.json",
        "/api/captures/20260101-120000-Run/files/../../rig.json",
        "/api/captures/20260101-120000-Run/files/..%5Crig.json",
        "/api/captures/20260101-120000-Run/files/.secret",
        "/api/captures/../files/rig.json",
    ],
)
def test_downloads_reject_traversal(client, dash, url):
    folder = make_capture(dash.data_dir, address="127.0.3.1")
    (folder / ".secret").write_text("x")
    (dash.data_dir / "rig.json").write_text("{}")
    r = client.get(url)
    assert r.status_code == 404, url


def test_pages_render_with_csrf_meta(client):
    for path in ("/", "/capture", "/rig", "/setup", "/history"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert b'<meta name="csrf-token"' in r.data
        assert b"http://" not in r.data and b"https://" not in r.data


def test_fault_panel_needs_emulated_modules(client):
    add_modules(client, "127.0.3.1")
    r = client.post(
        "/api/emulator/faults", json={"module": "127.0.3.1", "fault": "cable-fault", "channel": 1}
    )
    assert r.status_code == 409


def test_monitor_then_record_by_a_trigger_plan(client, orchestrator):
    r = client.post("/api/capture/record", json={"name": "hit"})
    assert r.status_code == 409 and "not monitoring" in r.get_json()["error"]
    r = client.post("/api/capture/monitor", json={"modules": ["127.0.3.1", "127.0.3.2"]})
    assert r.status_code == 202 and r.get_json()["measurement"]
    body = {
        "name": "hit",
        "mode": "trigger",
        "trigger": {"module": 1, "channel": 2, "slope": "rising", "level": 30},
        "pre_trigger_s": 0.5,
        "duration_s": 1,
        "events": 3,
    }
    assert client.post("/api/capture/record", json=body).status_code == 202
    assert client.post("/api/capture/trigger", json={}).status_code == 202
    assert client.post("/api/capture/stop-recording", json={}).status_code == 202
    kinds = [c[0] for c in orchestrator.calls]
    assert kinds == ["monitor", "record", "trigger", "stop-recording"]
    plan = orchestrator.calls[1][1]
    assert plan.trigger.level == 30 and plan.pre_trigger_s == 0.5 and plan.events == 3


@pytest.mark.parametrize(
    "body,field,words",
    [
        ({"mode": "trigger", "duration_s": 1}, None, None),  # the rig's check names the trigger
        ({"mode": "trigger", "trigger": "1:2", "duration_s": 1}, "trigger", "MODULE:CHANNEL>LEVEL"),
        ({"mode": "trigger", "trigger": "1:2>3"}, "duration_s", "length after the trigger"),
        ({"mode": "segments", "segment_s": 0.01}, "segment_s", "at least"),
        ({"mode": "manual", "pre_trigger_s": 90}, "pre_trigger_s", "between 0 and 60"),
        ({"mode": "sometimes"}, "mode", "manual, trigger or segments"),
    ],
)
def test_bad_record_plans_name_the_field(client, orchestrator, body, field, words):
    client.post("/api/capture/monitor", json={"modules": ["127.0.3.1", "127.0.3.2"]})
    r = client.post("/api/capture/record", json=body)
    if field is None:  # accepted here; the orchestrator refuses it against the rig
        assert r.status_code == 202
        return
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["field"] == field and words in r.get_json()["error"]
    assert [c[0] for c in orchestrator.calls] == ["monitor"]
