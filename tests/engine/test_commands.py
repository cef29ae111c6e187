"""Commands from a web process to the engine through a real redis-server: the engine's answer
or refusal comes back as it would in-process; with no engine the user gets a clear 503."""

from __future__ import annotations

import time

import pytest
import redis

from webapp.engine import codec, keys
from webapp.engine.commands import CommandClient, CommandServer
from webapp.engine.control import RequestError
from webapp.engine.interface import EngineUnavailable
from webapp.engine.rig import RigError


class FakeRig:
    def __init__(self) -> None:
        self.added: list[str] = []

    def add(self, address: str, emulated: bool = False) -> str:
        if ":" not in address:
            raise RigError("address", f"{address}: give the module's address as HOST:PORT")
        self.added.append(address)
        return address

    def view(self) -> dict:
        return {"modules": [{"address": a} for a in self.added], "raw": b"\x00\x01"}

    def remove(self, address: str) -> None:
        raise OSError("disk full")


class FakeControl:
    def stop(self) -> dict:
        raise RequestError(None, "cannot stop: nothing is running", 409)


@pytest.fixture
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def engine(client):
    rig = FakeRig()
    server = CommandServer(client, {"rig": rig, "control": FakeControl()})
    client.set(keys.ENGINE, "{}")
    server.start()
    yield rig
    server.stop()


def test_answers_and_refusals_come_back_as_in_process(client, engine):
    calls = CommandClient(client, timeout_s=2)
    assert calls.call("rig", "add", "127.0.0.1:5001", emulated=True) == "127.0.0.1:5001"
    assert engine.added == ["127.0.0.1:5001"]
    view = calls.call("rig", "view")
    assert view["modules"] == [{"address": "127.0.0.1:5001"}]
    assert view["raw"] == b"\x00\x01"  # bytes cross as bytes
    with pytest.raises(RequestError) as refused:
        calls.call("rig", "add", "nowhere")
    assert (refused.value.status, refused.value.field) == (400, "address")
    assert refused.value.message == "nowhere: give the module's address as HOST:PORT"
    with pytest.raises(RequestError) as conflict:
        calls.call("control", "stop")
    assert (conflict.value.status, conflict.value.message) == (
        409,
        "cannot stop: nothing is running",
    )
    with pytest.raises(RequestError) as failed:
        calls.call("rig", "remove", "127.0.0.1:5001")
    assert failed.value.status == 500
    assert failed.value.message == "the capture engine failed: disk full"


def test_only_the_listed_operations_can_be_called(client, engine):
    calls = CommandClient(client, timeout_s=2)
    with pytest.raises(RequestError) as refused:
        calls.call("rig", "__init__")
    assert refused.value.status == 400
    assert "has no command rig.__init__" in refused.value.message
    with pytest.raises(RequestError):
        calls.call("orchestrator", "stop")


def test_no_engine_is_a_503_at_once(client):
    calls = CommandClient(client, timeout_s=5)
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable) as none:
        calls.call("control", "start", {})
    assert time.monotonic() - t0 < 1
    assert none.value.status == 503
    assert none.value.message.startswith("the capture engine is not running")


def test_an_engine_that_does_not_answer_is_a_503_after_the_timeout(client):
    client.set(keys.ENGINE, "{}")  # a heartbeat left by an engine that was killed a moment ago
    calls = CommandClient(client, timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable) as silent:
        calls.call("control", "start", {})
    assert 0.3 <= time.monotonic() - t0 < 2
    assert silent.value.message == "the capture engine is not running (no answer within 0.3 s)"


def test_a_command_nobody_took_in_time_is_never_carried_out(client):
    client.set(keys.ENGINE, "{}")
    with pytest.raises(EngineUnavailable):
        CommandClient(client, timeout_s=0.2).call("rig", "add", "127.0.0.1:5002")
    assert client.llen(keys.COMMANDS) == 1  # still queued: the engine was not there
    rig = FakeRig()
    server = CommandServer(client, {"rig": rig})
    server.start()
    try:
        assert CommandClient(client, timeout_s=2).call("rig", "add", "127.0.0.1:5003")
        assert rig.added == ["127.0.0.1:5003"]  # the expired one was dropped
    finally:
        server.stop()


def test_commands_are_plain_json(client, engine):
    """A command is data (JSON), never pickled code."""
    client.lpush(keys.COMMANDS, b"\x80\x04not json")
    body = {"id": "x1", "target": "rig", "method": "view", "expires": time.time() + 5}
    client.lpush(keys.COMMANDS, codec.dumps(body))
    got = [codec.loads(client.blpop([keys.REPLY + "x1"], timeout=2)[1]) for _ in range(2)]
    assert got[0] == {"accepted": True}
    assert got[1]["result"]["modules"] == []
