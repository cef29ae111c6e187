"""A real ``redis-server`` (Debian's package) on loopback, started and stopped by a fixture.

Each server gets its own free port and an empty folder, saves nothing to disk and is killed at
the end; tests skip, saying why, where redis-server is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.processes import await_ready

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@contextmanager
def redis_server(folder: Path, host: str = "127.0.0.1", timeout: float = 10.0) -> Iterator[str]:
    """Start redis-server on ``host`` at a free port; yields its URL (``redis://HOST:PORT/0``)
    once it answers PING."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    import redis

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    log = open(folder / "redis.log", "w+")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--bind", host,
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(folder),
            "--protected-mode", "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://{host}:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:

        def pings() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        await_ready(proc, pings, folder / "redis.log", "redis-server", timeout)
        yield url
    finally:
        client.close()
        proc.kill()
        proc.wait(timeout=10)
        log.close()
