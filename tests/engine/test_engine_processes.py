"""The capture engine in its own process, two web processes in front of it, a real
redis-server between them (issue 15): a capture started through one web process is seen live
through the other, killing a web process never touches the capture, a viewer that joins late
gets the whole state."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
import socketio

from tests.support.processes import engine_process, enter_together, serve_process
from tests.support.redis_server import redis_server
from tests.support.waiting import wait_until

EMULATOR = ("--emulate", "2", "--ptp-lock-seconds", "0.3")


class Viewer:
    """A Socket.IO client of one web process, recording what it is pushed."""

    def __init__(self, base: str) -> None:
        self.client = socketio.Client(reconnection=False)
        self.events: list[tuple[str, object]] = []
        self.state: dict | None = None
        self._lock = threading.Lock()

        @self.client.on("*")
        def anything(event: str, data: object = None) -> None:
            with self._lock:
                if event == "state":
                    self.state = data  # type: ignore[assignment]
                if event == "update":  # one push: every changed topic, then new log entries
                    assert isinstance(data, dict)
                    self.events.extend(data["topics"].items())
                    self.events.extend((e["level"], e) for e in data.get("log", []))
                else:
                    self.events.append((event, data))

        self.client.connect(base, transports=["websocket"], wait_timeout=5)
        wait_until(lambda: self.state is not None)

    def got(self, event: str) -> list:
        with self._lock:
            return [d for e, d in self.events if e == event]

    def phases(self) -> list[str]:
        return [d["phase"] for d in self.got("phase")]

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict]:
    """redis-server, ``engine --emulate 2``, web processes A and B on one data dir, all
    started at once."""
    data_dir = tmp_path_factory.mktemp("data")
    with redis_server(tmp_path_factory.mktemp("redis")) as url, ExitStack() as stack:
        queue = ("--message-queue", url)
        engine, (a, proc_a), (b, _) = enter_together(
            stack,
            engine_process(data_dir, url, *EMULATOR),
            serve_process(data_dir, *queue, log_name="a.log"),
            serve_process(data_dir, *queue, log_name="b.log"),
        )
        yield {
            "url": url,
            "data_dir": data_dir,
            "engine": engine,
            "a": a,
            "proc_a": proc_a,
            "b": b,
        }


def manifest(data_dir: Path, capture_id: str) -> dict:
    return json.loads((data_dir / "captures" / capture_id / "capture.json").read_text())


def test_a_capture_started_through_a_is_seen_live_through_b(stack):
    rig = requests.get(f"{stack['b']}/api/rig", timeout=5).json()
    first, second = (m["address"] for m in rig["modules"])
    on_a, on_b = Viewer(stack["a"]), Viewer(stack["b"])
    try:
        # Each viewer its own waveform: the engine decodes the union of both processes'.
        assert on_b.client.call("select-waveform", {"module": second, "channel": 2})["ok"]
        wait_until(lambda: on_b.got("viewers") and on_b.got("viewers")[-1]["count"] == 2)
        r = requests.post(
            f"{stack['a']}/api/capture/start", json={"duration_s": 2, "name": "via-a"}, timeout=10
        )
        assert r.status_code == 202, r.text
        capture_id = r.json()["capture_id"]
        wait_until(lambda: "completed" in on_b.phases(), timeout=20)
        assert "recording" in on_b.phases()
        elapsed = [d["elapsed_s"] for d in on_b.got("recording-time")]
        assert any(0 < e < 2 for e in elapsed), elapsed  # seen while it ran, not only at the end
        assert elapsed[-1] == pytest.approx(2.0)
        last = on_b.got("capture")[-1]["last"]
        assert (last["id"], last["outcome"]) == (capture_id, "completed")
        waves_b = {(w["module"], w["channel"]) for w in on_b.got("waveform")}
        waves_a = {(w["module"], w["channel"]) for w in on_a.got("waveform")}
        assert waves_b == {(second, 2)}
        assert waves_a == {(first, 1)}  # the master's first channel: A's viewer chose none
        wave = on_b.got("waveform")[-1]
        assert isinstance(wave["values"], bytes) and len(wave["values"]) % 4 == 0
    finally:
        on_a.close()
        on_b.close()
    assert manifest(stack["data_dir"], capture_id)["outcome"] == "completed"


def test_killing_a_web_process_mid_capture_leaves_the_capture_recording(stack):
    on_b = Viewer(stack["b"])
    try:
        r = requests.post(
            f"{stack['a']}/api/capture/start", json={"duration_s": 3, "name": "via-a"}, timeout=10
        )
        assert r.status_code == 202, r.text
        capture_id = r.json()["capture_id"]
        wait_until(lambda: "recording" in on_b.phases(), timeout=20)
        stack["proc_a"].send_signal(signal.SIGKILL)  # the process that started it
        stack["proc_a"].wait(5)
        # A viewer of the killed process reconnects to B and sees the whole state.
        late = Viewer(stack["b"])
        try:
            state = late.state
            assert state is not None
            assert state["phase"]["phase"] == "recording"
            assert state["capture"]["current"]["id"] == capture_id
            assert state["rig"]["modules"] and state["setup"]["setup"]["channels"]
            assert [t["phase"] for t in state["phase"]["timeline"]][-1] == "recording"
            wait_until(lambda: "completed" in late.phases(), timeout=20)
            elapsed = [d["elapsed_s"] for d in late.got("recording-time")]
            assert elapsed[-1] == pytest.approx(3.0)
        finally:
            late.close()
    finally:
        on_b.close()
    record = manifest(stack["data_dir"], capture_id)
    assert record["outcome"] == "completed"
    assert "interrupted" not in (stack["data_dir"] / "engine.log").read_text()
    assert stack["engine"].poll() is None


def test_a_control_request_through_socketio_reaches_the_engine(stack):
    on_b = Viewer(stack["b"])
    try:
        ack = on_b.client.call("capture:record", {"duration_s": 1}, timeout=10)
        assert ack["ok"] is False and ack["status"] == 409, ack  # the engine's own refusal
        assert ack["error"] == "cannot record: not monitoring: start monitoring first"
        ack = on_b.client.call("capture:arm", {"modules": ["nowhere"]}, timeout=10)
        assert ack["ok"] is False and ack["status"] == 400 and ack["field"], ack
    finally:
        on_b.close()


def test_sigterm_to_the_engine_ends_the_capture_cleanly_and_the_web_says_so(stack):
    """Last: it ends the module's engine."""
    on_b = Viewer(stack["b"])
    try:
        r = requests.post(
            f"{stack['b']}/api/capture/start", json={"duration_s": 30, "name": "long"}, timeout=10
        )
        assert r.status_code == 202, r.text
        capture_id = r.json()["capture_id"]
        wait_until(lambda: "recording" in on_b.phases(), timeout=20)
        stack["engine"].send_signal(signal.SIGTERM)
        assert stack["engine"].wait(20) == 0
        # The last changes reached the viewer before the engine left.
        wait_until(lambda: on_b.got("capture")[-1]["last"] is not None, timeout=5)
        last = on_b.got("capture")[-1]["last"]
        assert (last["id"], last["outcome"]) == (capture_id, "stopped")
    finally:
        on_b.close()
    assert manifest(stack["data_dir"], capture_id)["outcome"] == "stopped"
    r = requests.post(f"{stack['b']}/api/capture/start", json={}, timeout=10)
    assert r.status_code == 503
    assert r.json()["error"].startswith("the capture engine is not running")


def test_a_restarted_engine_is_served_by_the_running_web_processes(stack):
    """After the previous test's engine has gone: a new one on the same queue and data dir,
    and the web process that stayed up serves it, to a viewer that stayed connected too."""
    on_b = Viewer(stack["b"])
    try:
        with engine_process(stack["data_dir"], stack["url"], *EMULATOR):
            rig = requests.get(f"{stack['b']}/api/rig", timeout=10)
            assert rig.status_code == 200 and len(rig.json()["modules"]) == 2
            r = requests.post(
                f"{stack['b']}/api/capture/start",
                json={"duration_s": 1, "name": "again"},
                timeout=10,
            )
            assert r.status_code == 202, r.text
            capture_id = r.json()["capture_id"]
            wait_until(
                lambda: any(
                    (c.get("last") or {}).get("id") == capture_id for c in on_b.got("capture")
                ),
                timeout=20,
            )
            assert on_b.got("capture")[-1]["last"]["outcome"] == "completed"
    finally:
        on_b.close()
