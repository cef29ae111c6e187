"""The capture orchestrator: many modules, one sample-synchronous capture.

A state machine run in the background (a greenlet under eventlet, a thread otherwise) that
performs the sequence of HBK's multi-module tutorial (see :mod:`webapp.capture.phases`), with
concurrent long polls instead of 1 s polling, a timeout per phase, typed events for everything
(:mod:`webapp.capture.events`) and a teardown that always runs.

Life cycle:

* :meth:`Orchestrator.arm` checks the settings and the modules synchronously, then sets the
  modules up in the background until they stream internally (phase ``armed``).
* :meth:`Orchestrator.start` records. When armed it starts at once; when idle it arms first and
  disarms after the recording; while arming it records as soon as the modules are armed.
* :meth:`Orchestrator.stop` ends a recording early (outcome ``stopped``), or abandons arming.
* :meth:`Orchestrator.disarm` returns the modules to ``Idle``.

Failure anywhere stops the measurement on every module, closes the sockets, finishes and closes
every module that was opened, keeps every byte received, records the error and ends in phase
``failed``. A stream socket that drops is reported the moment it happens.

Status comes from one ``onchange`` long poll per module (a watcher) for the whole session:
PTP progress, state changes and channel faults all arrive through it.

The recording steps are in :mod:`webapp.capture.recording` (a base class), the session's data
and errors in :mod:`webapp.capture.session`, the teardown's requests in
:mod:`webapp.capture.teardown`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.calibration.records import calibrated_transducers
from webapp.capture import store
from webapp.capture.disarming import Disarming
from webapp.capture.diskspace import check_folder, expected_rate
from webapp.capture.events import (
    CaptureFinished,
    CapturePrepared,
    ChannelsConfigured,
    Event,
    EventBus,
    Outcome,
    Phase,
    PhaseChanged,
    TransducersDetected,
    Warning,
)
from webapp.capture.generator import check_generators
from webapp.capture.livefrf import FrfKey, LiveFrfs
from webapp.capture.monitoring import Monitoring, MonitorRequest
from webapp.capture.outputs import HandOutputs, describe_state
from webapp.capture.phases import (
    WAIT_DETECTED,
    Order,
    Step,
    Timeout,
    arm_sequence,
    ordered,
)
from webapp.capture.session import (
    Aborted,
    CaptureBusyError,
    ModuleRun,
    PendingCapture,
    PhaseTimeoutError,
    Session,
    StreamFailure,
    describe_error,
    error_event,
    parallel,
)
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.capture.setup import applied_channels, build_setup, enabled_channel_numbers
from webapp.capture.teardown import (
    walk_to_idle,
)
from webapp.capture.trigger import RecordPlan
from webapp.capture.workersetting import parse_workers
from webapp.openapi.client import ModuleClient, ModuleError
from webapp.openapi.model import (
    ModuleInfo,
    ModuleState,
    bandwidth_for_rate,
    rate_for_bandwidth,
)

log = logging.getLogger(__name__)

STOPPED_BY_USER = "stopped by the user"
STALL_TIMEOUT_S = 5.0
"""A recording fails when a stream brings nothing for this long (or three blocks' time at low
sample rates): the module is gone or no longer sending."""


class Orchestrator(Monitoring, Disarming):
    """Runs captures on LAN-XI modules and emits events on ``bus``; see the module docstring."""

    def __init__(
        self,
        bus: EventBus,
        data_dir: Path,
        client_factory: Callable[[str], ModuleClient] = ModuleClient,
        *,
        live_levels: bool = True,
        waveforms: str = "all",
        stall_timeout_s: float = STALL_TIMEOUT_S,
        receiver_workers: int | str = "auto",
    ) -> None:
        if waveforms not in ("all", "selected", "none"):
            raise ValueError(f"waveforms must be 'all', 'selected' or 'none', not {waveforms!r}")
        self.bus = bus
        self.data_dir = Path(data_dir)
        self.client_factory = client_factory
        self.live_levels = live_levels
        self.stall_timeout_s = stall_timeout_s
        self.waveforms = waveforms
        """Which channels emit Waveform events (one decimated block per channel about five
        times a second, from the blocks already decoded for the levels): "all" channels, the
        "selected" one (:meth:`select_waveform`), or "none"."""
        self.receiver_workers = parse_workers(receiver_workers)
        """Worker processes for a recording's stream receivers: a number, or "auto" (see
        :mod:`webapp.capture.workers`)."""
        self.phase: Phase = Phase.IDLE
        self.current_capture_id: str | None = None
        self.last_capture_id: str | None = None
        self.last_error: str | None = None
        self.last_outcome: str | None = None
        self.last_folder: Path | None = None
        self.stop_reason = STOPPED_BY_USER
        """Why the recording was ended early (the outcome's reason), as the last stop said."""
        self.last_left_non_idle: list[dict[str, Any]] = []
        """The modules the last teardown left non-Idle (see :func:`teardown.left_non_idle`)."""
        self._finished_capture: store.CaptureRecord | None = None
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._session: Session | None = None
        self._capture: store.CaptureRecord | None = None
        self._job: threading.Thread | None = None
        self._pending: PendingCapture | None = None
        self._abort = threading.Event()
        self._stop_recording = threading.Event()
        self._disarm_after = False
        self._recording = False
        self._waveform: tuple[str | None, int | None] = (None, None)
        self._watched: frozenset[tuple[str, int]] | None = None
        self._spectra: frozenset[tuple[str, int, str, int]] = frozenset()
        self._status_version = 0
        self._monitor = None
        self._monitor_wanted: MonitorRequest | None = None
        self.outputs = HandOutputs(self._publish, client_factory, self._session_addresses)
        """Generator outputs driven by hand, and the state of every driven output."""
        bus.subscribe(self.outputs.on_event)
        self.frfs = LiveFrfs(self._publish)
        """The live FRFs viewers look at (:meth:`watch_frfs`)."""

    # --- public state -----------------------------------------------------------------------

    @property
    def armed(self) -> bool:
        s = self._session
        return bool(s and s.armed and not s.closed)

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def recording(self) -> bool:
        return self._recording

    @property
    def settings(self) -> CaptureSettings | None:
        s = self._session
        return s.settings if s else None

    def module_snapshot(self) -> list[dict[str, Any]]:
        """The session's modules as the dashboard shows them (empty when idle)."""
        s = self._session
        if s is None:
            return []
        out = []
        for m in s.modules:
            module_state, input_status, ptp_status = m.state
            out.append(
                {
                    "number": m.number,
                    "address": m.address,
                    "role": m.role,
                    "type": m.info.type_number if m.info else "",
                    "serial": m.info.serial if m.info else 0,
                    "module_state": module_state,
                    "input_status": input_status,
                    "ptp_status": ptp_status,
                    "channels": list(m.channels),
                    "transducers": m.transducers,
                    "bytes": m.live.bytes_received if m.live else 0,
                }
            )
        return out

    def select_waveform(self, module: str | None, channel: int | None) -> None:
        """With ``waveforms="selected"``: the one channel whose Waveform events are emitted
        (default: the master's first channel). Ignored with ``"all"`` and ``"none"``."""
        self._waveform = (module, channel)
        self._apply_waveform_choice()

    def watch_waveforms(self, channels: Iterable[tuple[str, int]] | None) -> None:
        """Emit Waveform events for exactly these (module address, channel) pairs, e.g. the
        channels viewers have chosen; ``None`` returns to the constructor's ``waveforms``."""
        self._watched = None if channels is None else frozenset((a, int(c)) for a, c in channels)
        self._apply_waveform_choice()

    def watch_spectra(self, spectra: Iterable[tuple[str, int, str, int]]) -> None:
        """Compute averaged spectra for exactly these (module address, channel, window,
        lines), the ones viewers show (:mod:`webapp.dsp.spectrum`)."""
        self._spectra = frozenset((a, int(c), str(w), int(n)) for a, c, w, n in spectra)
        self._apply_waveform_choice()

    def _session_addresses(self) -> list[str]:
        s = self._session
        return [m.address for m in s.modules] if s is not None else []

    def watch_frfs(self, frfs: Iterable[FrfKey]) -> None:
        """Compute the cross spectra of exactly these live FRFs (reference, responses, lines),
        the ones viewers show (:mod:`webapp.capture.livefrf`)."""
        self.frfs.want(frfs)
        self._apply_waveform_choice()

    def start_outputs(self, generators: dict[str, list[dict[str, Any]]], rig: list[str]) -> None:
        """Start generator outputs by hand (module address → output objects); ``rig``: the
        rig's modules, master first, for an idle rig. See :mod:`webapp.capture.outputs`."""
        with self._lock:
            refusal = describe_state(self.phase, self.armed, self._monitor is not None, self.busy)
            if refusal is not None:
                raise CaptureBusyError(refusal)
            session = self._session if self.armed else None
        self.outputs.start(generators, session, rig)

    def stop_outputs(self, outputs: dict[str, list[int]] | None, rig: list[str]) -> None:
        """Stop generator outputs (module address → numbers; None: every running one), in
        any phase."""
        s = self._session
        self.outputs.stop(outputs, s if s is not None and not s.closed else None, rig)

    def _apply_waveform_choice(self) -> None:
        s = self._session
        if s is not None:
            for m in s.modules:
                if m.live is not None:
                    m.live.waveform_channels = self._waveform_channels_for(s, m)
            self._analyse_watched(s)

    # --- public commands --------------------------------------------------------------------

    def probe(self, address: str) -> ModuleInfo:
        """module/info of one module (raises :class:`ModuleError`)."""
        return self.client_factory(address).info()

    def return_to_idle(self, address: str) -> list[str]:
        """Walk one module that another program (or a run that was killed) left open back to
        Idle (see :func:`webapp.capture.teardown.walk_to_idle`); the requests sent. Refused
        while a capture runs or modules are armed: the module may be one of them."""
        with self._lock:
            self._check_idle("return a module to Idle")
        return walk_to_idle(ModuleRun(0, address, self.client_factory(address), ""))

    def arm(self, settings: CaptureSettings) -> None:
        """Check ``settings`` and the modules now (raises SettingsError / ModuleError), then set
        the modules up in the background until they are ready to record."""
        with self._lock:
            self._check_idle("arm")
            session = self._prepare(settings)
            self._announce(session, "", settings.name, settings.duration_s, "arm")
            self._launch(session, disarm_after=False)

    def monitor(
        self,
        settings: CaptureSettings | None = None,
        plan: RecordPlan | None = None,
        *,
        folder: Path | None = None,
        end_when_done: bool = False,
    ) -> str:
        """Start the measurement and show it live without writing (arming first when idle);
        with ``plan``, record by it at once. Returns the monitoring session's id. Recordings
        are windows of it (:meth:`record_window`); :meth:`stop` ends it (the rig stays armed
        unless it was idle: then it is disarmed), :meth:`disarm` ends it and disarms.
        ``folder``: where the recordings' capture folders go (default ``<data_dir>/captures``);
        ``end_when_done``: stop once ``plan`` is done (the terminal's triggered capture)."""
        with self._lock:
            if self._monitor is not None or self._monitor_wanted is not None:
                raise CaptureBusyError("the rig is already monitoring")
            if self._recording or self._pending is not None:
                raise CaptureBusyError("a capture is being recorded")
            if plan is not None:
                plan.validate()
            measurement = store.new_capture_id(plan.name if plan else "monitor")
            request = MonitorRequest(measurement, plan, folder, end_when_done)
            session = self._session
            if session is not None and not session.closed:
                self._check_armed_settings(session, settings)
                self._check_monitor_plan(session, plan, request)
                self._monitor_wanted = request
                if self._job is None:
                    self._launch(session, disarm_after=False)
                return measurement
            if settings is None:
                raise SettingsError("settings", "not armed: give the capture settings")
            self._check_idle("monitor")
            session = self._prepare(settings)
            self._check_monitor_plan(session, plan, request)
            self._monitor_wanted = request
            self._launch(session, disarm_after=end_when_done)
            return measurement

    def _announce(
        self, s: Session, capture_id: str, name: str, duration: float | None, action: str
    ) -> None:
        self.bus.publish(
            CapturePrepared(
                capture_id=capture_id, name=name, duration_s=duration,
                modules=[m.address for m in s.modules], action=action,
            )
        )  # fmt: skip

    def _check_armed_settings(self, session: Session, settings: CaptureSettings | None) -> None:
        """On an armed rig only the name and duration may differ from the armed settings."""
        if self._disarm_after or self._abort.is_set():
            raise CaptureBusyError("the modules are being disarmed")
        if settings is None:
            return
        settings.validate()
        changed = session.settings.same_session(settings)
        if changed:
            raise SettingsError(
                changed[0],
                "differs from the armed setup; disarm first to change " + ", ".join(changed),
            )

    def _check_monitor_plan(
        self, s: Session, plan: RecordPlan | None, request: MonitorRequest
    ) -> None:
        """A plan's rules that need the rig (its channels are known once it is armed: until
        then a trigger channel is checked against the modules' channel count)."""
        if plan is None:
            return
        self.check_plan(s, plan)
        spec = plan.trigger
        if spec is not None and not s.modules[spec.module - 1].channels:
            info = s.modules[spec.module - 1].info
            if info is not None and info.input_channels and spec.channel > info.input_channels:
                raise SettingsError(
                    "trigger.channel",
                    f"module {spec.module} (Type {info.type_number}) has {info.input_channels} "
                    f"input channels, not {spec.channel}",
                )
        check_folder(
            request.folder or self.data_dir / store.CAPTURES_DIR,
            expected_rate(s),
            s.settings.disk_margin_s,
        )

    def start(self, settings: CaptureSettings | None = None, *, folder: Path | None = None) -> str:
        """Record a capture; returns its id. ``folder`` overrides ``<data_dir>/captures/<id>``.
        While monitoring, a recording from the next block boundary (a window; its id comes
        with its CaptureStarted event, the monitoring session's id is returned)."""
        run = self._monitor
        if run is not None:
            name = settings.name if settings is not None else "My Measurement"
            duration = settings.duration_s if settings is not None else None
            test = settings.test if settings is not None else None
            self.record_window(RecordPlan(name=name, mode="manual", duration_s=duration, test=test))
            return run.id
        with self._lock:
            if self._recording or self._pending is not None:
                raise CaptureBusyError("a capture is already being recorded")
            session = self._session
            if session is not None and not session.closed:
                self._check_armed_settings(session, settings)
                if settings is not None:
                    name, duration = settings.name, settings.duration_s
                else:
                    name, duration = session.settings.name, session.settings.duration_s
                pending = self._new_pending(name, duration, folder)
                if settings is not None:  # the armed rig's, described as this request says
                    pending.test, pending.labels = settings.test, settings.labels
                    # The outputs this recording drives are the request's (not a session
                    # setting: the armed modules need no new setup for them).
                    session.settings.generators = dict(settings.generators)
                    check_generators(session)
                self._check_disk(session, pending)
                self._pending = pending
                self._announce(session, pending.capture_id, name, duration, "start")
                if self._job is None:  # armed and idle: record now
                    self._launch(session, disarm_after=False)
                return pending.capture_id
            if settings is None:
                raise SettingsError("settings", "not armed: give the capture settings")
            self._check_idle("start")
            session = self._prepare(settings)
            pending = self._new_pending(settings.name, settings.duration_s, folder)
            self._check_disk(session, pending)
            self._pending = pending
            self._announce(session, pending.capture_id, settings.name, settings.duration_s, "start")
            self._launch(session, disarm_after=True)
            return self._pending.capture_id

    def stop(self, reason: str = STOPPED_BY_USER) -> None:
        """End the recording early (outcome ``stopped``, ``reason`` saying by whom); while
        arming, abandon it."""
        with self._cond:
            self.stop_reason = reason
            self._monitor_wanted = None
            if self._monitor is not None:
                self._monitor.stop = True
            elif self._recording:
                self._stop_recording.set()
            elif self._job is not None:
                s = self._session
                if s is not None and not s.armed:
                    self._abort.set()
                else:
                    self._pending = None
            self._status_version += 1
            self._cond.notify_all()

    def disarm(self, reason: str = STOPPED_BY_USER) -> None:
        """Return every module to Idle (stopping a recording first if one runs, ``reason``
        saying by whom)."""
        with self._cond:
            self.stop_reason = reason
            session = self._session
            if session is None or session.closed:
                return
            self._disarm_after = True
            self._monitor_wanted = None
            if self._monitor is not None:
                self._monitor.stop = True
            elif self._recording:
                self._stop_recording.set()
            elif self._job is not None:
                if not session.armed:
                    self._abort.set()
                else:
                    self._pending = None
            else:
                self._launch(session, disarm_after=True)
            self._status_version += 1
            self._cond.notify_all()

    def left_if_quit_now(self) -> str:
        """What a process that quits this moment would leave behind, as a sentence (empty when
        nothing): the modules of the current session not known to be Idle, with their last
        known state, and the capture whose ``capture.json`` would stay ``running``. For the
        exit message of a second signal or an overdue teardown."""
        with self._lock:
            session, capture = self._session, self._capture
        parts = []
        if session is not None and not session.closed:
            modules = [
                f"module {m.number} ({m.address}, last seen {m.state[0] or 'in an unknown state'})"
                for m in session.modules
                if m.opened and (m.gone or m.state[0] != ModuleState.IDLE)
            ]
            if modules:
                parts.append(
                    "not returned to Idle: "
                    + "; ".join(modules)
                    + " (return them with lanxi-dashboard capture --return-to-idle ADDR, the "
                    "Rig page, or a reset)"
                )
        if capture is not None:
            parts.append(
                f"capture {capture.folder} is not completed: it reads as interrupted, with "
                "every byte that reached its files"
            )
        return "; ".join(parts)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the background work is done (idle, armed, completed or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._job is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
        return True

    # --- preparation (synchronous) ----------------------------------------------------------

    def _check_idle(self, what: str) -> None:
        if self._job is not None:
            raise CaptureBusyError(f"cannot {what}: the orchestrator is busy ({self.phase})")
        if self._session is not None and not self._session.closed:
            raise CaptureBusyError(f"cannot {what}: the modules are armed; disarm first")

    @staticmethod
    def _check_disk(s: Session, pending: PendingCapture) -> None:
        """Refuse (DiskSpaceError, field ``folder``) before anything is sent when the capture
        folder's disk cannot take ``disk_margin_s`` seconds at the expected rate."""
        check_folder(pending.folder, expected_rate(s), s.settings.disk_margin_s)

    def _new_pending(
        self, name: str, duration: float | None, folder: Path | None
    ) -> PendingCapture:
        capture_id = store.new_capture_id(name, self.data_dir)
        if folder is None:
            folder = self.data_dir / store.CAPTURES_DIR / capture_id
        self.current_capture_id = capture_id
        return PendingCapture(capture_id, name, duration, Path(folder))

    def _prepare(self, settings: CaptureSettings) -> Session:
        """Validate the settings and read every module's info (concurrently); nothing that
        changes a module is sent here."""
        settings.validate()
        runs = [
            ModuleRun(
                number=i + 1,
                address=address,
                client=self.client_factory(address),
                role=("master" if i == 0 else "slave") if settings.synchronized else "single",
            )
            for i, address in enumerate(settings.modules)
        ]

        def read_info(m: ModuleRun) -> None:
            m.info = m.client.info()

        parallel(runs, read_info)
        self._check_distinct(runs)
        for i, m in enumerate(runs):
            info = m.info
            assert info is not None
            where = f"modules[{i}]"
            if settings.synchronized and not info.supports_ptp:
                raise SettingsError(
                    where,
                    f"{m.address} is a Type {info.type_number}, which cannot take part in a "
                    "PTP-synchronized capture (it works only on its own)",
                )
            if info.module_state and info.module_state != ModuleState.IDLE:
                raise ModuleError(
                    m.address,
                    "GET /rest/rec/module/info",
                    None,
                    f"the module is in state {info.module_state}, not Idle: another program may "
                    "be using it (close its recorder there, or return the module to Idle: on "
                    "the Rig page, or lanxi-dashboard capture --return-to-idle ADDR)",
                )
            self._check_channels(settings, m, info)
        rate = self._choose_rate(settings, runs)
        session = Session(settings, runs, bandwidth_for_rate(rate), rate)
        check_generators(session)
        return session

    @staticmethod
    def _check_distinct(runs: list[ModuleRun]) -> None:
        """Two addresses that reach one module (same type and serial number) are refused,
        naming both: the module would be set up twice and record one stream as two."""
        seen: dict[tuple[str, int], ModuleRun] = {}
        for i, m in enumerate(runs):
            info = m.info
            if info is None or not info.serial:
                continue
            key = (info.type_number, info.serial)
            first = seen.setdefault(key, m)
            if first is not m:
                raise SettingsError(
                    f"modules[{i}]",
                    f"module {m.number} ({m.address}) is the same module as module "
                    f"{first.number} ({first.address}): both report Type {info.type_number} "
                    f"serial {info.serial}",
                )

    @staticmethod
    def _check_channels(settings: CaptureSettings, m: ModuleRun, info: ModuleInfo) -> None:
        overrides = settings.channels.get(m.address, [])
        where = f"channels.{m.address}"
        for j, ch in enumerate(overrides):
            label = f"{m.address} channel {ch.channel}"
            if info.input_channels and ch.channel > info.input_channels:
                raise SettingsError(
                    f"{where}[{j}].channel",
                    f"{label}: {m.address} (Type {info.type_number}) has "
                    f"{info.input_channels} input channels",
                )
            if ch.range is not None and info.ranges and ch.range not in info.ranges:
                raise SettingsError(
                    f"{where}[{j}].range",
                    f"{label}: range must be one of {', '.join(info.ranges)}, not {ch.range!r}",
                )
            if ch.filter is not None and info.filters and ch.filter not in info.filters:
                raise SettingsError(
                    f"{where}[{j}].filter",
                    f"{label}: filter must be one of {', '.join(info.filters)}, not {ch.filter!r}",
                )
        disabled = {ch.channel for ch in overrides if ch.enabled is False}
        if info.input_channels and len(disabled) >= info.input_channels:
            raise SettingsError(where, f"every input channel of {m.address} is disabled")

    @staticmethod
    def _choose_rate(settings: CaptureSettings, runs: list[ModuleRun]) -> int:
        """The requested bandwidth, or the highest one every module supports (a synchronized
        capture needs one sample rate everywhere)."""
        supported = [set(m.info.sample_rates) for m in runs if m.info and m.info.sample_rates]
        if settings.bandwidth is not None:
            rate = rate_for_bandwidth(settings.bandwidth)
            for m in runs:
                if m.info and m.info.sample_rates and rate not in m.info.sample_rates:
                    raise SettingsError(
                        "bandwidth",
                        f"{m.address} (Type {m.info.type_number}) does not support {settings.bandwidth}",
                    )
            return rate
        if not supported:
            return 131072
        common = set.intersection(*supported)
        if not common:
            raise SettingsError("bandwidth", "the modules have no sample rate in common")
        return max(common)

    # --- background job ---------------------------------------------------------------------

    def _launch(self, session: Session, disarm_after: bool) -> None:
        self._session = session
        self._disarm_after = disarm_after
        self._abort.clear()
        self._stop_recording.clear()
        self._job = runtime.spawn(self._job_main, session, name="capture orchestrator")

    def _job_main(self, s: Session) -> None:
        recorded = False
        try:
            self._prestart_receivers(s)
            if not s.armed:
                self._arm_sequence(s)
            while True:
                with self._lock:
                    monitor, self._monitor_wanted = self._monitor_wanted, None
                    pending = None
                    if monitor is None:
                        pending, self._pending = self._pending, None
                    if pending is not None:
                        self._recording = True
                        self._stop_recording.clear()
                if monitor is not None:
                    self._monitor_session(s, monitor)
                    recorded = recorded or self._finished_capture is not None
                    if self._disarm_after:
                        break
                    continue
                if pending is None:
                    break
                recorded = True
                self._record(s, pending)
                if self._disarm_after:
                    break
            if self._disarm_after:
                self._teardown(s, Phase.DISARMING, recorded)
                self._set_phase(Phase.COMPLETED if recorded else Phase.IDLE)
            else:
                self._set_phase(Phase.ARMED)
        except Aborted:
            self._publish(Warning(message=f"arming abandoned: {self.stop_reason}"))
            self._abandon_pending(Outcome.STOPPED, "stopped before the recording started")
            self._teardown(s, Phase.DISARMING, recorded)
            self._set_phase(Phase.IDLE, self.stop_reason)
        except Exception as exc:  # every failure ends the same way: teardown, then failed
            reason = describe_error(exc)
            if not isinstance(exc, ModuleError | PhaseTimeoutError | StreamFailure | SettingsError):
                log.exception("capture failed")
            self.last_error = reason
            if not getattr(exc, "reported", False):
                self._publish(error_event(exc, reason))
            self._abandon_pending(Outcome.FAILED, reason)
            self._teardown(s, Phase.DISARMING, recorded)
            self._set_phase(Phase.FAILED, reason)
        finally:
            with self._cond:
                self._recording = False
                self._job = None
                if s.closed:
                    self._drop_spare_receivers()
                    if self._session is s:
                        self._session = None
                    self._pending = None
                    self.current_capture_id = None
                elif (
                    self._pending is not None
                    or self._disarm_after
                    or self._monitor_wanted is not None
                ):
                    # start() or disarm() arrived while this job was ending: run it now.
                    self._launch(s, disarm_after=self._disarm_after)
                else:
                    self.current_capture_id = None
                self._cond.notify_all()

    def _abandon_pending(self, outcome: Outcome, reason: str) -> None:
        """A capture asked for by start() that never got to record still gets its ending."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.last_capture_id, self.last_outcome = pending.capture_id, str(outcome)
            self._publish(
                CaptureFinished(
                    capture_id=pending.capture_id, outcome=str(outcome), reason=reason, folder=""
                )
            )

    # --- arming -----------------------------------------------------------------------------

    def _arm_sequence(self, s: Session) -> None:
        self.last_error = None
        count = len(s.modules)
        kind = "synchronized" if s.synchronized else "single-module"
        self._set_phase(Phase.VALIDATING, f"{count} module(s), {kind}, {s.bandwidth}")
        for m in s.modules:
            runtime.spawn(self._watch, s, m, name=f"watch {m.address}")
        for step in arm_sequence(s.synchronized):
            self._check_abort()
            self._set_phase(step.phase)
            if step.custom:
                getattr(self, f"_phase_{step.request}")(s, step)
            else:
                if step.request:
                    self._send(s, step.order, step.request)
                if step.wait:
                    self._await(s, step.wait)
                    if step.wait.timeout is Timeout.PTP:
                        s.ptp_locked = True  # from here on a lost lock is a fault
        self._fetch_ports(s)
        s.armed = True
        self._set_phase(Phase.ARMED)

    def _phase_ptp_sync(self, s: Session, step: Step) -> None:
        settime = int(time.time() * 1000)
        domain = s.settings.ptp_domain

        def sync(m: ModuleRun) -> None:
            m.ptp_configured = True
            m.client.set_ptp(domain, m is s.master, settime)

        for batch in ordered(s.modules, step.order):
            parallel(batch, sync)

    def _phase_open_multi(self, s: Session, step: Step) -> None:
        def open_(m: ModuleRun) -> None:
            m.opened = True
            m.client.open(single_module=False, detect_transducers=False)

        self._each(s, step.order, open_)
        assert step.wait is not None
        self._await(s, step.wait)

    def _phase_open_single(self, s: Session, step: Step) -> None:
        def open_(m: ModuleRun) -> None:
            m.client.set_time()
            # A module left in PTP mode (e.g. by a capture with --keep-ptp) would wait for a
            # master that is not there; stand-alone is what a single module runs in (REF17 §5.2).
            m.client.set_standalone()
            m.opened = True
            m.client.open(single_module=True, detect_transducers=False)

        self._each(s, step.order, open_)
        assert step.wait is not None
        self._await(s, step.wait)

    def _phase_detect(self, s: Session, step: Step) -> None:
        """TEDS detection runs on every module at once; the requests go master last."""
        self._send(s, step.order, "detect_transducers")
        self._await(s, step.wait or WAIT_DETECTED)

        def fetch(m: ModuleRun) -> None:
            m.transducers = m.client.transducers()

        self._each(s, step.order, fetch)
        for m in s.modules:
            self._publish(TransducersDetected(module=m.address, transducers=m.transducers or []))

    def _phase_configure(self, s: Session, step: Step) -> None:
        def configure(m: ModuleRun) -> None:
            default = m.client.default_setup()
            m.setup = build_setup(
                default,
                # A TEDS transducer of the transducer database gets its stored sensitivity.
                calibrated_transducers(self.data_dir, m.transducers),
                s.settings.channel_overrides(m.address),
                s.bandwidth,
                s.settings.multi_socket,
                where=f"channels.{m.address}",
            )
            m.channels = enabled_channel_numbers(m.setup)

        self._each(s, step.order, configure)
        self._each(s, step.order, lambda m: m.client.put_setup(m.setup))
        for m in s.modules:
            assert m.setup is not None
            self._publish(
                ChannelsConfigured(
                    module=m.address, bandwidth=s.bandwidth, channels=applied_channels(m.setup)
                )
            )
        assert step.wait is not None
        self._await(s, step.wait)

    def _fetch_ports(self, s: Session) -> None:
        def fetch(m: ModuleRun) -> None:
            if s.settings.multi_socket:
                ports = m.client.destination_sockets()
                if len(ports) != len(m.channels):
                    raise ModuleError(
                        m.address,
                        "GET /rest/rec/destination/sockets",
                        200,
                        f"{len(ports)} ports for {len(m.channels)} enabled channels",
                    )
                m.ports = ports
            else:
                m.ports = [m.client.destination_socket()]

        self._each(s, Order.MASTER_LAST, fetch)

    # --- requests and waits -----------------------------------------------------------------

    def _each(self, s: Session, order: Order, fn: Callable[[ModuleRun], Any]) -> None:
        for batch in ordered(s.modules, order):
            self._check_abort()
            parallel(batch, fn)

    def _send(self, s: Session, order: Order, method: str, *args: Any) -> None:
        self._each(s, order, lambda m: getattr(m.client, method)(*args))

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise Aborted()

    # --- events -----------------------------------------------------------------------------

    def _set_phase(self, phase: Phase, detail: str = "") -> None:
        with self._lock:
            previous, self.phase = self.phase, phase
        self._publish(PhaseChanged(phase=str(phase), previous=str(previous), detail=detail))

    def _publish(self, event: Event) -> None:
        s = self._session
        if s is not None and event.kind not in store.TIMELINE_EXCLUDED and s.quality.admit(event):
            s.timeline.append(event)
        capture = self._capture
        if capture is not None:
            capture.add_event(event)
        self.bus.publish(event)
