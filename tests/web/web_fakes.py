"""A stand-in orchestrator for the web layer's own tests: it keeps the orchestrator's public
surface (phase, armed, busy, probe, return_to_idle, arm, start, stop, disarm) and publishes real events on the
real bus, so everything from the fold to the Socket.IO push runs as in production."""

from __future__ import annotations

import threading
import zlib
from typing import Any

from webapp.capture import events as ev
from webapp.openapi.client import ModuleError
from webapp.openapi.model import ModuleInfo


def module_info(address: str, serial: int = 100001, channels: int = 6) -> ModuleInfo:
    return ModuleInfo(
        type_number="3050",
        serial=serial,
        firmware="2.10.0.501",
        hardware="1.0.0.0",
        input_channels=channels,
        output_channels=0,
        sample_rates=[131072, 65536, 32768],
        ranges=["0.316 Vpeak", "10 Vpeak"],
        filters=["DC", "0.7 Hz", "7.0 Hz"],
        module_state="Idle",
    )


class FakeOrchestrator:
    def __init__(self, bus: ev.EventBus, unreachable: set[str] | None = None):
        self.bus = bus
        self.phase = ev.Phase.IDLE
        self.armed = False
        self.busy = False
        self.current_capture_id: str | None = None
        self.calls: list[tuple[str, Any]] = []
        self.unreachable = unreachable or set()
        self.probed = threading.Event()
        self.watched: set[tuple[str, int]] | None = None

    def probe(self, address: str) -> ModuleInfo:
        self.probed.set()
        if address in self.unreachable:
            raise ConnectionError(f"{address}: GET /rest/rec/module/info: connection refused")
        # one serial per address: two entries with one serial are the same module
        return module_info(address, serial=100000 + zlib.crc32(address.encode()) % 900000)

    def return_to_idle(self, address: str) -> list[str]:
        self._refuse_if_busy()
        self.calls.append(("return_to_idle", address))
        if address in self.unreachable:
            raise ModuleError(address, "GET /rest/rec/onchange", None, "connection refused")
        return ["finish", "close"]

    def set_phase(self, phase: ev.Phase, detail: str = "") -> None:
        previous, self.phase = self.phase, phase
        self.bus.publish(ev.PhaseChanged(phase=phase, previous=previous, detail=detail))

    def _refuse_if_busy(self) -> None:
        if self.busy:
            raise RuntimeError("a capture is already being recorded")

    def watch_waveforms(self, channels: Any) -> None:
        self.watched = set(channels) if channels is not None else None

    def arm(self, settings: Any) -> None:
        self._refuse_if_busy()
        self.calls.append(("arm", settings))
        self.armed = True
        self.set_phase(ev.Phase.ARMED)

    def start(self, settings: Any) -> str:
        self._refuse_if_busy()
        self.calls.append(("start", settings))
        self.busy = True
        self.current_capture_id = f"20260101-000000-{settings.name}"
        self.set_phase(ev.Phase.VALIDATING)
        return self.current_capture_id

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self.busy = False
        self.set_phase(ev.Phase.COMPLETED)

    def monitor(self, settings: Any, plan: Any) -> str:
        self._refuse_if_busy()
        self.calls.append(("monitor", plan))
        self.busy = self.monitoring = True
        self.set_phase(ev.Phase.MONITORING)
        return "20260101-000000-monitor"

    def record_window(self, plan: Any) -> None:
        if not getattr(self, "monitoring", False):
            raise RuntimeError("not monitoring: start monitoring first")
        self.calls.append(("record", plan))

    def stop_window(self) -> None:
        self.calls.append(("stop-recording", None))

    def trigger_now(self) -> None:
        self.calls.append(("trigger", None))

    def disarm(self) -> None:
        self.calls.append(("disarm", None))
        self.armed = False
        self.set_phase(ev.Phase.IDLE)

    # --- generator outputs by hand and live FRFs (webapp/capture/outputs.py, livefrf.py) ---

    refuse_outputs: ModuleError | None = None
    watched_frfs: frozenset[Any] = frozenset()

    def start_outputs(self, generators: dict[str, list[dict[str, Any]]], rig: list[str]) -> None:
        if self.refuse_outputs is not None:
            raise self.refuse_outputs
        self.calls.append(("start_outputs", generators))
        for address, outputs in generators.items():
            for o in outputs:
                self.bus.publish(ev.GeneratorChanged(module=address, number=o["number"],
                                                     running=True, how="hand", output=o))  # fmt: skip

    def stop_outputs(self, outputs: dict[str, list[int]] | None, rig: list[str]) -> None:
        self.calls.append(("stop_outputs", outputs))
        for address, numbers in (outputs or {}).items():
            for n in numbers:
                self.bus.publish(ev.GeneratorChanged(module=address, number=n, running=False,
                                                     how="hand"))  # fmt: skip

    def watch_frfs(self, frfs: Any) -> None:
        self.watched_frfs = frozenset(frfs)
