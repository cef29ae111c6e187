"""``lanxi-dashboard engine`` and ``serve --message-queue``: wrong or unreachable queues and a
second engine are refused with exit status 2 and a sentence saying why, before anything runs.
(The commands are called as the entry point calls them; the processes themselves are in
test_engine_processes.py.)"""

from __future__ import annotations

import os
import socket

import pytest
import redis

from tests.support.net import free_port
from webapp.cli import build_parser
from webapp.engine import codec, keys


def run(capsys, *argv: str) -> tuple[int, str]:
    args = build_parser().parse_args(list(argv))
    status = args.func(args)
    return status, capsys.readouterr().err


@pytest.fixture
def nowhere() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_an_unreachable_queue_is_named(tmp_path, nowhere, capsys):
    status, err = run(capsys, "engine", "--message-queue", nowhere, "--data-dir", str(tmp_path))
    assert status == 2
    assert err.startswith(f"lanxi-dashboard engine: cannot reach {nowhere}: ")
    status, err = run(
        capsys, "serve", "--message-queue", nowhere, "--data-dir", str(tmp_path),
        "--port", str(free_port()),
    )  # fmt: skip
    assert status == 2
    assert err.startswith(f"lanxi-dashboard serve: cannot reach {nowhere}: ")
    assert not (tmp_path / "captures").exists()


def test_emulated_modules_belong_to_the_engine(tmp_path, nowhere, capsys):
    status, err = run(
        capsys, "serve", "--message-queue", nowhere, "--emulate", "2", "--data-dir",
        str(tmp_path), "--port", str(free_port()),
    )  # fmt: skip
    assert status == 2
    assert "with --message-queue the emulated modules run in the engine" in err
    status, err = run(capsys, "engine", "--message-queue", "amqp://x", "--data-dir", str(tmp_path))
    assert status == 2
    assert err.strip() == "lanxi-dashboard engine: --message-queue takes redis://HOST:PORT/DB"


def test_a_second_engine_on_a_queue_is_refused_before_it_touches_anything(
    tmp_path, redis_url, capsys
):
    client = redis.Redis.from_url(redis_url)
    # A live engine's heartbeat (this test process stands in for it).
    client.set(keys.ENGINE, codec.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    status, err = run(
        capsys, "engine", "--message-queue", redis_url, "--data-dir", str(tmp_path / "d"),
        "--emulate", "1",
    )  # fmt: skip
    client.close()
    assert status == 2
    assert err.strip() == (
        "lanxi-dashboard engine: another capture engine runs on this message queue "
        f"(pid {os.getpid()} on {socket.gethostname()})"
    )
    assert not (tmp_path / "d").exists()  # no capture marked, no rig written
