"""One engine per message queue: a second is refused while the first lives; an engine of this
machine that died a moment ago (its heartbeat not yet expired) is taken over at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import redis

from webapp.engine import codec, keys
from webapp.engine.service import AnotherEngineRunning, Heartbeat


@pytest.fixture
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def test_a_live_engine_keeps_its_slot(client):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # The slot is held by another live process of this machine.
        client.set(keys.ENGINE, codec.dumps({"pid": alive.pid, "host": socket.gethostname()}))
        with pytest.raises(AnotherEngineRunning) as refused:
            Heartbeat(client).claim()
        assert str(refused.value) == (
            f"another capture engine runs on this message queue (pid {alive.pid} on "
            f"{socket.gethostname()})"
        )
    finally:
        alive.kill()
        alive.wait()


def test_a_dead_engines_slot_is_taken_over(client):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client.set(keys.ENGINE, codec.dumps({"pid": dead.pid, "host": socket.gethostname()}), px=3000)
    beat = Heartbeat(client)
    beat.claim()
    try:
        assert codec.loads(client.get(keys.ENGINE))["pid"] == os.getpid()
    finally:
        beat.release()
    assert client.get(keys.ENGINE) is None
