"""The generator panel's server side and the live FRF's choice, with access control on: the
operator starts and stops outputs over HTTP and Socket.IO; a viewer is refused on both (403,
nothing reaches the orchestrator) but sees the outputs' state, also as a late joiner; bad
settings are refused by the one generator model, naming the module, output and input; a
module's refusal comes back as 502 with its words; ``select-frf`` is checked and reaches the
orchestrator as the FRF to compute, and only while some viewer shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from auth_support import cheap_hashes, login, secure_app, send  # noqa: F401 - autouse fixture

from tests.support.live_packets import unpacked
from tests.support.waiting import wait_until
from webapp.openapi.client import ModuleError
from webapp.web.access.settings import EXTENSION

MODULE = "127.0.5.1"
RANDOM = {
    "number": 1,
    "gain": 0.05,
    "inputs": [
        {"number": 1, "signalType": "random", "center_frequency": 2000.0, "bandwidth": 4000.0,
         "gain": 0.999},
        {"number": 2, "signalType": "none"},
    ],
}  # fmt: skip


@pytest.fixture
def app(tmp_path: Path, bus, orchestrator):
    app = secure_app(tmp_path / "data", bus, orchestrator)
    admin = login(app, "ada")
    assert send(admin, "POST", "/api/rig/modules", {"address": MODULE}).status_code == 201
    send(admin, "POST", "/api/auth/control/release")
    yield app
    app.extensions[EXTENSION].stop()


def sio(app: Any, http: Any) -> Any:
    client = app.extensions["lanxi"].socketio.test_client(app, flask_test_client=http)
    assert client.is_connected()
    return client


def test_operator_starts_and_stops_viewer_is_refused_and_sees_the_state(app, orchestrator):
    vic, olga = login(app, "vic"), login(app, "olga")
    body = {"generators": {MODULE: [RANDOM]}}
    r = send(vic, "POST", "/api/generator/start", body)
    assert r.status_code == 403, r.get_json()
    assert send(vic, "POST", "/api/generator/stop", {}).status_code == 403
    vic_socket = sio(app, vic)
    ack = vic_socket.emit("generator:start", body, callback=True)
    assert ack["ok"] is False and ack["status"] == 403, ack
    ack = vic_socket.emit("generator:stop", {}, callback=True)
    assert ack["ok"] is False and ack["status"] == 403, ack
    assert not [c for c in orchestrator.calls if c[0].endswith("_outputs")]

    r = send(olga, "POST", "/api/generator/start", body)
    assert r.status_code == 200, r.get_json()
    assert orchestrator.calls[-1] == ("start_outputs", {MODULE: [RANDOM]})
    running = r.get_json()["generator"][MODULE]["1"]
    assert running["running"] and running["how"] == "hand" and running["output"] == RANDOM
    # Every viewer sees it: pushed to the connected one, in the snapshot of a late joiner.
    wait_until(lambda: any(m["name"] == "generator" for m in unpacked(vic_socket.get_received())))
    late = sio(app, login(app, "vic"))
    [state] = [m["args"][0] for m in unpacked(late.get_received()) if m["name"] == "state"]
    assert state["generator"][MODULE]["1"]["running"] is True
    assert vic.get("/api/generator").get_json()["generator"][MODULE]["1"]["running"] is True

    ack = sio(app, olga).emit("generator:stop", {"outputs": {MODULE: [1]}}, callback=True)
    assert ack["ok"] is True, ack
    assert orchestrator.calls[-1] == ("stop_outputs", {MODULE: [1]})
    stopped = vic.get("/api/generator").get_json()["generator"][MODULE]["1"]
    assert stopped["running"] is False and stopped["output"] == RANDOM  # what it ran last


@pytest.mark.parametrize(
    ("output", "field", "message"),
    [
        ({"number": 1, "inputs": [{"number": 1, "signalType": "sine"}]},
         f"generators.{MODULE}[0].inputs[0].frequency",
         f"{MODULE} output 1, input 1: a sine waveform needs frequency"),
        ({"number": 2, "inputs": [{"number": 1, "signalType": "random", "bandwidth": 0}]},
         f"generators.{MODULE}[0].inputs[0].bandwidth",
         f"{MODULE} output 2, input 1: bandwidth must be more than 0"),
        ({"number": 1, "gain": 1.5, "inputs": [{"number": 1, "signalType": "dc", "gain": 0.1}]},
         f"generators.{MODULE}[0].gain", f"{MODULE} output 1: gain must be 1 or less"),
        ({"number": 1, "inputs": [{"number": 1, "signalType": "linsweep", "start_frequency": 10,
          "stop_frequency": 10, "hz_second": 5}]},
         f"generators.{MODULE}[0].inputs[0].stop_frequency",
         f"{MODULE} output 1, input 1: a sweep's start and stop frequency must differ"),
        ({"number": 1, "inputs": [{"number": 1, "signalType": "square", "frequency": 10,
          "dutycycle": 120}]},
         f"generators.{MODULE}[0].inputs[0].dutycycle",
         f"{MODULE} output 1, input 1: dutycycle must be 100 or less"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_before_anything_starts(app, orchestrator, output, field, message):
    olga = login(app, "olga")
    r = send(olga, "POST", "/api/generator/start", {"generators": {MODULE: [output]}})
    assert r.status_code == 400
    assert r.get_json() == {"error": message, "field": field}
    ack = sio(app, olga).emit("generator:start", {"generators": {MODULE: [output]}}, callback=True)
    assert ack == {"ok": False, "status": 400, "error": message, "field": field}
    assert not [c for c in orchestrator.calls if c[0] == "start_outputs"]


def test_unknown_module_and_module_refusal(app, orchestrator):
    olga = login(app, "olga")
    r = send(olga, "POST", "/api/generator/start", {"generators": {"127.0.5.9": [RANDOM]}})
    assert r.status_code == 400
    assert r.get_json()["error"] == "127.0.5.9 is not in the rig"
    orchestrator.refuse_outputs = ModuleError(
        f"1 ({MODULE}) output 1", "PUT /rest/rec/generator/output", 400, "frequency too high"
    )
    r = send(olga, "POST", "/api/generator/start", {"generators": {MODULE: [RANDOM]}})
    assert r.status_code == 502
    assert r.get_json()["error"] == (
        f"module 1 ({MODULE}) output 1: PUT /rest/rec/generator/output failed: "
        "HTTP 400: frequency too high"
    )


def test_select_frf_is_checked_and_computed_only_while_shown(app, orchestrator):
    vic = sio(app, login(app, "vic"))  # viewing an FRF is a viewer's choice, no control
    same = {"reference": {"module": MODULE, "channel": 1},
            "responses": [{"module": MODULE, "channel": 1}]}  # fmt: skip
    ack = vic.emit("select-frf", same, callback=True)
    assert ack["ok"] is False and ack["field"] == "responses[0]", ack
    assert "cannot be its own response" in ack["error"]
    good = {"reference": {"module": MODULE, "channel": 1},
            "responses": [{"module": MODULE, "channel": 2}], "lines": 3200}  # fmt: skip
    ack = vic.emit("select-frf", good, callback=True)
    assert ack == {"ok": True, "key": f"{MODULE}/1>{MODULE}/2@3200"}
    key = ((MODULE, 1), ((MODULE, 2),), 3200)
    wait_until(lambda: orchestrator.watched_frfs == {key})
    vic.emit("select-frf", {"reference": None}, callback=True)
    wait_until(lambda: orchestrator.watched_frfs == frozenset())
    vic.emit("select-frf", good, callback=True)
    wait_until(lambda: orchestrator.watched_frfs == {key})
    vic.disconnect()
    wait_until(lambda: orchestrator.watched_frfs == frozenset())


def test_a_streamed_waveform_file_on_the_server_is_refused_from_the_dashboard(
    app, orchestrator, tmp_path: Path
):
    """A browser must not make the server open a path of its choosing: a stream input with a
    ``file`` is refused (400, naming the output) by hand and with the recording, and nothing
    reaches the orchestrator."""
    olga = login(app, "olga")
    send(olga, "POST", "/api/auth/control/take")
    streamed = {
        "number": 1,
        "inputs": [{"number": 1, "signalType": "stream", "file": "/etc/passwd"}],
    }
    for path in ("/api/generator/start", "/api/capture/start"):
        r = send(olga, "POST", path, {"generators": {MODULE: [streamed]}})
        assert r.status_code == 400, (path, r.get_json())
        assert "capture command" in r.get_json()["error"], r.get_json()
        assert r.get_json()["field"] == f"generators.{MODULE}[0]"
    assert not [c for c in orchestrator.calls if c[0] in ("start_outputs", "start")]
