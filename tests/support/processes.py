"""The project's commands run as real processes, as a user runs them: ``python -m webapp
serve`` (waited for until it answers HTTP) and ``python -m webapp emulate`` (waited for until it
prints one line per module)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

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


def await_ready(
    proc: subprocess.Popen[Any],
    ready: Callable[[], bool],
    log: Path,
    what: str,
    timeout: float,
    interval: float = 0.05,
) -> None:
    """Return once ``ready()`` holds; fail the test, showing ``log``, if the process ends or
    ``timeout`` passes first (the process is killed). ``ready`` may raise OSError (nothing
    listens yet): that counts as not ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not come up:\n{log.read_text(errors='replace')}")
        time.sleep(interval)


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
    with serve_process(
        data_dir, *extra, host=host, port=port, ready_path=ready_path, timeout=timeout
    ) as (base, _):
        yield base


@contextmanager
def serve_process(
    data_dir: Path,
    *extra: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    ready_path: str = "/api/state",
    timeout: float = 30.0,
    log_name: str = "serve.log",
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`serve`, yielding the process too (a test may kill it); its output goes to
    ``data_dir/log_name``."""
    import requests

    port = port or free_port(host)
    log = open(data_dir / log_name, "w+")  # noqa: SIM115 - closed in the teardown
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

        def answers() -> bool:
            try:
                return requests.get(f"{base}{ready_path}", timeout=1).ok
            except requests.RequestException:
                return False

        await_ready(proc, answers, data_dir / log_name, "serve", timeout, interval=0.1)
        yield base, proc
    finally:
        _end(proc)
        log.close()


@contextmanager
def engine_process(
    data_dir: Path, message_queue: str, *extra: str, timeout: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m webapp engine --message-queue URL --data-dir DIR EXTRA``, yielded once it
    printed its start line; terminated (as SIGTERM does: the capture ended cleanly) on exit.
    Its output goes to ``data_dir/engine.log``."""
    path = data_dir / "engine.log"
    log = open(path, "w+")  # noqa: SIM115 - closed in the teardown
    args = ["engine", "--message-queue", message_queue, "--data-dir", str(data_dir), *extra]
    proc = subprocess.Popen(
        webapp_command(*args),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await_ready(
            proc,
            lambda: "LAN-XI capture engine on" in path.read_text(),
            path,
            "the engine",
            timeout,
        )
        yield proc
    finally:
        _end(proc)
        log.close()


def enter_together(stack: ExitStack, *managers: Any) -> list[Any]:
    """Enter context managers at once (processes start in parallel), exit them with ``stack``."""
    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(m.__enter__) for m in managers]
        for m in managers:
            stack.push(m)
        return [f.result() for f in futures]


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


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
