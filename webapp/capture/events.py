"""Typed events the orchestrator emits, and a tiny publish/subscribe bus.

The orchestrator publishes; the terminal printer, the Socket.IO bridge, the capture store and
tests subscribe. Nothing here knows about any of them. Every event turns into a plain dict
(``to_dict``) with a ``kind`` key, which is what ``capture.json`` stores and what the web layer
pushes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from webapp.openapi import units

log = logging.getLogger(__name__)


class Phase(StrEnum):
    """Where a capture is. Order follows the sequence of the multi-module tutorial."""

    IDLE = "idle"
    VALIDATING = "validating"
    PTP_SYNC = "ptp-sync"
    PTP_LOCK = "ptp-lock"
    OPENING = "opening"
    CREATING = "creating"
    DETECTING = "detecting"
    CONFIGURING = "configuring"
    SETTLING = "settling"
    SYNCHRONIZING = "synchronizing"
    STARTING_STREAM = "starting-stream"
    ARMED = "armed"
    CONNECTING = "connecting"
    MONITORING = "monitoring"
    """The measurement runs and is shown live; recordings are cut from it (windows)."""
    RECORDING = "recording"
    STOPPING = "stopping"
    FINISHING = "finishing"
    CLOSING = "closing"
    DISARMING = "disarming"
    COMPLETED = "completed"
    FAILED = "failed"


class Outcome(StrEnum):
    COMPLETED = "completed"  # ran for its duration
    STOPPED = "stopped"  # stopped early by a user
    FAILED = "failed"  # an error ended it
    INTERRUPTED = "interrupted"  # the writing process died (SIGKILL, power loss) mid-capture


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)
    """Wall-clock time of the event (seconds since the epoch)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind
        return out


@dataclass(frozen=True)
class PhaseChanged(Event):
    kind: ClassVar[str] = "phase"
    phase: str
    previous: str
    detail: str = ""


@dataclass(frozen=True)
class ModuleStatus(Event):
    """A module's state variables as its onchange answer last reported them."""

    kind: ClassVar[str] = "module-status"
    module: str
    module_state: str
    input_status: str
    ptp_status: str


@dataclass(frozen=True)
class PtpProgress(Event):
    kind: ClassVar[str] = "ptp"
    module: str
    status: str
    locked: bool
    elapsed_s: float
    timeout_s: float
    expected_s: float = 120.0
    """How long locking usually takes (webapp/capture/ptp.py), for the progress bar."""
    hint: str = ""
    """Why the module may not be locking, when that can be told (else empty)."""


@dataclass(frozen=True)
class PtpLockChanged(Event):
    """A module lost its PTP lock, or regained it, after every module had locked (while the
    session relies on the lock: from the lock wait until the teardown leaves the domain)."""

    kind: ClassVar[str] = "ptp-lock"
    module: str
    number: int
    locked: bool
    ptp_status: str


@dataclass(frozen=True)
class TransducersDetected(Event):
    kind: ClassVar[str] = "transducers"
    module: str
    transducers: list[dict[str, Any] | None]
    """One entry per input channel (JSON as the module reports it), None where none was found."""


@dataclass(frozen=True)
class ChannelsConfigured(Event):
    """A module's channel setup as it was PUT at arming (:func:`webapp.capture.setup.applied_channels`):
    the range, filter and transducer each "auto" of the user's setup stood for."""

    kind: ClassVar[str] = "configured"
    module: str
    bandwidth: str
    channels: list[dict[str, Any]]


@dataclass(frozen=True)
class RecordingTime(Event):
    kind: ClassVar[str] = "recording-time"
    elapsed_s: float
    duration_s: float | None
    """None when recording until stopped."""


@dataclass(frozen=True)
class ChannelFault(Event):
    """Fault history of one channel changed: each of anol/cmol/cf is none, curr or prev."""

    kind: ClassVar[str] = "channel-fault"
    module: str
    channel: int
    anol: str
    cmol: str
    cf: str


@dataclass(frozen=True)
class DataQualityChanged(Event):
    """A DataQuality message in a module's stream changed a signal's validity flags."""

    kind: ClassVar[str] = "data-quality"
    module: str
    channel: int
    signal_id: int
    validity: int
    flags: list[str]
    stream_time_s: float


@dataclass(frozen=True)
class StreamStats(Event):
    kind: ClassVar[str] = "stream-stats"
    module: str
    bytes_received: int
    rate_bps: float
    """Bytes per second over the last interval."""


@dataclass(frozen=True)
class Levels(Event):
    """Live levels of a module's enabled channels over the last interval."""

    kind: ClassVar[str] = "levels"
    module: str
    levels: list[dict[str, Any]]
    """Each a :func:`webapp.openapi.units.readout` (rms, peak, unit, its reference, db, peak_db,
    dbfs, ...) with "channel", "clipped" (this block) and "overload" (latched)."""


@dataclass(frozen=True)
class Waveform(Event):
    """A decimated stretch of one channel, for display only (never for storage)."""

    kind: ClassVar[str] = "waveform"
    module: str
    channel: int
    sample_rate: float
    unit: str
    values: Any
    """A float32 numpy array; ``to_dict`` gives its bytes so pushes can use binary frames."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "t": self.t,
            "module": self.module,
            "channel": self.channel,
            "sample_rate": self.sample_rate,
            "unit": self.unit,
            **units.describe(self.unit),
        }
        values = self.values
        out["values"] = values.astype("<f4").tobytes() if hasattr(values, "astype") else values
        return out


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - the natural name inside this module's namespace
    kind: ClassVar[str] = "warning"
    message: str
    module: str | None = None


@dataclass(frozen=True)
class Error(Event):
    kind: ClassVar[str] = "error"
    message: str
    module: str | None = None
    request: str | None = None


@dataclass(frozen=True)
class CapturePrepared(Event):
    """Someone pressed Start or Arm: what is being prepared, before anything records, so every
    viewer sees it from that moment (``capture_id`` empty for Arm)."""

    kind: ClassVar[str] = "capture-prepared"
    capture_id: str
    name: str
    duration_s: float | None
    modules: list[str]
    action: str
    """"start" or "arm"."""


@dataclass(frozen=True)
class CaptureStarted(Event):
    kind: ClassVar[str] = "capture-started"
    capture_id: str
    name: str
    folder: str
    modules: list[str]
    duration_s: float | None


@dataclass(frozen=True)
class CaptureFinished(Event):
    kind: ClassVar[str] = "capture-finished"
    capture_id: str
    outcome: str
    reason: str
    folder: str


@dataclass(frozen=True)
class SoundLevels(Event):
    """Sound level meter figures and band levels of one channel somebody looks at
    (:mod:`webapp.dsp.slm`): ``levels`` holds LAF, LAS, LCF, LZF, LAeq, LCeq, LZeq, LAFmax,
    LCpeak, LZpeak (dB re the unit's ISO 1683 reference, written in ``reference``), the time
    they run ``since`` and the band levels ``bands`` ("1", "3": labels, mid-band frequencies,
    Z levels and the A and C corrections at each mid-band)."""

    kind: ClassVar[str] = "sound-levels"
    module: str
    channel: int
    levels: dict[str, Any]


@dataclass(frozen=True)
class GeneratorChanged(Event):
    """A generator output started or stopped (by hand, or with a recording): ``output`` the
    ``generator/output`` object it runs (None once stopped), ``how`` "hand" or "recording",
    ``note`` why it stopped when nobody asked (the recorder was closed)."""

    kind: ClassVar[str] = "generator"
    module: str
    number: int
    running: bool
    how: str
    output: dict[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True)
class CrossSpectra(Event):
    """Auto and cross spectra for a live FRF somebody looks at (:mod:`webapp.capture.livefrf`):
    the mean per segment of the ``segments`` since the previous one, lines 0…``lines`` at
    ``df`` Hz. ``data`` is float32 LE (a binary attachment): Gxx, then per response Gyy,
    Re Gxy, Im Gxy, each ``lines + 1`` values (unit²/Hz). Viewers average them (weighted by
    ``segments``) and form H1 = Gxy/Gxx, H2 = Gyy/Gyx and γ² themselves."""

    kind: ClassVar[str] = "frf"
    key: str
    reference: dict[str, Any]
    responses: list[dict[str, Any]]
    lines: int
    df: float
    sample_rate: float
    segments: int
    units: dict[str, Any]
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "key", "reference", "responses", "lines", "df", "sample_rate", "segments",
            "units", "data", "t",
        )}  # fmt: skip
        out["kind"] = self.kind
        return out


@dataclass(frozen=True)
class Spectrum(Event):
    """An averaged spectrum of a channel somebody looks at, in the window and lines that
    viewer chose (:mod:`webapp.dsp.spectrum`): ``ms`` the mean square per line (float32 LE
    bytes: Socket.IO sends it as a binary attachment), lines 0…``lines`` at ``df`` Hz,
    ``frames`` FFT frames averaged since the previous one."""

    kind: ClassVar[str] = "spectrum"
    module: str
    channel: int
    window: str
    lines: int
    df: float
    enbw_hz: float
    frames: int
    unit: str
    ms: bytes

    def to_dict(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "module",
                "channel",
                "window",
                "lines",
                "df",
                "enbw_hz",
                "frames",
                "unit",
                "ms",
                "t",
            )
        }
        out["kind"] = self.kind
        out.update(units.describe(self.unit))
        return out  # fmt: skip


@dataclass(frozen=True)
class MonitorStatus(Event):
    """The monitoring session: ring buffers, the recording plan, trigger, windows so far."""

    kind: ClassVar[str] = "monitor"
    measurement: str
    """Id of the monitoring session (captures cut from it name it in their ``window``)."""
    active: bool
    ring_s: float
    """Stream time the ring buffers hold (the least of every stream's)."""
    ring_retention_s: float
    ring_bytes: int
    plan: dict[str, Any] | None
    trigger: str
    """"off", "armed", "holding" (hold-off or a window still being written) or "done"."""
    events: int
    segments: int
    recording: list[str]
    """Captures being written now."""
    recorded_s: float
    disk_s: float | None
    """Seconds of recording the capture folder's disk still takes (None when not recording)."""


@dataclass(frozen=True)
class TriggerFired(Event):
    kind: ClassVar[str] = "trigger"
    capture_id: str
    module: int
    channel: int
    slope: str
    level: float
    unit: str
    time_ticks: int
    """Time of the first sample through the level (2^-32 s since 1970)."""
    event: int
    """1 for the first event of the plan."""
    manual: bool = False


Subscriber = Callable[[Event], None]


def log_problems(event: Event) -> None:
    """A subscriber that writes every warning, error and finished capture to the log (the
    dashboard's own log: what went wrong stays there after the browsers are closed)."""
    if isinstance(event, Error):
        where = " ".join(x for x in (event.module, event.request) if x)
        log.error("%s%s", f"{where}: " if where else "", event.message)
    elif isinstance(event, Warning):
        log.warning("%s%s", f"{event.module}: " if event.module else "", event.message)
    elif isinstance(event, CaptureFinished):
        log.info(
            "capture %s %s%s",
            event.capture_id,
            event.outcome,
            f": {event.reason}" * bool(event.reason),
        )


class EventBus:
    """Synchronous fan-out. Subscribers must be quick (queue or coalesce, never block): the
    publisher is the orchestrator or a stream receiver, and a slow subscriber slows them."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not fn]

        return unsubscribe

    def publish(self, event: Event) -> None:
        for fn in self._subscribers:  # a snapshot: the list is replaced, never mutated
            try:
                fn(event)
            except Exception:  # one broken subscriber must not break the capture
                log.exception("event subscriber %r failed on %s", fn, event.kind)
