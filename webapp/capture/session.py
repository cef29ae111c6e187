"""What the orchestrator works on: the modules of a session and their run-time state, the
errors it raises, and the small pure helpers around them (fault changes from a status, error
descriptions, running one call on many modules at once)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.capture import store
from webapp.capture.acoustics import LiveAcoustics
from webapp.capture.events import ChannelFault, Error, Event
from webapp.capture.levels import LiveModule
from webapp.capture.phases import Wait
from webapp.capture.receiver import StreamReceiver
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.openapi.client import ModuleClient, ModuleError
from webapp.openapi.model import FAULT_KINDS, FaultHistory, ModuleInfo, ModuleState


class CaptureBusyError(RuntimeError):
    """The request does not fit what the orchestrator is doing (e.g. arm while recording)."""


class PhaseTimeoutError(Exception):
    """Modules did not reach a state in time. ``modules`` lists their addresses."""

    def __init__(self, message: str, modules: list[str]) -> None:
        super().__init__(message)
        self.modules = modules


class StreamFailure(Exception):
    """A stream socket dropped (or a module sent no samples)."""

    def __init__(self, message: str, module: str) -> None:
        super().__init__(message)
        self.module = module
        self.reported = False


class StopFailure(Exception):
    """``measurements/stop`` failed or went unanswered on some modules: the recording did not
    end cleanly there (each module named; the warnings say what each answered)."""

    def __init__(self, modules: list[ModuleRun]) -> None:
        names = ", ".join(f"module {m.number} ({m.address})" for m in modules)
        super().__init__(f"stopping the measurement failed on {names}")
        self.modules = [m.address for m in modules]
        self.reported = False


class Aborted(Exception):
    """Arming was abandoned by stop() or disarm()."""


@dataclass
class ModuleRun:
    """One module within a session."""

    number: int
    address: str
    client: ModuleClient
    role: str
    info: ModuleInfo | None = None
    status: dict[str, Any] = field(default_factory=dict)
    watch_error: ModuleError | None = None
    gone: bool = False
    """The module stopped answering during the teardown: later steps skip it."""
    troubles: list[str] = field(default_factory=list)
    """What went wrong in stopping and tearing this module down (the module's own words), for
    the sentence that names a module left non-Idle."""
    opened: bool = False
    ptp_configured: bool = False
    transducers: list[dict[str, Any] | None] | None = None
    setup: dict[str, Any] | None = None
    channels: list[int] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    faults: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    live: LiveModule | None = None
    acoustics: LiveAcoustics | None = None
    receivers: list[StreamReceiver] = field(default_factory=list)

    @property
    def state(self) -> tuple[str, str, str]:
        s = self.status
        return (
            str(s.get("moduleState", "")),
            str(s.get("inputStatus", "")),
            str(s.get("ptpStatus", "")),
        )

    def stream_of(self, channel: int) -> tuple[StreamReceiver, int] | None:
        """The receiver carrying ``channel`` and its signal id there (None: not streamed).
        Signal ids number the enabled channels from 1; a multi-socket port carries its
        channel's single-socket id."""
        if channel not in self.channels:
            return None
        sid = self.channels.index(channel) + 1
        for r in self.receivers:
            if r.channel == channel or (r.channel is None and channel in r.channels):
                return r, sid
        return None

    def covered_ticks(self) -> int:
        if not self.receivers:
            return 0
        return min(r.tap.covered_ticks() for r in self.receivers)

    def first_ticks(self) -> int | None:
        firsts = [r.tap.first_ticks for r in self.receivers if r.tap.first_ticks is not None]
        return min(firsts) if firsts else None

    def signal_messages(self) -> int:
        return sum(r.tap.signal_messages for r in self.receivers)


@dataclass
class Session:
    """Modules set up together: from arming to disarming (one or more recordings)."""

    settings: CaptureSettings
    modules: list[ModuleRun]
    bandwidth: str
    sample_rate: int
    armed: bool = False
    closed: bool = False
    measuring: bool = False
    timeline: list[Event] = field(default_factory=list)
    quality: store.QualityChangeLimit = field(default_factory=store.QualityChangeLimit)
    stream_failure: StreamFailure | None = None
    ptp_locked: bool = False
    """Every module has locked onto PTP and the session has not begun to disarm."""
    waveform_feeds: list[Any] = field(default_factory=list)
    """Waveform files being streamed through generator outputs (capture/waveform_streams)."""
    left_non_idle: list[dict[str, Any]] = field(default_factory=list)
    """After the teardown: every opened module that is not Idle (or no longer answers), as
    ``{"number", "address", "state", "reason"}``; empty when all are Idle."""

    @property
    def master(self) -> ModuleRun:
        return self.modules[0]

    @property
    def synchronized(self) -> bool:
        return self.settings.synchronized


@dataclass
class PendingCapture:
    capture_id: str
    name: str
    duration_s: float | None
    folder: Path
    test: dict[str, Any] | None = None
    """This capture's test metadata; None: the session settings'."""
    labels: dict[str, list[dict[str, Any]]] | None = None
    """This capture's channel labels by address; None: the session settings'."""


def fault_changes(m: ModuleRun, status: dict[str, Any]) -> list[Event]:
    """ChannelFault events for the channels whose fault state differs from what ``m`` had."""
    recording = status.get("recordingStatus")
    if not isinstance(recording, dict):
        return []
    channel_status = recording.get("channelStatus")
    if not isinstance(channel_status, list):
        return []
    events: list[Event] = []
    # Only a recording module's history belongs to the measurement the meters show (until the
    # next one starts, the module still reports the last one's).
    measuring = status.get("moduleState") == ModuleState.RECORDER_RECORDING
    for i, entry in enumerate(channel_status):
        if not isinstance(entry, dict):
            continue  # disabled channels are null
        channel = i + 1
        now = tuple(str(FaultHistory.parse(entry.get(k))) for k in FAULT_KINDS)
        before = m.faults.get(channel, ("none", "none", "none"))
        if now[0] != "none" and measuring and m.live is not None:
            m.live.overload(channel)  # the meter's overload latch follows the module's anol
        if now != before:
            m.faults[channel] = now  # type: ignore[assignment]
            events.append(
                ChannelFault(module=m.address, channel=channel, anol=now[0], cmol=now[1], cf=now[2])
            )
    return events


def parallel(items: list[Any], fn: Callable[[Any], Any]) -> None:
    """Run ``fn`` on every item concurrently; re-raise the first failure (in item order)."""
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    errors: list[tuple[int, BaseException]] = []

    def run(index: int, item: Any) -> None:
        try:
            fn(item)
        except Exception as exc:
            errors.append((index, exc))

    threads = [runtime.spawn(run, i, item) for i, item in enumerate(items)]
    for t in threads:
        t.join()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]


def timeout_message(wait: Wait, timeout: float, pending: list[ModuleRun], ptp: bool) -> str:
    def describe(m: ModuleRun) -> str:
        module_state, input_status, ptp_status = m.state
        now = (
            f"ptpStatus {ptp_status or 'unknown'}"
            if ptp
            else f"{module_state or '?'}/{input_status or '?'}"
        )
        return f"module {m.number} ({m.address}, {now})"

    which = ", ".join(describe(m) for m in pending)
    return f"{which} did not {wait.description} within {timeout:g} s"


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, SettingsError):
        return f"bad setting {exc.field}: {exc.message}"
    return str(exc) or type(exc).__name__


def error_event(exc: BaseException, reason: str) -> Error:
    if isinstance(exc, ModuleError):
        return Error(message=reason, module=exc.module, request=exc.request)
    if isinstance(exc, PhaseTimeoutError):
        return Error(message=reason, module=exc.modules[0] if exc.modules else None)
    if isinstance(exc, StreamFailure):
        return Error(message=reason, module=exc.module, request="stream")
    return Error(message=reason)
