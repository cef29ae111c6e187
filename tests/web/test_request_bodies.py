"""Bodies refused before anything starts, over real HTTP and a real Socket.IO connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio
from auth_support import cheap_hashes, secure_app  # noqa: F401  (fixture)

from tests.support.wsgi import served_app
from webapp.web import bodies
from webapp.web.access.settings import EXTENSION


def _serve(app) -> Iterator[str]:
    with served_app(app) as base:
        yield base


@pytest.fixture
def url(app) -> Iterator[str]:
    yield from _serve(app)


@pytest.fixture
def rig(url) -> None:
    r = requests.post(f"{url}/api/rig/modules", json={"address": "127.0.3.1"}, timeout=5)
    assert r.status_code == 201


def strict_json(text: str):
    def refuse(name: str):
        raise AssertionError(f"{name} in a JSON answer")

    return json.loads(text, parse_constant=refuse)


def nested(depth: int) -> str:
    return '{"setup": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": {"name": "Run"}}, 415),  # a form: today's until-stopped capture of the rig
        ({"data": "name=Run", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"json": ["Run"]}, 400),
        ({"json": "Run"}, 400),
        ({"json": 5}, 400),
        ({"data": '{"name": "Run",', "headers": {"Content-Type": "application/json"}}, 400),
    ],
)
def test_start_refuses_what_is_not_a_json_object(url, rig, orchestrator, kwargs, status):
    r = requests.post(f"{url}/api/capture/start", timeout=5, **kwargs)
    assert r.status_code == status, r.text
    assert "JSON" in r.json()["error"]
    assert orchestrator.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"duration_s": 1e999}', "duration_s"),
        ('{"duration_s": NaN}', None),
        ('{"ptp_timeout_s": -Infinity}', None),
        ('{"setup": {"channels": {"127.0.3.1": [{"channel": 1, "x": 1e999}]}}}', "setup"),
    ],
)
def test_non_finite_numbers_are_refused_and_the_state_stays_json(
    url, rig, orchestrator, body, field
):
    headers = {"Content-Type": "application/json"}
    r = requests.post(f"{url}/api/capture/start", data=body, headers=headers, timeout=5)
    assert r.status_code == 400 and "finite" in r.json()["error"], r.text
    if field:
        assert r.json()["field"].startswith(field)
    assert orchestrator.calls == []
    r = requests.put(
        f"{url}/api/setup", data=body.replace("duration_s", "bandwidth"), headers=headers, timeout=5
    )
    assert r.status_code == 400
    strict_json(requests.get(f"{url}/api/state", timeout=5).text)


def test_deep_nesting_is_a_json_400(url, rig, orchestrator):
    headers = {"Content-Type": "application/json"}
    for depth in (bodies.MAX_DEPTH + 2, 50_000):
        r = requests.post(
            f"{url}/api/capture/start", data=nested(depth), headers=headers, timeout=5
        )
        assert r.status_code == 400 and "nested" in r.json()["error"], r.text[:200]
    assert orchestrator.calls == []


def test_a_body_over_the_limit_is_413_without_an_echo(url, rig, orchestrator):
    big = json.dumps({"name": "x" * (bodies.MAX_BODY + 10)})
    r = requests.post(
        f"{url}/api/capture/start",
        data=big,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 413 and len(r.content) < 1000
    assert orchestrator.calls == []


def test_login_bodies_over_the_limit_or_too_deep(tmp_path: Path, bus, orchestrator):
    app = secure_app(tmp_path / "data", bus, orchestrator)
    try:
        for url in _serve(app):
            s = requests.Session()
            token = s.get(f"{url}/api/auth/session", timeout=5).json()["csrf_token"]
            headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
            big = json.dumps({"username": "x" * (bodies.MAX_BODY + 10), "password": "p"})
            r = s.post(f"{url}/login", data=big, headers=headers, timeout=10)
            assert r.status_code == 413 and len(r.content) < 1000
            r = s.post(f"{url}/login", data=nested(50_000), headers=headers, timeout=5)
            assert 400 <= r.status_code < 500 and len(r.content) < 1000
            assert "<html" not in r.text.lower()
    finally:
        app.extensions[EXTENSION].stop()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (["Run"], "JSON object"),
        ("Run", "JSON object"),
        ({"duration_s": float("inf")}, "finite"),
        ({"duration_s": float("nan")}, "finite"),
        (json.loads(nested(bodies.MAX_DEPTH + 2)), "nested"),
    ],
)
def test_socketio_control_events_get_the_same_checks(url, rig, orchestrator, data, words):
    client = socketio.Client(reconnection=False)
    client.connect(url, transports=["polling"], wait_timeout=5)
    try:
        ack = client.call("capture:start", data, timeout=5)
    finally:
        client.disconnect()
    assert ack["ok"] is False and ack["status"] == 400 and words in ack["error"], ack
    assert orchestrator.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"on_stream_drop": "retry"}, "on_stream_drop"),
        ({"on_stream_drop": None}, "on_stream_drop"),
        ({"disk_margin_s": -1}, "disk_margin_s"),
        ({"disk_margin_s": "30"}, "disk_margin_s"),
        ({"disk_margin_s": True}, "disk_margin_s"),
    ],
)
def test_start_checks_stream_drop_and_disk_margin(url, rig, orchestrator, body, field):
    r = requests.post(f"{url}/api/capture/start", json=body, timeout=5)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert orchestrator.calls == []
    r = requests.post(
        f"{url}/api/capture/start",
        json={"on_stream_drop": "fail", "disk_margin_s": 0, "duration_s": 1},
        timeout=5,
    )
    assert r.status_code == 202, r.text


def test_start_takes_generator_outputs_checked_like_the_capture_settings(url, rig, orchestrator):
    sine = {"number": 1, "gain": 0.5, "inputs": [
        {"number": 1, "signalType": "sine", "frequency": 1000.0, "gain": 0.999}]}  # fmt: skip
    bad = {"generators": {"127.0.3.1": [{**sine, "mixfunction": "div"}]}}
    r = requests.post(f"{url}/api/capture/start", json=bad, timeout=5)
    assert r.status_code == 400 and r.json()["field"].startswith("generators"), r.text
    other = {"generators": {"127.0.3.9": [sine]}}
    r = requests.post(f"{url}/api/capture/start", json=other, timeout=5)
    assert r.status_code == 400 and "not one of the capture's modules" in r.json()["error"]
    assert orchestrator.calls == []
    r = requests.post(
        f"{url}/api/capture/start", json={"generators": {"127.0.3.1": [sine]}}, timeout=5
    )
    assert r.status_code == 202, r.text
    ((_kind, settings),) = orchestrator.calls
    assert settings.generators == {"127.0.3.1": [sine]}
