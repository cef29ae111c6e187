"""``lanxi-dashboard engine`` and ``serve --message-queue``: wrong or unreachable queues and a
second engine are refused with exit status 2 and a sentence saying why, before anything runs."""

from __future__ import annotations

import os
import socket

import pytest
import redis

from tests.support.net import free_port
from tests.support.processes import run_webapp
from webapp.engine import codec, keys


@pytest.fixture
def nowhere() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_an_unreachable_queue_is_named(tmp_path, nowhere):
    engine = run_webapp("engine", "--message-queue", nowhere, "--data-dir", str(tmp_path / "d"))
    assert engine.returncode == 2
    assert engine.stderr.startswith(f"lanxi-dashboard engine: cannot reach {nowhere}: ")
    serve = run_webapp(
        "serve", "--message-queue", nowhere, "--data-dir", str(tmp_path / "d"),
        "--port", str(free_port()),
    )  # fmt: skip
    assert serve.returncode == 2
    assert f"lanxi-dashboard serve: cannot reach {nowhere}: " in serve.stderr
    assert not (tmp_path / "d" / "captures").exists()


def test_emulated_modules_belong_to_the_engine(tmp_path, nowhere):
    serve = run_webapp(
        "serve", "--message-queue", nowhere, "--emulate", "2", "--data-dir", str(tmp_path),
        "--port", str(free_port()),
    )  # fmt: skip
    assert serve.returncode == 2
    assert "with --message-queue the emulated modules run in the engine" in serve.stderr
    bad = run_webapp("engine", "--message-queue", "amqp://x", "--data-dir", str(tmp_path))
    assert bad.returncode == 2
    assert "--message-queue takes redis://HOST:PORT/DB" in bad.stderr


def test_a_second_engine_on_a_queue_is_refused_before_it_touches_anything(tmp_path, redis_url):
    client = redis.Redis.from_url(redis_url)
    # A live engine's heartbeat (this test process stands in for it).
    client.set(keys.ENGINE, codec.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    second = run_webapp(
        "engine", "--message-queue", redis_url, "--data-dir", str(tmp_path / "d"),
        "--emulate", "1",
    )  # fmt: skip
    assert second.returncode == 2
    assert second.stderr.strip() == (
        "lanxi-dashboard engine: another capture engine runs on this message queue "
        f"(pid {os.getpid()} on {socket.gethostname()})"
    )
    assert not (tmp_path / "d").exists()  # no capture marked, no rig written
    client.close()
