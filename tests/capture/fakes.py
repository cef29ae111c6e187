"""A small in-process stand-in for LAN-XI modules, behind the ModuleClient interface.

It keeps the state machine the orchestrator relies on (moduleState, inputStatus, ptpStatus,
detection, onchange tags and long polls), logs every request in order, streams real Open API
messages over a socketpair, and injects failures. It lets the orchestrator's unit tests run
without HTTP; the integration tests use the real emulator.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webapp.capture.events import Event, EventBus
from webapp.openapi.client import ModuleError
from webapp.openapi.model import ModuleInfo
from webapp.openapi.stream import (
    SignalInterpretation,
    encode_data_quality,
    encode_interpretation,
    encode_signal_data,
    ticks_from_ns,
    ticks_per_sample,
)

RATE = 8192
BLOCK = 256


@dataclass
class FakeModule:
    address: str
    rig: FakeRig
    type_number: str = "3050"
    channels: int = 4
    no_lock: bool = False
    fail: dict[str, tuple[int | None, str]] = field(default_factory=dict)
    drop_after_blocks: int | None = None
    quality_after_blocks: int | None = None
    quality_flapping: bool = False
    """From quality_after_blocks on, the clipped flag flips at every block."""
    pending_s: float = 0.0
    """Stop and finish are answered 202 (accepted, pending) and take effect this much later."""
    state: str = "Idle"
    input_status: str = "Unknown"
    ptp: str = "Locked"
    detecting: bool = False
    tag: int = 1
    single: bool = True
    setup: dict[str, Any] | None = None
    recording: bool = False
    channel_status: list[dict[str, str] | None] | None = None
    peers: dict[int, socket.socket] = field(default_factory=dict)
    sent_bytes: int = 0
    streamer: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.cond = threading.Condition()

    def bump(self) -> None:
        with self.cond:
            self.tag += 1
            self.cond.notify_all()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "moduleState": self.state,
            "inputStatus": self.input_status,
            "ptpStatus": self.ptp,
            "transducerDetectionActive": self.detecting,
            "lastUpdateTag": self.tag,
        }
        if self.channel_status is not None:
            out["recordingStatus"] = {
                "timeElapsed": "00:00:00",
                "channelStatus": self.channel_status,
            }
        return out

    def enabled(self) -> list[int]:
        assert self.setup is not None
        return [c["channel"] for c in self.setup["channels"] if c.get("enabled", True)]


class FakeRig:
    """A set of fake modules; ``log`` holds (address, request) in the order they arrived."""

    def __init__(self, lock_s: float = 0.05, detect_s: float = 0.05) -> None:
        self.modules: dict[str, FakeModule] = {}
        self.log: list[tuple[str, str]] = []
        self.lock_s = lock_s
        self.detect_s = detect_s
        self._lock = threading.Lock()
        self.t0_ns: int | None = None

    def add(self, address: str, **kwargs: Any) -> FakeModule:
        m = FakeModule(address, self, **kwargs)
        self.modules[address] = m
        return m

    def client(self, address: str) -> FakeClient:
        return FakeClient(self, address)

    def record(self, address: str, request: str) -> None:
        with self._lock:
            self.log.append((address, request))

    def requests(self, name: str) -> list[str]:
        return [a for a, r in self.log if r == name]

    def trigger(self) -> None:
        """The master's measurement start: every recording module streams from one T0."""
        block_ns = BLOCK * 1_000_000_000 // RATE
        self.t0_ns = (time.time_ns() // block_ns + 1) * block_ns
        for m in self.modules.values():
            if m.recording and m.streamer is None:
                m.streamer = threading.Thread(target=_stream, args=(m, self.t0_ns), daemon=True)
                m.streamer.start()


def _stream(m: FakeModule, t0_ns: int) -> None:
    """Single socket: every enabled signal on one port; multi-socket: signal i on port i."""
    channels = m.enabled()
    t0 = ticks_from_ns(t0_ns)
    step = ticks_per_sample(RATE)
    ports = sorted(m.peers)
    if len(ports) == 1:
        routes = [(m.peers[ports[0]], list(range(1, len(channels) + 1)))]
    else:
        routes = [(m.peers[port], [i + 1]) for i, port in enumerate(ports)]
    values = (np.sin(np.arange(BLOCK) * 0.1) * 1_000_000).astype(np.int32)
    block = 0
    start = time.monotonic()
    try:
        for peer, sids in routes:
            out = b"".join(
                encode_interpretation(
                    t0, SignalInterpretation(sid, scale_factor=10.0, sample_rate=RATE, unit="V")
                )
                for sid in sids
            )
            peer.sendall(out)
            m.sent_bytes += len(out)
        while m.recording:
            if m.drop_after_blocks is not None and block >= m.drop_after_blocks:
                for peer, _ in routes:
                    peer.shutdown(socket.SHUT_RDWR)
                    peer.close()
                return
            t = t0 + block * BLOCK * step
            for peer, sids in routes:
                msg = b""
                first = m.quality_after_blocks
                if first is not None and block == first:
                    msg += encode_data_quality(t, [(sids[0], 0x02)])
                elif first is not None and m.quality_flapping and block > first:
                    clipped = (block - first) % 2 == 0
                    msg += encode_data_quality(t, [(sids[0], 0x02 if clipped else 0x00)])
                msg += b"".join(encode_signal_data(t, sid, values) for sid in sids)
                peer.sendall(msg)
                m.sent_bytes += len(msg)
            block += 1
            # paced at twice real time so tests stay short
            delay = start + block * BLOCK / RATE / 2 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    except OSError:
        return


class FakeClient:
    """ModuleClient's interface over a FakeModule."""

    def __init__(self, rig: FakeRig, address: str) -> None:
        self.rig = rig
        self.address = address
        self.base_url = f"fake://{address}"
        self.timeout = 1.0
        self.host = address

    def with_timeout(self, timeout: float) -> FakeClient:
        return self

    @property
    def m(self) -> FakeModule:
        m = self.rig.modules.get(self.address)
        if m is None:
            raise ModuleError(
                self.address, "GET /rest/rec/module/info", None, "unreachable (connection refused)"
            )
        return m

    def _req(self, name: str, valid: tuple[str, ...] | None = None) -> FakeModule:
        m = self.m
        self.rig.record(self.address, name)
        if name in m.fail:
            status, message = m.fail[name]
            raise ModuleError(self.address, f"PUT /rest/rec/{name}", status, message)
        if valid is not None and m.state not in valid:
            raise ModuleError(
                self.address, f"PUT /rest/rec/{name}", 403, f"{name} not valid in {m.state}"
            )
        return m

    def info(self) -> ModuleInfo:
        m = self._req("info")
        return ModuleInfo(
            type_number=m.type_number,
            serial=100000 + list(self.rig.modules).index(self.address),
            firmware="2.10.0.501",
            hardware="1.0",
            input_channels=m.channels,
            output_channels=0,
            sample_rates=[RATE, RATE // 2],
            ranges=["0.316 Vpeak", "10 Vpeak"],
            filters=["DC", "0.7 Hz", "7.0 Hz"],
            module_state=m.state,
        )

    def onchange(self, last: int | None = None) -> dict[str, Any]:
        m = self.m
        if m.fail.get("onchange"):
            status, message = m.fail["onchange"]
            raise ModuleError(self.address, "GET /rest/rec/onchange", status, message)
        with m.cond:
            if last is not None and last == m.tag:
                m.cond.wait(0.5)
            return m.status()

    def set_time(self, ms: int | None = None) -> None:
        self._req("module/time")

    def set_ptp(self, domain: int, preferred_master: bool, settime_ms: int | None = None) -> None:
        m = self._req("syncmode", ("Idle",))
        m.ptp = "Unlocked"
        m.bump()
        if not m.no_lock:

            def lock() -> None:
                time.sleep(self.rig.lock_s)
                m.ptp = "Locked"
                m.bump()

            threading.Thread(target=lock, daemon=True).start()

    def set_standalone(self) -> None:
        m = self._req("syncmode-standalone", ("Idle",))
        m.ptp = "Locked"
        m.bump()

    def open(self, single_module: bool = True, detect_transducers: bool = False) -> None:
        m = self._req("open", ("Idle",))
        m.state, m.input_status, m.single = "RecorderOpened", "Sampling", single_module
        m.bump()

    def create(self) -> None:
        m = self._req("create", ("RecorderOpened",))
        m.state = "RecorderConfiguring"
        m.channel_status = [
            {"anol": "none", "cmol": "none", "cf": "none"} for _ in range(m.channels)
        ]
        m.bump()

    def detect_transducers(self) -> None:
        m = self._req("detect")
        m.detecting = True
        m.bump()

        def done() -> None:
            time.sleep(self.rig.detect_s)
            m.detecting = False
            m.bump()

        threading.Thread(target=done, daemon=True).start()

    def transducers(self) -> list[dict[str, Any] | None]:
        m = self._req("transducers")
        found: list[dict[str, Any] | None] = [None] * m.channels
        found[0] = {
            "requires200V": 0,
            "requiresCcld": 1,
            "sensitivity": 0.01,
            "serialNumber": 4242,
            "type": {"model": "", "number": "4189", "prefix": "", "variant": ""},
            "unit": "Pa",
        }
        return found

    def default_setup(self) -> dict[str, Any]:
        m = self._req("default")
        return {
            "channels": [
                {
                    "channel": c,
                    "enabled": True,
                    "bandwidth": "3.2 kHz",
                    "range": "10 Vpeak",
                    "filter": "7.0 Hz",
                    "ccld": False,
                    "polvolt": False,
                    "destinations": ["sd"],
                    "transducer": {"sensitivity": 1, "unit": "V", "serialNumber": 0},
                }
                for c in range(1, m.channels + 1)
            ]
        }

    def put_setup(self, setup: dict[str, Any]) -> None:
        m = self._req("channels/input", ("RecorderConfiguring",))
        m.setup = setup
        if m.single:
            m.state, m.input_status = "RecorderStreaming", "Streaming"
        else:
            m.input_status = "Settled"
        m.bump()

    def synchronize(self) -> None:
        m = self._req("synchronize", ("RecorderConfiguring",))
        m.input_status = "Synchronized"
        m.bump()

    def start_streaming(self) -> None:
        m = self._req("startstreaming", ("RecorderConfiguring",))
        m.state, m.input_status = "RecorderStreaming", "Streaming"
        m.bump()

    def destination_socket(self) -> int:
        self._req("destination/socket", ("RecorderStreaming", "RecorderRecording"))
        return 1536

    def destination_sockets(self) -> list[int]:
        m = self._req("destination/sockets", ("RecorderStreaming", "RecorderRecording"))
        return [1536 + i for i in range(len(m.enabled()))]

    def connect_stream(self, port: int, timeout: float | None = None) -> socket.socket:
        m = self._req("connect")
        ours, theirs = socket.socketpair()
        old = m.peers.pop(port, None)
        if old is not None:
            old.close()
        m.peers[port] = theirs
        m.streamer = None
        return ours

    def start_measurement(self) -> int:
        m = self._req("measurements", ("RecorderStreaming",))
        m.state, m.recording = "RecorderRecording", True
        if m.channel_status is not None:
            m.channel_status = [
                {"anol": "none", "cmol": "none", "cf": "none"} for _ in range(m.channels)
            ]
        m.bump()
        if self.address == next(iter(self.rig.modules)):  # the master triggers
            self.rig.trigger()
            return 200
        return 202

    def _later(self, m: FakeModule, change: Callable[[], None]) -> int:
        if not m.pending_s:
            change()
            return 200
        timer = threading.Timer(m.pending_s, change)
        timer.daemon = True
        timer.start()
        return 202

    def stop_measurement(self) -> int:
        m = self._req("measurements/stop", ("RecorderRecording",))

        def stop() -> None:
            m.state, m.recording = "RecorderStreaming", False
            if m.streamer is not None:
                m.streamer.join(2)
            m.bump()

        return self._later(m, stop)

    def finish(self) -> int:
        m = self._req("finish", ("RecorderStreaming",))

        def finish() -> None:
            m.state, m.input_status = "RecorderOpened", "Sampling"
            for peer in m.peers.values():
                peer.close()
            m.peers.clear()
            m.bump()

        return self._later(m, finish)

    def cancel(self) -> None:
        m = self._req("cancel", ("RecorderConfiguring",))
        m.state = "RecorderOpened"
        m.bump()

    def close(self) -> None:
        m = self._req("close", ("RecorderOpened",))
        m.state, m.input_status, m.channel_status = "Idle", "Unknown", None
        m.bump()


def _unlocked(lock: Any, test: Callable[[], Any]) -> Any:
    """Run ``test`` without the recorder's lock (it may read the recorder)."""
    lock.release()
    try:
        return test()
    finally:
        lock.acquire()


class Recorder:
    """Every event a bus publishes, for tests to look at."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        bus.subscribe(self._on)

    def _on(self, e: Event) -> None:
        with self._cond:
            self.events.append(e)
            self._cond.notify_all()

    def wait_until(self, test: Callable[[], Any], timeout: float = 30.0) -> None:
        """Until ``test()`` holds, looked at after every event (fails after ``timeout``)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: bool(_unlocked(self._lock, test)), timeout)
        assert ok, f"timed out after {timeout:g} s"

    def kinds(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def phases(self) -> list[str]:
        return [e.phase for e in self.kinds("phase")]  # type: ignore[attr-defined]
