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

The checks before anything is sent are in :mod:`webapp.capture.preparation`; the arming steps
in :mod:`webapp.capture.arming`, the recording steps in :mod:`webapp.capture.recording` and the
viewers' waveform/spectrum/FRF choices in :mod:`webapp.capture.live_selection` (base classes);
the session's data and errors in :mod:`webapp.capture.session`, the teardown's requests in
:mod:`webapp.capture.teardown`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.capture import store
from webapp.capture.arming import Arming
from webapp.capture.disarming import Disarming
from webapp.capture.diskspace import check_folder, expected_rate
from webapp.capture.events import (
    CaptureFinished,
    CapturePrepared,
    Event,
    EventBus,
    Outcome,
    Phase,
    PhaseChanged,
    Warning,
)
from webapp.capture.generator import check_generators
from webapp.capture.livefrf import LiveFrfs
from webapp.capture.monitoring import Monitoring, MonitorRequest
from webapp.capture.outputs import HandOutputs, describe_state
from webapp.capture.preparation import check_disk, prepare_session
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
)
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.capture.teardown import (
    walk_to_idle,
)
from webapp.capture.trigger import RecordPlan
from webapp.capture.workersetting import parse_workers
from webapp.openapi.client import ModuleClient, ModuleError
from webapp.openapi.model import (
    ModuleInfo,
    ModuleState,
)

log = logging.getLogger(__name__)

STOPPED_BY_USER = "stopped by the user"
STALL_TIMEOUT_S = 5.0
"""A recording fails when a stream brings nothing for this long (or three blocks' time at low
sample rates): the module is gone or no longer sending."""


class Orchestrator(Arming, Monitoring, Disarming):
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

    def _session_addresses(self) -> list[str]:
        s = self._session
        return [m.address for m in s.modules] if s is not None else []

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
            session = prepare_session(settings, self.client_factory)
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
            session = prepare_session(settings, self.client_factory)
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
                check_disk(session, pending)
                self._pending = pending
                self._announce(session, pending.capture_id, name, duration, "start")
                if self._job is None:  # armed and idle: record now
                    self._launch(session, disarm_after=False)
                return pending.capture_id
            if settings is None:
                raise SettingsError("settings", "not armed: give the capture settings")
            self._check_idle("start")
            session = prepare_session(settings, self.client_factory)
            pending = self._new_pending(settings.name, settings.duration_s, folder)
            check_disk(session, pending)
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

    def _new_pending(
        self, name: str, duration: float | None, folder: Path | None
    ) -> PendingCapture:
        capture_id = store.new_capture_id(name, self.data_dir)
        if folder is None:
            folder = self.data_dir / store.CAPTURES_DIR / capture_id
        self.current_capture_id = capture_id
        return PendingCapture(capture_id, name, duration, Path(folder))

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
