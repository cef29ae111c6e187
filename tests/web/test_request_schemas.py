"""One rule per request shape: HTTP, Socket.IO and the ``capture`` command refuse the same bad
input with the same message, in the user's terms, before anything reaches a module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from tests.support.emulator import FAST_EMULATOR
from tests.support.processes import run_webapp
from tests.support.wsgi import served_app
from webapp.emulator import EmulatedRig
from webapp.engine.rig import RigStore
from webapp.openapi.client import ModuleClient

HOST = "127.0.43.1"


def user_terms(message: str) -> None:
    """No list index (``[3]``), no pydantic location tuple, type name or link."""
    assert not re.search(r"\[\d+\]", message), message
    for raw in ("('", "pydantic", "https://", "Input should", "Value error"):
        assert raw not in message, message


@pytest.fixture(scope="module")
def emulated() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(1, host=HOST, port=0, **FAST_EMULATOR)
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture
def url(app) -> Iterator[str]:
    with served_app(app) as base:
        yield base


def emulator_requests(address: str) -> list[dict]:
    return requests.get(f"http://{address}/emulator/requests", timeout=5).json()


def by_socket(url: str, event: str, data: dict) -> dict:
    client = socketio.Client(reconnection=False)
    client.connect(url, transports=["polling"], wait_timeout=5)
    try:
        return client.call(event, data, timeout=5)
    finally:
        client.disconnect()


# (body, the capture command's arguments after the addresses, field, start of the message);
# "A" is the emulated module's address.
CASES = [
    (
        {"modules": ["A", f"{HOST}:70000"]},
        [],
        "modules[1]",
        f"module 2 ({HOST}:70000): port must be 1–65535",
    ),
    (
        {"modules": ["A", f"{HOST}:0"]},
        [],
        "modules[1]",
        f"module 2 ({HOST}:0): port must be 1–65535",
    ),
    ({"modules": ["A", "A"]}, [], "modules[1]", "module 2 (A): A is the same module as A"),
    ({"modules": ["A"], "name": "nul.txt"}, ["--name=nul.txt"], "name", "'nul.txt' is a reserved"),
    ({"modules": ["A"], "name": "-rf"}, ["--name=-rf"], "name", "the capture name must not start"),
]


def fill(value, address: str):
    """``value`` with every "A" made the emulated module's address."""
    if isinstance(value, list):
        return [fill(v, address) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, address) for k, v in value.items()}
    return address if value == "A" else value


def say(text: str, address: str) -> str:
    return re.sub(r"\bA\b", address, text)


@pytest.mark.parametrize(("body", "args", "field", "message"), CASES)
def test_http_socketio_and_cli_refuse_alike(
    url, orchestrator, emulated, tmp_path: Path, body, args, field, message
):
    address = emulated.addresses[0]
    body = fill(body, address)
    message = say(message, address)
    requests.delete(f"http://{address}/emulator/requests", timeout=5)

    r = requests.post(f"{url}/api/capture/start", json=body, timeout=5)
    assert r.status_code == 400, r.text
    http = r.json()
    assert http["field"] == field and http["error"].startswith(message), http
    user_terms(http["error"])

    for event in ("capture:start", "capture:arm"):
        ack = by_socket(url, event, body)
        assert ack == {"ok": False, "status": 400, "error": http["error"], "field": field}
    assert orchestrator.calls == []

    run = run_webapp("capture", *body["modules"], *args, "-o", str(tmp_path / "out"), timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"error: {http['error']}" in run.stdout.splitlines(), run.stdout
    assert emulator_requests(address) == []  # nothing reached the module
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_setting_is_named_as_the_option_that_sets_it_on_the_command_line(
    url, orchestrator, emulated, tmp_path: Path
):
    address = emulated.addresses[0]
    requests.delete(f"http://{address}/emulator/requests", timeout=5)
    for key, value, option in (
        ("duration_s", -1, "-t/--time"),
        ("ptp_domain", 3, "-d/--ptp-domain"),
        ("ptp_timeout_s", 0, "--ptp-timeout"),
    ):
        r = requests.post(
            f"{url}/api/capture/start", json={"modules": [address], key: value}, timeout=5
        )
        assert r.status_code == 400 and r.json()["field"] == key, r.text
        http = r.json()["error"]
        assert http.startswith(f"{key} must be "), http
        assert by_socket(url, "capture:start", {"modules": [address], key: value})["error"] == http
        flag = f"{option.split('/')[-1]}={value}"
        run = run_webapp("capture", address, flag, "-o", str(tmp_path), timeout=60)
        assert run.returncode == 2, run.stdout + run.stderr
        assert f"error: {option} {http[len(key) + 1 :]}" in run.stdout.splitlines(), run.stdout
    assert emulator_requests(address) == []
    assert orchestrator.calls == []


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"channel": 4, "range": 10}, "range", "channel 4: range must be text"),
        ({"channel": 4, "enabled": "yes"}, "enabled", "channel 4: enabled must be true or false"),
        (
            {"channel": 2, "transducer": {"sensitivity": -1}},
            "transducer.sensitivity",
            "channel 2: transducer sensitivity must be more than 0",
        ),
        ({"channel": 65}, "channel", "channel 65: channel must be 64 or less"),
        ({"channel": 3, "gain": 2}, "gain", "channel 3: gain is not a known setting"),
    ],
)
def test_channel_settings_are_refused_alike_in_user_terms(url, orchestrator, row, field, message):
    address = "127.0.43.5"
    body = {"modules": [address], "setup": {"channels": {address: [{"channel": 1}, row]}}}
    r = requests.post(f"{url}/api/capture/start", json=body, timeout=5)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": f"{address} {message}",
        "field": f"setup.channels.{address}[1].{field}",
    }
    user_terms(r.json()["error"])
    ack = by_socket(url, "capture:arm", body)
    assert ack["error"] == r.json()["error"] and ack["field"] == r.json()["field"]
    # The Setup page's PUT takes the same rows by the same rule.
    r = requests.put(f"{url}/api/setup", json=body["setup"], timeout=5)
    assert r.status_code == 400 and r.json()["error"] == f"{address} {message}", r.text
    assert orchestrator.calls == []


@pytest.mark.parametrize(
    ("first", "second", "words"),
    [
        (HOST, f"{HOST}:80", f"{HOST}:80 is the same module as {HOST}, already in the rig"),
        ("Rig-A.example", "rig-a.example:80", "is the same module as Rig-A.example"),
        ("[::1]", "::1", "::1 is the same module as [::1]"),
        ("[::1]:8080", "[::1]:08080", "is the same module as [::1]:8080"),
    ],
)
def test_the_rig_refuses_a_second_address_of_one_module(url, first, second, words):
    r = requests.post(f"{url}/api/rig/modules", json={"address": first}, timeout=5)
    assert r.status_code == 201, r.text
    r = requests.post(f"{url}/api/rig/modules", json={"address": second}, timeout=5)
    assert r.status_code == 400 and r.json()["field"] == "address", r.text
    assert words in r.json()["error"], r.text
    rig = requests.get(f"{url}/api/rig", timeout=5).json()
    assert [m["address"] for m in rig["modules"]] == [first]


@pytest.mark.parametrize("port", ["0", "70000", "http", "-1"])
def test_the_rig_refuses_a_bad_port_when_it_is_added(url, port):
    r = requests.post(f"{url}/api/rig/modules", json={"address": f"{HOST}:{port}"}, timeout=5)
    assert r.status_code == 400 and r.json()["field"] == "address", r.text
    error = r.json()["error"]
    assert error.startswith(f"{HOST}:{port}: ") and ("port" in error or "address" in error), error
    user_terms(error)
    assert requests.get(f"{url}/api/rig", timeout=5).json()["modules"] == []


@pytest.fixture
def same_serial() -> Iterator[list[EmulatedRig]]:
    """Two emulated modules on two addresses that report one serial number, as one module
    reached through two addresses would."""
    rigs = [
        EmulatedRig.start(1, host=f"127.0.43.{n}", port=0, serial=431001, **FAST_EMULATOR)
        for n in (2, 3)
    ]
    try:
        yield rigs
    finally:
        for rig in rigs:
            rig.stop()


def test_the_rig_marks_the_second_entry_reporting_one_serial(same_serial, tmp_path: Path):
    first, second = (rig.addresses[0] for rig in same_serial)
    assert ModuleClient(first).info().serial == ModuleClient(second).info().serial == 431001

    rig = RigStore(tmp_path / "rig.json", probe=lambda a: ModuleClient(a, timeout=5).info())
    rig.add(first, probe=False)
    rig.add(second, probe=False)
    rig.probe(second)
    rig.probe(first)
    modules = {m["address"]: m for m in rig.view()["modules"]}
    assert modules[first].get("same_as") is None and modules[first]["error"] == ""
    assert modules[second]["same_as"] == first
    assert f"{second} is the same module as {first}" in modules[second]["error"]


def test_a_capture_on_two_addresses_of_one_serial_is_refused_naming_both(
    same_serial, tmp_path: Path
):
    first, second = (rig.addresses[0] for rig in same_serial)
    for r in same_serial:
        requests.delete(f"http://{r.addresses[0]}/emulator/requests", timeout=5)
    run = run_webapp("capture", first, second, "-t", "1", "-o", str(tmp_path / "c"), timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    expected = (
        f"error: module 2 ({second}) is the same module as module 1 ({first}): "
        "both report Type 3050 serial 431001"
    )
    assert expected in run.stdout.splitlines(), run.stdout
    for r in same_serial:  # only asked who they are; nothing set up
        log = emulator_requests(r.addresses[0])
        assert log and {(e["method"], e["path"]) for e in log} == {
            ("GET", "/rest/rec/module/info")
        }, log
