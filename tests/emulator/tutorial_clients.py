"""A client that follows HBK's single-module tutorial flow (PROTOCOL.md §3.5), written for the
tests: bare-digit ``module/time``, ``open`` with automatic detection off, ``create`` right
after it, busy polling of ``onchange`` for the end of detection, the default setup switched to
the socket, stream connected before the measurement, stop, then the stream socket closed and
the receiving thread joined (which only ends when the module closes the stream)."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from pathlib import Path

import requests


def _receive(sel: selectors.BaseSelector, sink) -> None:
    while True:
        for key, _mask in sel.select():
            data = key.fileobj.recv(16384)  # type: ignore[union-attr]
            if not data:
                return
            sink.write(data)


def single_module_capture(address: str, seconds: float, out: Path) -> dict:
    """Run the flow against ``address`` ("host" or "host:port"); returns the last status."""
    base = f"http://{address}/rest/rec"
    host = address.split(":")[0]
    requests.put(base + "/module/time", data=str(int(time.time() * 1000)), timeout=10)
    requests.put(base + "/open", json={"performTransducerDetection": False}, timeout=10)
    requests.put(base + "/create", timeout=10)
    requests.post(base + "/channels/input/all/transducers/detect", timeout=10)
    polls = 0
    while requests.get(base + "/onchange", timeout=10).json()["transducerDetectionActive"]:
        polls += 1  # busy polling, no long poll: what the older HBK python examples do
    transducers = requests.get(base + "/channels/input/all/transducers", timeout=10).json()
    setup = requests.get(base + "/channels/input/default", timeout=10).json()
    for channel in setup["channels"]:
        channel["destinations"] = ["socket"]
    for channel, transducer in zip(setup["channels"], transducers, strict=True):
        if transducer is not None:
            channel["transducer"] = transducer
            channel["ccld"] = transducer["requiresCcld"]
            channel["polvolt"] = transducer["requires200V"]
    requests.put(base + "/channels/input", json=setup, timeout=10)
    port = requests.get(base + "/destination/socket", timeout=10).json()["tcpPort"]
    with out.open("wb") as sink:
        sock = socket.create_connection((host, port), timeout=10)
        sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        thread = threading.Thread(target=_receive, args=(sel, sink))
        thread.start()
        requests.post(base + "/measurements", timeout=10)
        tag, start = 0, time.time()
        status: dict = {}
        while time.time() - start < seconds:
            status = requests.get(base + "/onchange", params={"last": tag}, timeout=40).json()
            tag = status["lastUpdateTag"]
        requests.put(base + "/measurements/stop", timeout=10)
        sock.close()  # as the tutorial does: close, then wait for the receiving thread
        thread.join(15)
        assert not thread.is_alive(), "the receiving thread never saw the end of the stream"
    requests.put(base + "/finish", timeout=10)
    requests.put(base + "/close", timeout=10)
    status["detectionPolls"] = polls
    return status
