"""The recording part of the orchestrator: connect every stream, start the measurement
(master last), watch recording time, stalls and stream failures, stop, drain, close the files
and write ``capture.json``. A base class of :class:`webapp.capture.orchestrator.Orchestrator`,
whose state it shares; kept apart so each file has one job."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from webapp.calibration.records import channel_calibrations, overdue_warnings
from webapp.capture import store
from webapp.capture.diskspace import DISK_STOP, DiskWatch, expected_rate
from webapp.capture.events import (
    CaptureFinished,
    CaptureStarted,
    Error,
    Event,
    EventBus,
    Outcome,
    Phase,
    RecordingTime,
    Warning,
)
from webapp.capture.generator import generator_runs, start_generators, stop_generators
from webapp.capture.labels import labelled_channels
from webapp.capture.live_selection import LiveSelection
from webapp.capture.livefrf import LiveFrfs
from webapp.capture.outputs import HandOutputs
from webapp.capture.phases import WAIT_STOPPED, Order
from webapp.capture.receiver import StreamReceiver
from webapp.capture.session import (
    ModuleRun,
    PendingCapture,
    Session,
    StopFailure,
    StreamFailure,
    describe_error,
    error_event,
    parallel,
)
from webapp.capture.teardown import stop_measurements, stopped_after_all
from webapp.capture.watching import StatusWatching
from webapp.capture.workerpools import WorkerReceivers
from webapp.openapi.model import BLOCK_VALUES

log = logging.getLogger(__name__)

RECORDING_TIME_INTERVAL_S = 0.25
PROGRESS_RECORD_INTERVAL_S = 2.0
"""How often capture.json is rewritten while recording (bytes so far per file)."""
DRAIN_IDLE_S = 0.3
"""After the stop, a stream that has been quiet this long has delivered everything."""
NO_DATA_GRACE_S = 5.0
"""How long past the requested duration to wait for a module's samples before stopping."""


class Recording(StatusWatching, WorkerReceivers, LiveSelection):
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

    def _capture_record(self, s: Session, pending: PendingCapture) -> store.CaptureRecord:
        settings = s.settings
        return store.CaptureRecord(
            folder=pending.folder,
            id=pending.capture_id,
            name=pending.name,
            created=time.time(),
            requested_duration_s=pending.duration_s,
            ptp_domain=settings.ptp_domain if s.synchronized else None,
            master=s.master.address,
            bandwidth=s.bandwidth,
            sample_rate=s.sample_rate,
            streaming="multi-socket" if settings.multi_socket else "single-socket",
            modules=[self._module_record(m) for m in s.modules],
            test=dict(pending.test if pending.test is not None else settings.test),
            channels=labelled_channels(
                [(m.number, m.address) for m in s.modules],
                pending.labels if pending.labels is not None else settings.labels,
            ),
            calibrations=channel_calibrations(
                self.data_dir, ((m.number, m.setup) for m in s.modules)
            ),
        )

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

    def _module_record(self, m: ModuleRun) -> store.ModuleRecord:
        info = m.info
        return store.ModuleRecord(
            number=m.number,
            address=m.address,
            role=m.role,
            type=info.type_number if info else "",
            serial=info.serial if info else 0,
            name=info.name if info else "",
            firmware=info.firmware if info else "",
            hardware=info.hardware if info else "",
            setup=m.setup,
            transducers=m.transducers,
            generator=(self.settings.generators.get(m.address) if self.settings else None) or None,
            generator_by_hand=self.outputs.by_hand(m.address) or None,
            signals=[{"signal_id": i + 1, "channel": c} for i, c in enumerate(m.channels)],
        )

    def _connect_streams(
        self,
        s: Session,
        pending: PendingCapture | None,
        capture: store.CaptureRecord | None,
        ring_retention_ticks: int | None = None,
    ) -> None:
        """A receiver per stream port of every module: writing ``pending``'s files (and naming
        them in ``capture``), or, without them, keeping a ring for monitoring."""
        if pending is not None:
            pending.folder.mkdir(parents=True, exist_ok=True)
        self._new_live_views(s)
        # A large rig's recording: its receivers in worker processes (webapp.capture.workers).
        pool = self._recording_pool(s) if pending is not None else None
        for m in s.modules:
            if pool is not None:
                assert m.live is not None
                m.live = pool.live_for(m.number, m.live)
            record = capture.modules[m.number - 1] if capture is not None else None
            if record is not None:
                record.setup, record.transducers = m.setup, m.transducers
                record.files = []
            signal_channel = dict(enumerate(m.channels, start=1))
            for i, port in enumerate(m.ports):
                only: int | None = m.channels[i] if s.settings.multi_socket else None
                if only is not None:
                    channels = [only]

                    def channel_of(_sid: int, _c: int = only) -> int:
                        return _c
                else:
                    channels = list(m.channels)

                    def channel_of(sid: int, _map: dict[int, int] = signal_channel) -> int:
                        return _map.get(sid, sid)

                name = stream_file_name(pending.name, m.number, only) if pending else None
                if pool is not None and pending is not None and name is not None:
                    self._open_in_worker(
                        pool, s, m, port, pending.folder / name, only, channels, signal_channel
                    )
                    if record is not None:
                        record.files.append(store.FileRecord(file=name, channels=channels))
                    continue
                sock = m.client.connect_stream(port)
                assert m.live is not None
                try:
                    receiver = StreamReceiver(
                        m.address,
                        sock,
                        pending.folder / name if pending is not None and name else None,
                        m.live,
                        channel_of,
                        lambda r, err, _s=s: self._receiver_ended(_s, r, err),
                        label=f"{m.address} port {port}",
                        channel=only,
                        ring_retention_ticks=ring_retention_ticks,
                        reconnect=(
                            (lambda _m=m, _p=port: _m.client.connect_stream(_p))
                            if s.settings.on_stream_drop == "reconnect"
                            else None
                        ),
                        on_reconnect=self._stream_reconnected,
                    )
                except BaseException:
                    # No receiver owns the socket yet, so _close_streams would leave it open.
                    sock.close()
                    raise
                receiver.channels = channels
                m.receivers.append(receiver)
                if record is not None and name is not None:
                    record.files.append(store.FileRecord(file=name, channels=channels))
        self._analyse_watched(s)

    def _stream_reconnected(self, receiver: StreamReceiver, drop: dict[str, Any]) -> None:
        """A stream that dropped and (with ``on_stream_drop`` reconnect) was connected again:
        the user hears of it at once; the samples it missed are counted when the capture ends.
        (One that could not be connected again ends its receiver: _receiver_ended reports it.)"""
        where = f"module {receiver.module}"
        if receiver.channel is not None:
            where += f" channel {receiver.channel}"
        self._publish(
            Warning(
                message=(
                    f"{where}: its stream dropped after {drop['after_bytes']} bytes "
                    f"({drop['error']}); connected again after {drop['reconnect_s']:g} s; the "
                    f"samples it missed are counted as lost in {receiver.target}"
                ),
                module=receiver.module,
            )
        )

    def _receiver_ended(self, s: Session, receiver: StreamReceiver, error: str | None) -> None:
        if error is None:
            return
        message = f"module {receiver.module}: {error}"
        if receiver.channel is not None:
            # Multi-socket: one stream of several per module; say which channel and file.
            message = (
                f"module {receiver.module} channel {receiver.channel} ({receiver.target}): {error}"
            )
        failure = StreamFailure(message, receiver.module)
        failure.reported = True
        with self._cond:
            if s.stream_failure is None:
                s.stream_failure = failure
            self._status_version += 1
            self._cond.notify_all()
        # Reported the moment it happens, before the capture is wound down.
        self._publish(Error(message=message, module=receiver.module, request="stream"))

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

    def _drain(self, s: Session) -> None:
        """After the stop: let every stream deliver what is still in flight."""
        receivers = [r for m in s.modules for r in m.receivers]
        for r in receivers:
            r.expect_end = True
        deadline = time.monotonic() + s.settings.state_timeout_s
        while time.monotonic() < deadline:
            busy = [r for r in receivers if not r.ended.is_set() and r.idle_s < DRAIN_IDLE_S]
            if not busy:
                return
            time.sleep(DRAIN_IDLE_S / 3)
        self._publish(Warning(message="streams were still delivering data when they were closed"))

    def _close_streams(self, s: Session, capture: store.CaptureRecord) -> list[str]:
        """Close every receiver; returns a sentence per stream that lost bytes in closing."""

        def close(r: StreamReceiver) -> None:
            try:
                r.close()  # the final fsync of many big files: in parallel, off the hub
            except OSError as exc:
                self._publish(
                    Warning(message=f"closing {r.file.path.name} failed: {exc}", module=r.module)
                )

        receivers = [r for m in s.modules for r in m.receivers]
        parallel(receivers, close)
        self._end_recording_pool()
        losses: list[str] = []
        for r in receivers:
            if r.loss is not None:
                # A receiver given up on in closing: the user must learn that bytes are missing.
                note = f"module {r.module}: {r.loss}"
                self._publish(Warning(message=note, module=r.module))
                losses.append(note)
        for m in s.modules:
            record = capture.modules[m.number - 1]
            for f, r in zip(record.files, m.receivers, strict=False):
                f.bytes, f.sha256 = r.file.bytes, r.file.digest
                f.drops = [{**d, "t": round(d["t"], 3)} for d in r.drops]
                f.lost_samples = lost_samples(r, m.channels if r.channel is None else [r.channel])
                if r.discarded_bytes:
                    losses.append(
                        f"module {r.module}: {r.discarded_bytes} bytes of unfinished messages "
                        f"cut off {f.file} where its stream dropped"
                    )
            record.first_ticks = m.first_ticks()
            if m.live is not None:
                m.live.final_stats()
        return losses

    def _finish_capture(
        self,
        s: Session,
        capture: store.CaptureRecord,
        pending: PendingCapture,
        outcome: Outcome,
        reason: str,
        losses: list[str] | None = None,
    ) -> None:
        if losses:
            note = "; ".join(losses)
            reason = f"{reason}; {note}" if reason else f"completed, but {note}"
        firsts = {m.address: m.first_ticks() for m in s.modules}
        known = {a: t for a, t in firsts.items() if t is not None}
        spread = first_sample_spread(known, s.sample_rate)
        if spread:
            self._publish(Warning(message=spread))
        capture.start_ticks = firsts.get(s.master.address) or (
            min(known.values()) if known else None
        )
        covered = [m.covered_ticks() for m in s.modules]
        capture.recorded_s = round(min(covered) / (1 << 32), 6) if covered else None
        if capture.recorded_s is not None:
            # The last recording time shown is what was recorded: after a stop the streams
            # still deliver what was in flight (seconds of it when the machine is loaded).
            duration = pending.duration_s
            shown = capture.recorded_s if duration is None else min(capture.recorded_s, duration)
            self._publish(RecordingTime(elapsed_s=round(shown, 3), duration_s=duration))
        lossy = [
            f"{m.address} ({m.live.overruns}x)" for m in s.modules if m.live and m.live.overruns
        ]
        if lossy:
            note = f"data lost in transfer (overrun) reported by {', '.join(lossy)}"
            self._publish(Warning(message=note))
            reason = f"{reason}; {note}" if reason else note
        for (module, channel), count in sorted(capture.quality.unlisted.items()):
            # One event per channel stands for the changes the timeline no longer lists.
            self._publish(
                Warning(
                    message=(
                        f"module {module} channel {channel}: {count} more data-quality changes"
                        f" than the {capture.quality.limit} listed"
                    ),
                    module=module,
                )
            )
        capture.outcome, capture.reason = str(outcome), reason
        capture.ended = time.time()
        finished = CaptureFinished(
            capture_id=pending.capture_id,
            outcome=str(outcome),
            reason=reason,
            folder=str(pending.folder),
        )
        capture.add_event(finished)
        try:
            capture.write()
        except OSError as exc:
            self._publish(Warning(message=f"writing capture.json failed: {exc}"))
        with self._lock:
            self._capture = None
            self._finished_capture = capture
            self.last_capture_id = pending.capture_id
            self.last_outcome = str(outcome)
            self.last_folder = pending.folder
            self._recording = False
        self.bus.publish(finished)
        s.timeline.append(finished)


def first_sample_spread(firsts: dict[str, int], sample_rate: int) -> str:
    """ "first samples are not simultaneous: …" naming each module's lag in samples, or ""
    when every module's first sample (ticks) is the same."""
    if len(set(firsts.values())) <= 1:
        return ""
    reference = min(firsts.values())
    spread = ", ".join(
        f"{a} +{(t - reference) / (1 << 32) * sample_rate:.0f} samples"
        for a, t in firsts.items()
        if t != reference
    )
    return f"first samples are not simultaneous: {spread}"


def stream_file_name(name: str, module: int, channel: int | None = None) -> str:
    """``NAME.<n>.stream`` (single socket), ``NAME.<n>.ch<c>.stream`` (one per channel)."""
    if channel is not None:
        return f"{name}.{module}.ch{channel}.stream"
    return f"{name}.{module}.stream"


def lost_samples(
    receiver: StreamReceiver, channels: list[int], missing: dict[int, int] | None = None
) -> dict[str, int]:
    """Samples missing per channel (``"channel number": count``) where a block began later
    than the one before it ended (a dropped stream connected again, blocks the module dropped);
    only channels that miss any. ``missing`` per signal id (default: the receiver's own)."""
    lost: dict[str, int] = {}
    if missing is None:
        missing = receiver.tap.missing_samples()
    for sid, count in missing.items():
        key = str(channels[sid - 1] if 0 < sid <= len(channels) else sid)
        lost[key] = lost.get(key, 0) + count
    return lost
