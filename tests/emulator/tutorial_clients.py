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

from webapp.openapi.stream import Interpretation, SignalData, decode_content, parse_header


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


def loopback_flow(address: str, seconds: float) -> tuple[list[float], dict, dict]:
    """The request sequence of HBK's Python ``loopback.py`` example, written for the tests:
    ``open`` without a body (TEDS detection at open), module info, create, the default setup
    to the socket with only channel 1 enabled, generator prepare, the default generator setup
    changed to a 20 kHz sine (output gain 1, input gain 0.75), output, start (while
    RecorderConfiguring), then the channel setup, the socket, the measurement; after the data
    the measurement stop, then the generator stop. Returns (volts, setup, module info)."""
    base = f"http://{address}/rest/rec"
    host = address.split(":")[0]
    requests.put(base + "/open", timeout=10)
    module_info = requests.get(base + "/module/info", timeout=10).json()
    requests.put(base + "/create", timeout=10)
    setup = requests.get(base + "/channels/input/default", timeout=10).json()
    for channel in setup["channels"]:
        channel["destinations"] = ["socket"]
        channel["enabled"] = False
    setup["channels"][0]["enabled"] = True
    requests.put(base + "/generator/prepare", json={"outputs": [{"number": 1}]}, timeout=10)
    generator_setup = requests.get(base + "/generator/output/default", timeout=10).json()
    generator_setup["outputs"][0]["gain"] = 1
    generator_setup["outputs"][0]["inputs"][0]["frequency"] = 20000.0
    generator_setup["outputs"][0]["inputs"][0]["gain"] = 0.75
    generator_setup["outputs"][0]["inputs"][0]["signalType"] = "sine"
    for path, body in (("output", generator_setup), ("start", {"outputs": [{"number": 1}]})):
        r = requests.put(base + "/generator/" + path, json=body, timeout=10)
        assert r.status_code == 200, (path, r.status_code, r.text)
    r = requests.put(base + "/channels/input", json=setup, timeout=10)
    assert r.status_code == 200, r.text
    port = requests.get(base + "/destination/socket", timeout=10).json()["tcpPort"]
    requests.post(base + "/measurements", timeout=10)
    bandwidth = float(setup["channels"][0]["bandwidth"].replace("kHz", "")) * 1000
    rate = min(module_info["supportedSampleRates"], key=lambda x: abs(x - bandwidth * 2))
    wanted = int(rate * seconds)
    values: list[float] = []
    scale = 1.0
    with socket.create_connection((host, port), timeout=10) as s:
        buffer = b""
        while len(values) <= wanted:
            while len(buffer) < 28:
                buffer += s.recv(65536)
            mtype, family, count, length = parse_header(buffer)
            while len(buffer) < 28 + length:
                buffer += s.recv(65536)
            message = decode_content(mtype, family, count, buffer[28 : 28 + length])
            buffer = buffer[28 + length :]
            if isinstance(message, Interpretation):
                scale = message.signals[0].scale_factor
            elif isinstance(message, SignalData):
                for block in message.blocks:
                    values.extend((block.values * scale / 2**23).tolist())
        requests.put(base + "/measurements/stop", timeout=10)
        requests.put(base + "/generator/stop", json={"outputs": [{"number": 1}]}, timeout=10)
    return values, setup, module_info
