"""The recording part of the orchestrator: connect every stream, start the measurement
(master last), watch recording time, stalls and stream failures, stop, drain, close the files
and write ``capture.json``. A base class of :class:`webapp.capture.orchestrator.Orchestrator`,
whose state it shares; kept apart so each file has one job."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from webapp.calibration.records import overdue_warnings
from webapp.capture import store
from webapp.capture.capture_records import CaptureRecords
from webapp.capture.diskspace import DISK_STOP, DiskWatch, expected_rate
from webapp.capture.events import (
    CaptureStarted,
    Event,
    EventBus,
    Outcome,
    Phase,
    RecordingTime,
    Warning,
)
from webapp.capture.generator import generator_runs, start_generators, stop_generators
from webapp.capture.livefrf import LiveFrfs
from webapp.capture.outputs import HandOutputs
from webapp.capture.phases import WAIT_STOPPED, Order
from webapp.capture.session import (
    PendingCapture,
    Session,
    StopFailure,
    StreamFailure,
    describe_error,
    error_event,
)
from webapp.capture.stream_connections import StreamConnections
from webapp.capture.teardown import stop_measurements, stopped_after_all
from webapp.capture.watching import StatusWatching
from webapp.openapi.model import BLOCK_VALUES

log = logging.getLogger(__name__)

RECORDING_TIME_INTERVAL_S = 0.25
PROGRESS_RECORD_INTERVAL_S = 2.0
"""How often capture.json is rewritten while recording (bytes so far per file)."""
NO_DATA_GRACE_S = 5.0
"""How long past the requested duration to wait for a module's samples before stopping."""


class Recording(StatusWatching, StreamConnections, CaptureRecords):
    """Recording steps of :class:`~webapp.capture.orchestrator.Orchestrator` (which provides the
    state and the request, wait and event methods declared here)."""

    bus: EventBus
    data_dir: Path
    live_levels: bool
    waveforms: str
    stall_timeout_s: float
    current_capture_id: str | None
    last_capture_id: str | None
    last_error: str | None
    last_outcome: str | None
    last_folder: Path | None
    _lock: threading.RLock
    _cond: threading.Condition
    _capture: store.CaptureRecord | None
    _finished_capture: store.CaptureRecord | None
    stop_reason: str
    _stop_recording: threading.Event
    _waveform: tuple[str | None, int | None]
    _watched: frozenset[tuple[str, int]] | None
    _spectra: frozenset[tuple[str, int, str, int]]
    _status_version: int
    _recording: bool
    outputs: HandOutputs
    frfs: LiveFrfs

    def _publish(self, event: Event) -> None:
        raise NotImplementedError

    def _set_phase(self, phase: Phase, detail: str = "") -> None:
        raise NotImplementedError

    def _send(self, s: Session, order: Order, method: str, *args: object) -> None:
        raise NotImplementedError

    def _record(self, s: Session, pending: PendingCapture) -> None:
        capture = self._capture_record(s, pending)
        for event in s.timeline:
            capture.add_event(event)
        with self._lock:
            self._capture = capture
            self.current_capture_id = pending.capture_id
        addresses = {m.number: m.address for m in s.modules}
        for number, message in overdue_warnings(capture.calibrations):
            self._publish(Warning(message=message, module=addresses.get(number)))
        s.stream_failure = None
        outcome, reason = Outcome.COMPLETED, ""
        try:
            self._set_phase(Phase.CONNECTING, pending.capture_id)
            capture.write()
            self._connect_streams(s, pending, capture)
            capture.write()  # the stream files exist: capture.json names them from now on
            self._publish(
                CaptureStarted(
                    capture_id=pending.capture_id,
                    name=pending.name,
                    folder=str(pending.folder),
                    modules=[m.address for m in s.modules],
                    duration_s=pending.duration_s,
                )
            )
            start_generators(s)
            self.outputs.recording_drives(s, generator_runs(s), True)
            self._start_measurement(s, Phase.RECORDING, pending.capture_id)
            stopped_early = self._record_loop(s, pending)
            if stopped_early:
                outcome, reason = Outcome.STOPPED, self.stop_reason
            self._stop_measurement(s)
            silent = [m.address for m in s.modules if m.signal_messages() == 0]
            if silent and outcome is Outcome.COMPLETED:
                raise StreamFailure(
                    f"no samples arrived from module {', '.join(silent)}", silent[0]
                )
        except Exception as exc:
            outcome, reason = Outcome.FAILED, self._wind_down(s, exc)
            raise
        finally:
            for trouble in stop_generators(s):
                self._publish(Warning(message=trouble))
            self.outputs.recording_drives(s, generator_runs(s), False)
            losses = self._close_streams(s, capture)
            self._finish_capture(s, capture, pending, outcome, reason, losses)

    def _start_measurement(self, s: Session, phase: Phase, detail: str) -> None:
        """Every receiver running, then the measurement started (the master last)."""
        for m in s.modules:
            for r in m.receivers:
                r.start()
        self._set_phase(phase, detail)
        s.measuring = True
        self._send(s, Order.MASTER_LAST, "start_measurement")

    def _stop_measurement(self, s: Session) -> None:
        """Stop every module, wait until each has stopped, let the streams deliver the rest;
        raises what went wrong (a module that did not stop, a stream that failed)."""
        self._set_phase(Phase.STOPPING)
        for m in s.modules:
            for r in m.receivers:
                r.expect_end = True  # a module may close its stream once stopped
        # The slaves at once, then the master whether or not they answered (short timeout).
        unstopped = stopped_after_all(
            stop_measurements(s, lambda m: True, self._publish), self._publish
        )
        s.measuring = False
        # One status read when the stop was answered 200 (done); a wait if it was 202.
        self._await(s, WAIT_STOPPED, [m for m in s.modules if m not in unstopped])
        if unstopped:
            raise StopFailure(unstopped)
        self._drain(s)
        if s.stream_failure is not None:
            raise s.stream_failure

    def _wind_down(self, s: Session, exc: Exception) -> str:
        """A failure while measuring: report it (once), stop every module still measuring
        (best effort) so the others' streams end cleanly, and let them deliver the rest.
        Returns the failure in the user's words."""
        reason = describe_error(exc)
        self.last_error = reason
        if not getattr(exc, "reported", False):
            self._publish(error_event(exc, reason))
            exc.reported = True  # type: ignore[attr-defined]
        for m in s.modules:
            for r in m.receivers:
                r.expect_end = True  # from here on a closing stream is part of the wind-down
        if s.measuring:
            stop_measurements(s, lambda m: not m.gone, self._publish)
            s.measuring = False
        self._drain(s)
        return reason

    def _record_loop(self, s: Session, pending: PendingCapture) -> bool:
        """Until the duration is covered by every module's samples, or a stop, or a failure.
        Returns True when stopped early by the user."""
        started = time.monotonic()
        duration = pending.duration_s
        next_time_event = 0.0
        stall_limit = self._watch_streams_from(s, started)
        next_record = started + PROGRESS_RECORD_INTERVAL_S
        disk = DiskWatch(pending.folder, expected_rate(s), s.settings.disk_margin_s, time.monotonic)
        while True:
            with self._cond:
                self._raise_failure(s)
                if self._stop_recording.is_set():
                    return True
                self._cond.wait(RECORDING_TIME_INTERVAL_S / 2)
            now = time.monotonic()
            if self._disk_full(disk):
                return True
            self._check_stalls(s, stall_limit)
            if now >= next_record and self._capture is not None:
                next_record = now + PROGRESS_RECORD_INTERVAL_S
                self._record_progress(s, self._capture)
            covered = min(m.covered_ticks() for m in s.modules) / (1 << 32)
            if now >= next_time_event:
                next_time_event = now + RECORDING_TIME_INTERVAL_S
                shown = min(covered, duration) if duration is not None else covered
                self._publish(RecordingTime(elapsed_s=round(shown, 3), duration_s=duration))
            if duration is None:
                continue
            if covered >= duration:
                self._publish(RecordingTime(elapsed_s=round(duration, 3), duration_s=duration))
                return False
            if now - started >= duration + NO_DATA_GRACE_S:
                short = [
                    f"{m.address} ({m.covered_ticks() / (1 << 32):.2f} s)"
                    for m in s.modules
                    if m.covered_ticks() / (1 << 32) < duration
                ]
                self._publish(
                    Warning(
                        message=f"stopping without the full {duration:g} s from: {', '.join(short)}"
                    )
                )
                return False

    def _watch_streams_from(self, s: Session, started: float) -> float:
        """The measurement has just been started everywhere: stall watching starts now.
        Returns the stall limit (or three blocks' time at low sample rates)."""
        for m in s.modules:
            for r in m.receivers:
                r.last_data = started
        return max(self.stall_timeout_s, 3 * BLOCK_VALUES / s.sample_rate)

    @staticmethod
    def _raise_failure(s: Session) -> None:
        """(Under the condition's lock.) A stream that failed, a module that stopped answering."""
        if s.stream_failure is not None:
            raise s.stream_failure
        errors = [m.watch_error for m in s.modules if m.watch_error is not None]
        if errors:
            raise errors[0]

    @staticmethod
    def _check_stalls(s: Session, stall_limit: float) -> None:
        for m in s.modules:
            for r in m.receivers:
                if not r.ended.is_set() and r.idle_s > stall_limit:
                    raise StreamFailure(
                        f"module {r.module}: no stream data for {r.idle_s:.0f} s", r.module
                    )

    def _disk_full(self, disk: DiskWatch) -> bool:
        """Warn once when the disk gets low; True (with the reason as ``stop_reason``) when
        the recording must stop, while there is room for the rest and for capture.json."""
        low, full = disk.check()
        if low:
            self._publish(Warning(message=low))
        if full:
            self.stop_reason = f"{DISK_STOP}: {full}"
            self._publish(Warning(message=self.stop_reason))
            return True
        return False

    def _record_progress(self, s: Session, capture: store.CaptureRecord) -> None:
        """Rewrite capture.json with the bytes each file holds so far, so a capture whose
        process dies says how far it got (the write is offloaded and atomic)."""
        for m in s.modules:
            record = capture.modules[m.number - 1]
            for f, r in zip(record.files, m.receivers, strict=False):
                f.bytes = r.file.bytes
            record.first_ticks = m.first_ticks()
        capture.recorded_s = min(m.covered_ticks() for m in s.modules) / (1 << 32)
        try:
            capture.write()
        except OSError as exc:  # a full disk: the stream files matter more than the record
            log.warning("capture.json progress not written: %s", exc)
