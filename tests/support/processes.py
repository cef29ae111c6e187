"""The project's commands run as real processes, as a user runs them: ``python -m webapp
serve`` (waited for until it answers HTTP) and ``python -m webapp emulate`` (waited for until it
prints one line per module)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]


def webapp_command(*args: str) -> list[str]:
    """``python -m webapp ARGS`` with this interpreter."""
    return [sys.executable, "-m", "webapp", *args]


def run_webapp(
    *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m webapp ARGS`` run to its end, its output captured as text."""
    return subprocess.run(
        webapp_command(*args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@contextmanager
def serve(
    data_dir: Path,
    *extra: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    ready_path: str = "/api/state",
    timeout: float = 30.0,
) -> Iterator[str]:
    """``python -m webapp serve`` on ``host`` (a free port unless given) with ``data_dir``;
    yields its base URL once ``ready_path`` answers 2xx, terminates it on exit. Its output goes
    to ``data_dir/serve.log`` and is shown when it does not come up."""
    import requests

    port = port or free_port(host)
    log = open(data_dir / "serve.log", "w+")  # noqa: SIM115 - closed in the teardown
    args = ["serve", *extra, "--host", host, "--port", str(port), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(
        webapp_command(*args),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{base}{ready_path}", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                pytest.fail(f"serve did not come up:\n{log.read()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class Emulate:
    """``python -m webapp emulate ARGS`` with its output piped: ``ready(n)`` reads the first
    ``n`` lines (one per module, naming its URL), ``stop()`` ends it as Ctrl-C/SIGTERM would."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            webapp_command("emulate", *args),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ready(self, n: int) -> list[str]:
        assert self.proc.stdout is not None
        return [self.proc.stdout.readline() for _ in range(n)]

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then its exit status; killed (and TimeoutExpired raised) if it hangs."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
