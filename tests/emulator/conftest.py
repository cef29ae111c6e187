"""Fixtures: emulated modules in-process on free ports of 127.0.0.1, with test-speed timings."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.support.emulator import FAST_EMULATOR
from webapp.emulator import EmulatedRig


class Api:
    """A thin client for one module: every call returns the response, nothing is checked."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.base = f"{module.url}/rest/rec"
        self.session = requests.Session()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=10, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.session.put(self.base + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.session.post(self.base + path, timeout=10, **kw)

    def status(self) -> dict[str, Any]:
        return self.get("/onchange").json()

    def ok(self, method: str, path: str, **kw: Any) -> requests.Response:
        r = getattr(self, method)(path, **kw)
        assert r.status_code == 200, f"{method.upper()} {path}: {r.status_code} {r.text}"
        return r

    def wait_for(self, key: str, value: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Long-poll onchange until status[key] == value."""
        deadline = time.monotonic() + timeout
        status = self.status()
        while status[key] != value:
            assert time.monotonic() < deadline, f"{key} stayed {status[key]!r}, wanted {value!r}"
            status = self.get("/onchange", params={"last": status["lastUpdateTag"]}).json()
        return status

    def control(self, method: str, path: str, **kw: Any) -> requests.Response:
        return getattr(self.session, method)(f"{self.module.url}/emulator/{path}", timeout=10, **kw)

    def configure(self, single: bool = True, destination: str = "socket", **channel: Any) -> dict:
        """open, create, detection, default setup with TEDS transducers -> setup PUT."""
        self.ok("put", "/open", json={"performTransducerDetection": False, "singleModule": single})
        self.ok("put", "/create")
        setup = self.ok("get", "/channels/input/default").json()
        self.ok("post", "/channels/input/all/transducers/detect")
        self.wait_for("transducerDetectionActive", False)
        found = self.ok("get", "/channels/input/all/transducers").json()
        for ch, t in zip(setup["channels"], found, strict=True):
            ch["destinations"] = [destination]
            if t is not None:
                ch["transducer"] = t
                ch["ccld"] = t["requiresCcld"]
            ch.update(channel)
        self.ok("put", "/channels/input", json=setup)
        return setup


class StreamReader:
    """Reads a stream socket into memory until the module closes it."""

    def __init__(self, host: str, port: int, pause: float = 0.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.data = bytearray()
        self.closed = threading.Event()
        self.resume = threading.Event()
        if not pause:
            self.resume.set()
        self._pause = pause
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._pause:
            self.resume.wait(self._pause)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.data += chunk
        except OSError:
            pass
        finally:
            self.closed.set()

    def wait_closed(self, timeout: float = 10.0) -> bytes:
        assert self.closed.wait(timeout), "the module did not end the stream"
        self.sock.close()
        return bytes(self.data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def start_rig() -> Iterator[Callable[..., EmulatedRig]]:
    rigs: list[EmulatedRig] = []

    def start(n: int = 1, **kw: Any) -> EmulatedRig:
        options = {**FAST_EMULATOR, **kw}
        rig = EmulatedRig.start(n, host="127.0.0.1", port=0, **options)
        rigs.append(rig)
        return rig

    yield start
    for rig in rigs:
        rig.stop()


@pytest.fixture
def api(start_rig: Callable[..., EmulatedRig]) -> Api:
    return Api(start_rig(1).modules[0])
