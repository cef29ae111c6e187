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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webapp.emulator.acquisition import Acquisition, SignalPlan, Variant
from webapp.emulator.clock import TICKS_PER_SECOND, elapsed_text, next_grid_time, now_ticks
from webapp.emulator.faults import (
    CHANNEL_FAULT_VALIDITY,
    CHANNEL_FAULTS,
    ChannelFaultTimeline,
    Fault,
    FaultKind,
    FaultSpec,
    check_fault_fits,
    normalise_path,
)
from webapp.emulator.generator import Generator, default_loopbacks, loop_feed_factory
from webapp.emulator.network import PtpNetwork, TriggerGroup
from webapp.emulator.rig import RigChannel, default_rig, module_serial
from webapp.emulator.setup import AppliedSetup, SetupError, default_setup, parse_setup
from webapp.emulator.streamer import Measurement, StreamPort
from webapp.emulator.waveforms import Loopback
from webapp.openapi.model import (
    MODULE_TYPES,
    PTP_DOMAIN_MAX,
    InputStatus,
    ModuleState,
    PtpStatus,
    as_bool,
)
from webapp.openapi.stream import Validity

log = logging.getLogger(__name__)

FIRMWARE = "2.10.0.501"
FIN_LINGER_SECONDS = 0.05
"""After a stream's end of file went out: time for the reader to see it before the stop answer."""


@dataclass
class EmulatorOptions:
    """Timings and limits; every one a parameter so tests run in seconds (PROTOCOL.md §11)."""

    ptp_lock_seconds: float = 5.0
    teds_seconds: float = 1.0
    settle_seconds: float = 0.5
    start_latency_seconds: float = 0.05
    """Delay from the trigger master's start request to T0 (then rounded up to the grid)."""
    buffer_seconds: float = 5.0
    """Send buffer per stream port; a reader further behind loses whole blocks (Overrun)."""
    stop_linger_seconds: float = 0.2
    """After the last module of a trigger group stopped: time for readers to drain before the
    stream connections are closed."""
    reboot_seconds: float = 3.0
    block_values: int = 4096
    max_connections: int = 10
    long_poll_seconds: float = 30.0
    request_log_size: int = 5000
    sd_card: bool = False
    calibration_shaker: bool = False
    """Channel 2's accelerometer sits on a handheld calibration shaker (10 m/s² RMS at
    159.2 Hz) instead of the vibrating structure."""
    serial: int | None = None
    """Serial number of the first module (index 0); module i reports ``serial + i``. None: a
    number derived from the type and the index (distinct within one rig)."""
    loopbacks: tuple[str, ...] | None = None
    """Generator output -> input wires ('1>1', '1>2:1000:0.02', see waveforms.Loopback) of
    every module with outputs; None: the default rig's (a 3160's output 1 to its input 1)."""

    def __post_init__(self) -> None:
        bv = self.block_values
        if bv < 4 or bv > 8192 or bv & (bv - 1):
            raise ValueError("block_values must be a power of two from 4 to 8192")


class RestError(Exception):
    """An answer other than success: status code and a one-line plain-text message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _get(body: Any, key: str, default: Any = None) -> Any:
    """A key of a JSON object, matched case-insensitively (clients mis-case keys)."""
    if not isinstance(body, dict):
        return default
    if key in body:
        return body[key]
    low = key.lower()
    for k, v in body.items():
        if str(k).lower() == low:
            return v
    return default


class ModuleEmulator:
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

    # --- PTP ---------------------------------------------------------------------------------

    def _compute_ptp(self, mono: float) -> PtpStatus:
        if not self.is_ptp:
            return PtpStatus.LOCKED
        if ("ptp-no-lock", None) in self._faults:
            return PtpStatus.UNLOCKED
        ref = self.network.lock_reference(self)
        if ref is None:
            return PtpStatus.UNLOCKED
        span = self.options.ptp_lock_seconds
        el = mono - ref
        if el >= span:
            return PtpStatus.LOCKED
        if el >= span * 2 / 3:
            return PtpStatus.LOCKING
        if el >= span / 3:
            return PtpStatus.SETTLING
        return PtpStatus.UNLOCKED

    def _next_ptp_deadline(self, mono: float) -> float | None:
        if not self.is_ptp or ("ptp-no-lock", None) in self._faults:
            return None
        ref = self.network.lock_reference(self)
        if ref is None:
            return None
        span = self.options.ptp_lock_seconds
        for step in (span / 3, span * 2 / 3, span):
            if ref + step > mono:
                return ref + step
        return None

    def wake(self) -> None:
        """Something outside the module changed (a PTP master appeared): re-evaluate now."""
        with self.cond:
            self.advance()
            self.cond.notify_all()

    # --- answers -----------------------------------------------------------------------------

    def module_info(self) -> dict[str, Any]:
        p = self.profile
        info: dict[str, Any] = {
            "license": "permanentLicense",
            "module": {
                "frontpanel": {
                    "serial": 200_000 + self.serial % 100_000,
                    "type": {"model": "", "number": p.frontpanel, "prefix": "UA", "variant": "030"},
                    "version": {"hardware": "2.0.0.0"},
                },
                "serial": self.serial,
                "type": {"model": p.model, "number": p.number, "prefix": "", "variant": p.variant},
                "version": {"firmware": FIRMWARE, "hardware": "1.3.0.0"},
            },
            "moduleState": str(self.state),
            "numberOfInputChannels": p.input_channels,
            "numberOfOutputChannels": p.output_channels,
            "preampInputSupported": True,
            "sdCardInserted": self.options.sd_card,
            "supportedFilters": list(p.filters),
            "supportedOutputRanges": list(p.output_ranges),
            "supportedRanges": list(p.ranges),
            "supportedSampleRates": p.sample_rates,
            "syncModeChangeSupported": p.ptp,
        }
        if p.connectors:
            info["supportedConnectors"] = list(p.connectors)
        return info

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "moduleState": str(self.state),
            "inputStatus": str(self.input_status),
            "ptpStatus": str(self.published_ptp),
            "transducerDetectionActive": self.detect_until is not None,
            "lastUpdateTag": self.tag,
            "lastSdCardUpdateTag": 0,
            "lastTransducerUpdateTag": self.transducer_tag,
            "sdCardInserted": self.options.sd_card,
            "buttonEnabled": True,
            "canStartStreaming": self.state
            in (ModuleState.RECORDER_STREAMING, ModuleState.RECORDER_RECORDING)
            or self.input_status is InputStatus.SYNCHRONIZED,
            "recordingMode": "Single" if self.session_open else "",
            "fanStatus": {"event": "", "speed": "", "mode": ""},
            "batteryStatus": {"event": ""},
            "temperatureStatus": {"event": "", "level": ""},
        }
        if self.session_open:
            out["recordingStatus"] = self._recording_status()
        return out

    def _recording_status(self) -> dict[str, Any]:
        m = self.measurement
        recording = self.state is ModuleState.RECORDER_RECORDING
        channels: list[dict[str, Any] | None] = []
        enabled = (
            {c.channel for c in self.setup.channels if c.enabled}
            if self.setup
            else set(range(1, self.profile.input_channels + 1))
        )
        for ch in range(1, self.profile.input_channels + 1):
            if ch not in enabled:
                channels.append(None)
                continue
            rms, peak = self.levels.get(ch, (0.0, 0.0))
            entry: dict[str, Any] = {"rms": rms, "peak": peak}
            for kind_field in ("cf", "anol", "cmol"):
                entry[kind_field] = self.history.get((kind_field, ch), "none")
            channels.append(entry)
        return {
            "measState": "Streaming" if recording else "Idle",
            "errorState": 0,
            "recordingUri": "",
            "timeElapsed": elapsed_text(self.published_elapsed if m else 0),
            "timeRemaining": "00:00:00",
            "spaceRemaining": 0,
            "bufferStatus": {
                "cpu": {"fullPercentage": 0, "fullPercentageMax": 0},
                "dsp": {"fullPercentage": 0, "fullPercentageMax": 0},
            },
            "channelStatus": channels,
        }

    def wait_status(self, last: int | None) -> dict[str, Any]:
        """GET onchange: at once, or (``last`` equal to the tag) when something changed or the
        long-poll limit passed."""
        with self.cond:
            self.advance()
            if last is not None and last == self.tag:
                end = time.monotonic() + self.options.long_poll_seconds
                while self.tag == last and not self._stopped:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self.cond.wait(min(remaining, 1.0))
                    self.advance()
            return self.status()

    def sync_settings(self) -> dict[str, Any]:
        s = dict(self.sync)
        ptp = s.get("mode") == "ptp"
        out = {
            "mode": s.get("mode", "stand-alone"),
            "domain": s.get("domain", 0),
            "preferredMaster": bool(s.get("preferredMaster", False)) if ptp else False,
            "triggerMaster": bool(s.get("triggerMaster", s.get("preferredMaster", False)))
            if ptp
            else False,
            "usegps": bool(s.get("usegps", False)),
            "switchmethod": s.get("switchmethod", "ptp"),
            "UtcTaiOffset": s.get("UtcTaiOffset", 37),
        }
        if "triggerDomain" in s:
            out["triggerDomain"] = s["triggerDomain"]
        return {"synchronization": out}

    # --- state checks ------------------------------------------------------------------------

    def _require(self, request: str, *states: ModuleState) -> None:
        if self.state not in states:
            valid = " or ".join(str(s) for s in states)
            raise RestError(
                403, f"{request} is not allowed in state {self.state} (valid in {valid})"
            )

    # --- requests ----------------------------------------------------------------------------

    def set_time(self, ms: int) -> None:
        # The emulated clock is the host's UTC clock (already past 2009), so like a real module
        # whose clock is set the request changes nothing; it is only remembered.
        with self.cond:
            self.time_set_ms = ms

    def put_syncmode(self, body: Any) -> list[ModuleEmulator]:
        """Returns the modules to wake (outside this module's lock)."""
        if not isinstance(body, dict):
            raise RestError(400, 'syncmode needs a JSON object {"synchronization": {...}}')
        sync = _get(body, "synchronization")
        if not isinstance(sync, dict):
            raise RestError(400, "syncmode: the body has no 'synchronization' object")
        with self.cond:
            self._require("PUT /rest/rec/syncmode", ModuleState.IDLE)
            mode = _get(sync, "mode")
            if mode is None:
                # Only settime/difftime: a time setting, the mode stays.
                if _get(sync, "settime") is None:
                    raise RestError(400, "syncmode: 'mode' is missing (ptp or stand-alone)")
                return []
            mode = str(mode).strip().lower()
            if mode not in ("ptp", "stand-alone"):
                raise RestError(400, f"syncmode: mode {mode!r} is not 'ptp' or 'stand-alone'")
            new: dict[str, Any] = {"mode": mode}
            for key in ("usegps", "switchmethod", "UtcTaiOffset", "settime", "difftime"):
                value = _get(sync, key)
                if value is not None:
                    new[key] = as_bool(value) if key == "usegps" else value
            if mode == "ptp":
                if not self.profile.ptp:
                    raise RestError(
                        400,
                        f"PTP synchronization is not supported by module type "
                        f"{self.profile.number}: use mode stand-alone",
                    )
                domain = _get(sync, "domain")
                try:
                    domain = int(domain)
                except (TypeError, ValueError):
                    raise RestError(400, "syncmode: ptp mode needs an integer 'domain'") from None
                if not 0 <= domain <= PTP_DOMAIN_MAX:
                    raise RestError(400, f"syncmode: domain {domain} is outside 0..127")
                preferred = as_bool(_get(sync, "preferredMaster", False))
                new["domain"] = domain
                new["preferredMaster"] = preferred
                new["triggerMaster"] = as_bool(_get(sync, "triggerMaster", preferred))
                trigger_domain = _get(sync, "triggerDomain")
                if trigger_domain is not None:
                    try:
                        new["triggerDomain"] = int(trigger_domain)
                    except (TypeError, ValueError):
                        raise RestError(
                            400, "syncmode: 'triggerDomain' must be an integer"
                        ) from None
            old_ptp = self.is_ptp
            self.sync = new
            if mode == "ptp":
                touched = self.network.join_ptp(self, new["domain"], new["preferredMaster"])
            else:
                touched = self.network.leave_ptp(self) if old_ptp else []
            self.published_ptp = self._compute_ptp(time.monotonic())
            self._changed()
            return [m for m in touched if m is not self]

    def open(self, body: Any) -> None:
        with self.cond:
            self._require("PUT /rest/rec/open", ModuleState.IDLE)
            detect = as_bool(_get(body, "performTransducerDetection", True))
            self.single_module = as_bool(_get(body, "singleModule", True))
            self.state = ModuleState.RECORDER_OPENED
            self.input_status = InputStatus.SAMPLING
            if detect:
                self._start_detection()
            self._changed()

    def close(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/close", ModuleState.RECORDER_OPENED)
            self._end_streams()
            self.state = ModuleState.IDLE
            self.input_status = InputStatus.UNKNOWN
            self.session_open = False
            self.generator.reset()
            self._changed()

    def create(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/create", ModuleState.RECORDER_OPENED)
            self.state = ModuleState.RECORDER_CONFIGURING
            self.session_open = True
            self._clear_setup()
            self._reset_history()
            self._changed()

    def cancel(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/cancel", ModuleState.RECORDER_CONFIGURING)
            self.state = ModuleState.RECORDER_OPENED
            self.input_status = InputStatus.SAMPLING
            self.session_open = False
            self._clear_setup()
            self._changed()

    def disable_all(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/channels/all/disable", ModuleState.RECORDER_STREAMING)
            self._end_streams()
            self.state = ModuleState.RECORDER_CONFIGURING
            self.input_status = InputStatus.SAMPLING
            self._clear_setup()
            self._changed()

    def _clear_setup(self) -> None:
        self.setup = None
        self.acquisition = None
        self.settle_until = None
        self.sync_requested = False
        self.levels = {}

    def default_setup(self) -> dict[str, Any]:
        # Multi-module (PTP or frame) sessions stream: HBK's multi-module tutorial measures
        # with the default setup unchanged and reads the data from the socket. A single module
        # defaults to its SD card, as the single-module tutorial says.
        multi = self.state is not ModuleState.IDLE and not self.single_module
        return default_setup(self.profile, "socket" if multi else "sd")

    def get_setup(self) -> dict[str, Any]:
        with self.cond:
            self._require(
                "GET /rest/rec/channels/input",
                ModuleState.RECORDER_CONFIGURING,
                ModuleState.RECORDER_STREAMING,
                ModuleState.RECORDER_RECORDING,
            )
            return self.setup.to_json() if self.setup else self.default_setup()

    def put_setup(self, body: Any) -> None:
        with self.cond:
            self._require("PUT /rest/rec/channels/input", ModuleState.RECORDER_CONFIGURING)
        try:
            applied = parse_setup(body, self.profile)
        except SetupError as exc:
            raise RestError(400, f"channel setup rejected: {exc}") from None
        acquisition = Acquisition(
            applied.channels,
            self.rig,
            self.index,
            self.options.block_values,
            loop_feed_factory(self),
        )
        acquisition.warm_feeds()  # an output already running: its loop is built here
        with self.cond:
            self._require("PUT /rest/rec/channels/input", ModuleState.RECORDER_CONFIGURING)
            self.setup = applied
            self.acquisition = acquisition
            self.sync_requested = False
            self._reset_history()
            self._refresh_levels()
            if applied.multi_socket:
                self._ensure_ports(len(acquisition.signals))
            else:
                self._trim_ports(1)
            if self.single_module:
                self.state = ModuleState.RECORDER_STREAMING
                self.input_status = InputStatus.STREAMING
                self.settle_until = None
            else:
                self.input_status = InputStatus.SAMPLING
                self.settle_until = time.monotonic() + self.options.settle_seconds
            self._changed()
            self.advance()

    def synchronize(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/synchronize", ModuleState.RECORDER_CONFIGURING)
            self._require_multi("PUT /rest/rec/synchronize")
            if self.setup is None:
                raise RestError(403, "PUT /rest/rec/synchronize: no channel setup has been applied")
            if self.is_ptp and self.published_ptp is not PtpStatus.LOCKED:
                raise RestError(
                    403, f"PUT /rest/rec/synchronize: PTP is not locked ({self.published_ptp})"
                )
            self.sync_requested = True
            if self.settle_until is None:
                self.input_status = InputStatus.SYNCHRONIZED
            self._changed()

    def start_streaming(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/startstreaming", ModuleState.RECORDER_CONFIGURING)
            self._require_multi("PUT /rest/rec/startstreaming")
            if self.input_status is not InputStatus.SYNCHRONIZED:
                raise RestError(
                    403,
                    f"PUT /rest/rec/startstreaming: inputs are {self.input_status}, not "
                    "Synchronized (PUT synchronize first)",
                )
            self.state = ModuleState.RECORDER_STREAMING
            self.input_status = InputStatus.STREAMING
            self._changed()

    def _require_multi(self, request: str) -> None:
        if self.single_module:
            raise RestError(
                403, f"{request} applies only to a recorder opened with singleModule false"
            )

    def finish(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/finish", ModuleState.RECORDER_STREAMING)
            self.last_measurement = self._measurement_snapshot()
            self._end_streams()
            self._trim_ports(1)
            self.state = ModuleState.RECORDER_OPENED
            self.input_status = InputStatus.SAMPLING
            self.session_open = False
            self._clear_setup()
            self.measurement = None
            self._changed()

    def _end_streams(self) -> None:
        for port in self.ports:
            port.end_session()
        self.network.disarm(self)

    def destination_ports(self, multi: bool) -> dict[str, Any]:
        with self.cond:
            name = "destination/sockets" if multi else "destination/socket"
            self._require(
                f"GET /rest/rec/{name}",
                ModuleState.RECORDER_STREAMING,
                ModuleState.RECORDER_RECORDING,
            )
            if not multi:
                return {"tcpPort": self.ports[0].port}
            count = len(self.acquisition.signals) if self.setup and self.setup.multi_socket else 1
            return {"tcpPorts": [p.port for p in self.ports[:count]]}

    # --- detection ---------------------------------------------------------------------------

    def detect(self) -> None:
        with self.cond:
            if self.state is ModuleState.RECORDER_RECORDING:
                raise RestError(
                    403,
                    "transducer detection is not allowed during a measurement (RecorderRecording)",
                )
            self._start_detection()
            self._changed()

    def _start_detection(self) -> None:
        self.detect_until = time.monotonic() + self.options.teds_seconds

    def _detection_result(self) -> list[Any]:
        return [
            r.transducer.to_json(flags_as_int=True) if r.transducer is not None else None
            for r in self.rig
        ]

    def transducers(self) -> list[Any]:
        with self.cond:
            if self.detected is None:
                return [None] * self.profile.input_channels
            return list(self.detected)

    # --- measurement -------------------------------------------------------------------------

    def start_measurement(self) -> None:
        with self.cond:
            self._require("POST /rest/rec/measurements", ModuleState.RECORDER_STREAMING)
            assert self.setup is not None and self.acquisition is not None
            if self.setup.destination == "sd" and not self.options.sd_card:
                raise RestError(
                    403,
                    "POST /rest/rec/measurements: the setup records to SD card and no SD card is inserted",
                )
            acq = self.acquisition
            m = Measurement(acq)
            self.measurement = m
            if self.setup.multi_socket:
                for port, plan in zip(self.ports, acq.signals, strict=False):
                    port.begin(m, [plan])
            else:
                self.ports[0].begin(m, list(acq.signals))
            self.state = ModuleState.RECORDER_RECORDING
            self.published_elapsed = 0
            self._reset_history()
            self._refresh_levels()
            self._changed()
            waits_for_trigger = (
                self.is_ptp and not self.single_module and not self.sync.get("triggerMaster")
            )
            trigger_domain = self.sync.get("triggerDomain", self.sync.get("domain"))
            earliest = now_ticks() + int(self.options.start_latency_seconds * TICKS_PER_SECOND)
        if waits_for_trigger:
            joined = self.network.arm(self, trigger_domain, acq.block_ticks, earliest)
            if joined is not None:
                group, t0 = joined
                self._started(m, group, t0)
            return
        domain = trigger_domain if self.is_ptp and not self.single_module else None
        group, starts = self.network.fire(self, domain, acq.block_ticks, earliest)
        for module, t0 in starts:
            module._started_by_trigger(group, t0)

    def _started_by_trigger(self, group: TriggerGroup, t0: int) -> None:
        with self.cond:
            m = self.measurement
            if m is None or m.t0 is not None or m.stop_tick is not None:
                return
            self._started(m, group, t0)

    def _started(self, m: Measurement, group: TriggerGroup, t0: int) -> None:
        with self.cond:
            m.t0 = t0
            m.group = group
            log.info("%s: measurement starts at T0 = %d ticks", self.name, t0)
            self.cond.notify_all()

    def stop_measurement(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/measurements/stop", ModuleState.RECORDER_RECORDING)
            m = self.measurement
            assert m is not None
            m.stop_tick = now_ticks()
            if m.t0 is not None:
                self.published_elapsed = m.elapsed_seconds(m.stop_tick)
            self.state = ModuleState.RECORDER_STREAMING
            self._changed()
            group = m.group
            if group is None:
                self.network.disarm(self)
                m.fin_allowed = True
                self.cond.notify_all()
                return
            last = group.member_stopped(self)
        if last:
            self._end_group(group)

    def _end_group(self, group: TriggerGroup) -> None:
        """The last module of a trigger group stopped: end every member's stream.

        HBK's tutorial clients read all modules in one thread that returns at the first end of
        file, and close their sockets right after the stop answer. So: first every member's
        final blocks go out; with several modules the readers get time to drain them before
        any connection is closed; then the connections are closed; and the stop is answered
        only a moment after that, so the reader has seen the end before its socket is closed.
        """
        members = list(group.members)
        limit = max(2.0, self.options.buffer_seconds)
        _wait_until(lambda: all(m._stream_state(group)[0] for m in members), limit)
        if len(members) > 1:
            time.sleep(self.options.stop_linger_seconds)
        for member in members:
            member._allow_fin(group)
        _wait_until(lambda: all(m._stream_state(group)[1] for m in members), limit)
        time.sleep(FIN_LINGER_SECONDS)

    def _stream_state(self, group: TriggerGroup) -> tuple[bool, bool]:
        """(final data handed over, connections closed) for this member's group streams."""
        with self.cond:
            m = self.measurement
            if m is None or m.group is not group:
                return True, True
            return all(p.drained() for p in self.ports), all(p.ended() for p in self.ports)

    def _allow_fin(self, group: TriggerGroup) -> None:
        with self.cond:
            m = self.measurement
            if m is not None and m.group is group:
                m.fin_allowed = True
                self.cond.notify_all()

    # --- levels and fault history ------------------------------------------------------------

    def _reset_history(self) -> None:
        self.history = {}
        for kind, ch in self._timeline.current:
            self.history[(CHANNEL_FAULTS[kind], ch)] = "curr"
        if self.acquisition is not None:
            for plan in self.acquisition.signals:
                if plan.clips:
                    self.history[("anol", plan.channel)] = "curr"

    def _refresh_levels(self) -> None:
        if self.acquisition is None:
            self.levels = {}
            return
        active = self._timeline.current
        levels = {}
        for plan in self.acquisition.signals:
            variant, _validity = self._quality(plan, active)
            levels[plan.channel] = plan.level(variant)
        self.levels = levels

    def _quality(
        self, plan: SignalPlan, active: frozenset[tuple[FaultKind, int]]
    ) -> tuple[Variant, int]:
        validity = Validity.CLIPPED if plan.clips else Validity.VALID
        variant = Variant.NORMAL
        for kind, ch in active:
            if ch != plan.channel:
                continue
            validity |= CHANNEL_FAULT_VALIDITY[kind]
            if kind is FaultKind.CABLE_FAULT:
                variant = Variant.DEAD
            elif kind is FaultKind.OVERLOAD and variant is Variant.NORMAL:
                variant = Variant.OVERLOAD
        if variant is Variant.DEAD:
            validity &= ~Validity.CLIPPED
        return variant, int(validity)

    def _block_quality(self, plan: SignalPlan, tick: int) -> tuple[Variant, int]:
        return self._quality(plan, self._timeline.at(tick))

    # --- faults ------------------------------------------------------------------------------

    def schedule_fault(self, spec: FaultSpec) -> None:
        """A fault from the command line or the endpoint: now, or SECONDS into a measurement."""
        check_fault_fits(spec.fault, self.profile)
        with self.cond:
            if spec.at_seconds is None:
                self._set_fault(spec.fault, True, "requested", spec.duration)
            else:
                self._scheduled.append(spec)
                self._fault_log.append(
                    {
                        "time": time.time(),
                        "fault": spec.fault.describe(),
                        "event": f"scheduled at {spec.at_seconds:g} s into the measurement",
                    }
                )
            self.cond.notify_all()

    def clear_fault(self, fault: Fault | None) -> int:
        """Clear one fault (or all with None); scheduled ones are dropped too."""
        with self.cond:
            targets = list(self._faults.values()) if fault is None else [fault]
            self._scheduled = [s for s in self._scheduled if fault is not None and s.fault != fault]
            cleared = 0
            for f in targets:
                if f.key in self._faults:
                    self._set_fault(f, False, "cleared")
                    cleared += 1
            return cleared

    def _set_fault(
        self, fault: Fault, active: bool, why: str, duration: float | None = None
    ) -> None:
        kind = fault.kind
        self._fault_log.append(
            {
                "time": time.time(),
                "fault": fault.describe(),
                "event": ("set " if active else "clear ") + why,
            }
        )
        log.info(
            "%s: fault %s %s (%s)", self.name, fault.describe(), "set" if active else "cleared", why
        )
        if kind is FaultKind.STREAM_DROP:
            if active:
                for port in self.ports:
                    port.drop_connections()
            return
        if active:
            self._faults[fault.key] = fault
            if duration is not None:
                self._expiries.append((time.monotonic() + duration, fault))
        else:
            self._faults.pop(fault.key, None)
            self._expiries = [(d, f) for d, f in self._expiries if f != fault]
        if kind in CHANNEL_FAULTS:
            self._set_channel_fault(kind, fault.channel, active)
        if kind is FaultKind.PTP_NO_LOCK:
            self.published_ptp = self._compute_ptp(time.monotonic())
        self._changed()

    def _set_channel_fault(self, kind: FaultKind, channel: int, active: bool) -> None:
        now = now_ticks()
        grid = self.acquisition.block_ticks if self.acquisition else 1
        self._timeline.set(kind, channel, active, next_grid_time(now, grid))
        if self.measurement is None or self.measurement.t0 is None:
            self._timeline.prune(now - 60 * TICKS_PER_SECOND)
        key = (CHANNEL_FAULTS[kind], channel)
        if active:
            self.history[key] = "curr"
        elif self.history.get(key) == "curr":
            self.history[key] = "prev"
        self._refresh_levels()

    def fault_http_500(self, path: str) -> bool:
        return ("http-500", normalise_path(path)) in self._faults

    def faults_snapshot(self) -> dict[str, Any]:
        with self.cond:
            return {
                "active": [f.describe() for f in self._faults.values()],
                "scheduled": [
                    {
                        "fault": s.fault.describe(),
                        "at": s.at_seconds,
                        "duration": s.duration,
                    }
                    for s in self._scheduled
                ],
                "log": list(self._fault_log),
            }

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

    def snapshot(self) -> dict[str, Any]:
        """Emulator-side facts for GET /emulator/info (tests, demo)."""
        with self.cond:
            return {
                "index": self.index,
                "name": self.name,
                "type": self.profile.number,
                "serial": self.serial,
                "streamPorts": [p.port for p in self.ports],
                "moduleState": str(self.state),
                "rig": [{"channel": r.channel, "description": r.description} for r in self.rig],
                "generator": self.generator.snapshot(),
                "measurement": self._measurement_snapshot(),
                "lastMeasurement": self.last_measurement,
            }

    def _measurement_snapshot(self) -> dict[str, Any] | None:
        m = self.measurement
        if m is None:
            return None
        return {
            "t0": m.t0,
            "stopTick": m.stop_tick,
            "sampleRate": m.acquisition.sample_rate,
            "blocks": m.total_blocks(),
            "ports": [
                {
                    "port": p.port,
                    "sentBlocks": p.session.sent_blocks if p.session else 0,
                    "droppedBlocks": p.session.dropped_blocks if p.session else 0,
                }
                for p in self.ports
            ],
        }


def _wait_until(condition: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def wake_all(modules: list[ModuleEmulator]) -> None:
    for module in modules:
        with contextlib.suppress(Exception):
            module.wake()
