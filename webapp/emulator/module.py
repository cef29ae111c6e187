"""One emulated LAN-XI module: the recorder state machine and everything time makes happen.

States follow PROTOCOL.md §3: ``moduleState`` changes complete before the 200 answer (§11);
``inputStatus``, ``ptpStatus`` and ``transducerDetectionActive`` move with time (settling,
PTP locking, TEDS detection). Every change bumps ``lastUpdateTag`` and wakes long polls; while
recording the tag changes once a second with ``recordingStatus.timeElapsed``.

All state sits behind one condition variable per module. Time-driven changes are applied by
:meth:`ModuleEmulator.advance`, which the module's ticker thread calls at the next deadline and
every request calls first, so answers never lag the clock.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from typing import Any

from webapp.emulator.acquisition import Acquisition
from webapp.emulator.clock import TICKS_PER_SECOND, now_ticks
from webapp.emulator.faults import ChannelFaultTimeline, Fault, FaultSpec
from webapp.emulator.generator import Generator, default_loopbacks
from webapp.emulator.module_answers import StatusAnswers
from webapp.emulator.module_faults import FaultHandling
from webapp.emulator.module_measurement import MeasurementRequests
from webapp.emulator.module_ptp import PtpRequests
from webapp.emulator.module_recorder import RecorderRequests
from webapp.emulator.network import PtpNetwork
from webapp.emulator.options import EmulatorOptions
from webapp.emulator.resterror import RestError
from webapp.emulator.rig import RigChannel, default_rig, module_serial
from webapp.emulator.setup import AppliedSetup
from webapp.emulator.streamer import Measurement, StreamPort
from webapp.emulator.waveforms import Loopback
from webapp.openapi.model import MODULE_TYPES, InputStatus, ModuleState

log = logging.getLogger(__name__)


class ModuleEmulator(
    StatusAnswers, PtpRequests, RecorderRequests, MeasurementRequests, FaultHandling
):
    """One emulated module: state, life cycle and the clock; the request handlers by area are
    in the mixins (module_answers, module_ptp, module_recorder, module_measurement,
    module_faults)."""

    def __init__(
        self,
        index: int,
        type_number: str,
        network: PtpNetwork,
        options: EmulatorOptions,
        name: str = "",
    ) -> None:
        if type_number not in MODULE_TYPES:
            known = ", ".join(sorted(MODULE_TYPES))
            raise ValueError(f"unknown module type {type_number!r} (emulated: {known})")
        self.index = index
        self.profile = MODULE_TYPES[type_number]
        if options.serial is not None:
            self.serial = options.serial + index
        else:
            self.serial = module_serial(type_number, index)
        if options.loopbacks is None:
            loopbacks = default_loopbacks(type_number)
        else:
            loopbacks = tuple(Loopback.parse(text) for text in options.loopbacks)
        loopbacks = tuple(
            lb
            for lb in loopbacks
            if lb.output <= self.profile.output_channels and lb.input <= self.profile.input_channels
        )
        self.generator = Generator(self.profile.output_channels, loopbacks)
        self.rig = [
            RigChannel(r.channel, f"cable from generator output {lb.output}", None)
            if (lb := self.generator.loopback_to(r.channel)) is not None
            else r
            for r in default_rig(index, self.profile.input_channels, options.calibration_shaker)
        ]
        self.network = network
        self.options = options
        self.name = name or f"BK{type_number}-{self.serial}"
        self.cond = threading.Condition(threading.RLock())
        self.requests: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=options.request_log_size
        )
        self.ports: list[StreamPort] = []
        self._stream_host = "127.0.0.1"
        self._stream_base_port = 0
        self._stopped = False
        self._ticker: threading.Thread | None = None
        self._faults: dict[tuple[str, str | None], Fault] = {}
        self._scheduled: list[FaultSpec] = []
        self._expiries: list[tuple[float, Fault]] = []
        self._fault_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._timeline = ChannelFaultTimeline()
        self._reboot_until: float | None = None
        self._reset_state()

    # --- life cycle --------------------------------------------------------------------------

    def start(self, stream_host: str, stream_port: int) -> None:
        """Open the single-socket stream port (bound now, so a conflict shows at once)."""
        self._stream_host = stream_host
        self._stream_base_port = stream_port
        self.generator.stream_host = stream_host
        with self.cond:
            self._ensure_ports(1)
        self._ticker = threading.Thread(
            target=self._tick_loop, name=f"{self.name}-tick", daemon=True
        )
        self._ticker.start()

    def stop(self) -> None:
        with self.cond:
            self._stopped = True
            self.cond.notify_all()
            ports, self.ports = self.ports, []
            self.generator.close_streams()
        self.network.forget(self)
        for port in ports:
            port.close()
        for port in ports:
            port.join()
        if self._ticker is not None:
            self._ticker.join(2.0)

    def _reset_state(self) -> None:
        """Power-on state (boot and reboot)."""
        self.state = ModuleState.IDLE
        self.input_status = InputStatus.UNKNOWN
        self.tag = 1
        self.transducer_tag = 0
        self.detect_until: float | None = None
        self.detected: list[Any] | None = None
        self.single_module = True
        self.setup: AppliedSetup | None = None
        self.acquisition: Acquisition | None = None
        self.settle_until: float | None = None
        self.sync_requested = False
        self.session_open = False  # from create until finish: recordingStatus is reported
        self.measurement: Measurement | None = None
        self.last_measurement: dict[str, Any] | None = None
        """The measurement summary (blocks sent per port) as it was at the last finish."""
        self.history: dict[tuple[str, int], str] = {}
        self.levels: dict[int, tuple[float, float]] = {}
        self.published_elapsed = 0
        self.sync: dict[str, Any] = {"mode": "stand-alone"}
        self.ptp_since: float | None = None
        self.published_ptp = self._compute_ptp(time.monotonic())
        self.time_set_ms: int | None = None
        self.generator.reset()

    def reachable(self) -> bool:
        if self._reboot_until is not None:
            return False
        return ("unreachable", None) not in self._faults

    @property
    def is_ptp(self) -> bool:
        return self.sync.get("mode") == "ptp"

    def _changed(self) -> None:
        self.tag += 1
        self.cond.notify_all()

    def _ensure_ports(self, count: int) -> None:
        while len(self.ports) < count:
            i = len(self.ports)
            port = self._stream_base_port + i if self._stream_base_port else 0
            self.ports.append(
                StreamPort(
                    f"{self.name} stream {i + 1}",
                    self._stream_host,
                    port,
                    self.cond,
                    self._block_quality,
                    self.reachable,
                    self.options.buffer_seconds,
                )
            )

    def _trim_ports(self, count: int) -> None:
        extra = self.ports[count:]
        del self.ports[count:]
        for port in extra:
            port.close()

    # --- the clock ---------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        with self.cond:
            while not self._stopped:
                deadline = self.advance()
                wait = 1.0 if deadline is None else deadline - time.monotonic()
                self.cond.wait(min(1.0, max(0.002, wait)))

    def advance(self) -> float | None:
        """Apply everything that time has made happen; the next moment something will."""
        with self.cond:
            mono = time.monotonic()
            deadlines: list[float] = []
            changed = False
            if self._reboot_until is not None:
                if mono >= self._reboot_until:
                    self._reboot_until = None
                    log.info("%s: reboot complete", self.name)
                    self.cond.notify_all()
                else:
                    deadlines.append(self._reboot_until)
            for deadline, fault in list(self._expiries):
                if mono >= deadline:
                    self._expiries.remove((deadline, fault))
                    self._set_fault(fault, False, "duration over")
            if self.detect_until is not None:
                if mono >= self.detect_until:
                    self.detect_until = None
                    self.detected = self._detection_result()
                    self.transducer_tag += 1
                    changed = True
                else:
                    deadlines.append(self.detect_until)
            if self.settle_until is not None:
                if mono >= self.settle_until:
                    self.settle_until = None
                    self.input_status = (
                        InputStatus.SYNCHRONIZED if self.sync_requested else InputStatus.SETTLED
                    )
                    changed = True
                else:
                    deadlines.append(self.settle_until)
            ptp = self._compute_ptp(mono)
            if ptp != self.published_ptp:
                self.published_ptp = ptp
                changed = True
            next_ptp = self._next_ptp_deadline(mono)
            if next_ptp is not None:
                deadlines.append(next_ptp)
            m = self.measurement
            if m is not None and m.t0 is not None:
                now = now_ticks()
                elapsed_ticks = now - m.t0
                for spec in list(self._scheduled):
                    at = int(spec.at_seconds * TICKS_PER_SECOND) if spec.at_seconds else 0
                    if m.stop_tick is None and elapsed_ticks >= at:
                        self._scheduled.remove(spec)
                        self._set_fault(
                            spec.fault, True, f"at {spec.at_seconds:g} s", spec.duration
                        )
                    elif m.stop_tick is None:
                        deadlines.append(mono + (at - elapsed_ticks) / TICKS_PER_SECOND)
                elapsed = m.elapsed_seconds(now)
                if elapsed != self.published_elapsed:
                    self.published_elapsed = elapsed
                    self._refresh_levels()
                    changed = True
                if m.stop_tick is None:
                    next_second = m.t0 + (max(0, elapsed_ticks) // TICKS_PER_SECOND + 1) * (
                        TICKS_PER_SECOND
                    )
                    deadlines.append(mono + (next_second - now) / TICKS_PER_SECOND)
            elif m is not None and m.stop_tick is None:
                deadlines.append(mono + 1.0)
            # Faults set above may have added expiries: collect them last.
            deadlines.extend(deadline for deadline, _fault in self._expiries)
            if changed:
                self._changed()
            return min(deadlines) if deadlines else None

    # --- state checks ------------------------------------------------------------------------

    def _require(self, request: str, *states: ModuleState) -> None:
        if self.state not in states:
            valid = " or ".join(str(s) for s in states)
            raise RestError(
                403, f"{request} is not allowed in state {self.state} (valid in {valid})"
            )

    # --- reboot ------------------------------------------------------------------------------

    def reboot(self) -> list[ModuleEmulator]:
        """Answered first, then the module is gone for ``reboot_seconds`` and comes back Idle."""
        with self.cond:
            self._end_streams()
            self._trim_ports(1)
            touched = self.network.leave_ptp(self) if self.is_ptp else []
            self._reset_state()
            self._reboot_until = time.monotonic() + self.options.reboot_seconds
            self.cond.notify_all()
            log.info("%s: rebooting", self.name)
            return [m for m in touched if m is not self]

    def log_request(self, entry: dict[str, Any]) -> None:
        self.requests.append(entry)


def wake_all(modules: list[ModuleEmulator]) -> None:
    for module in modules:
        with contextlib.suppress(Exception):
            module.wake()
