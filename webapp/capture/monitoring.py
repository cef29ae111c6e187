"""Monitoring: the measurement runs and every viewer sees it live; recordings are windows cut
from it (by hand, by a level trigger with pre-trigger time, at a set time, or as consecutive
segments), each a capture of its own.

A base class of :class:`webapp.capture.orchestrator.Orchestrator`, like
:class:`webapp.capture.recording.Recording` (whose stream connection, stop and drain it uses).
The receivers keep a :class:`~webapp.capture.window.StreamRing` instead of a file; a window is
a :class:`~webapp.capture.window.WindowWriter` per stream, all with the same start and end
times, so every module's file of a window starts at the same sample and holds the same span.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from webapp.capture import store
from webapp.capture.diskspace import DiskWatch, check_folder, expected_rate
from webapp.capture.events import (
    MonitorStatus,
    Outcome,
    Phase,
    RecordingTime,
    TriggerFired,
    Warning,
)
from webapp.capture.receiver import StreamReceiver
from webapp.capture.session import (
    CaptureBusyError,
    PendingCapture,
    Session,
    parallel,
)
from webapp.capture.settings import SettingsError
from webapp.capture.trigger import LevelDetector, RecordPlan
from webapp.capture.windows import MonitorRequest, MonitorRun, WindowCaptures
from webapp.openapi.model import BLOCK_VALUES

log = logging.getLogger(__name__)

TICKS = 1 << 32
MONITOR_STATUS_INTERVAL_S = 0.25
WINDOW_END_TIMEOUT_S = 10.0
"""After Stop: how long the open windows may take to reach their (new) end."""
SCHEDULE_LEAD_S = 0.5
"""A recording set to start at a time is opened this long before it."""


class Monitoring(WindowCaptures):
    """Monitoring steps of :class:`~webapp.capture.orchestrator.Orchestrator`."""

    data_dir: Path
    _monitor: MonitorRun | None
    _monitor_wanted: MonitorRequest | None

    def _new_pending(
        self, name: str, duration: float | None, folder: Path | None
    ) -> PendingCapture:
        raise NotImplementedError

    # --- public commands (called under no lock) ---------------------------------------------

    @property
    def monitoring(self) -> bool:
        return self._monitor is not None

    def check_plan(self, s: Session, plan: RecordPlan) -> None:
        """Every rule a plan must meet on this rig, before anything records."""
        plan.validate()
        plan.check_memory(expected_rate(s))
        spec = plan.trigger
        if plan.mode == "trigger" and spec is None:
            raise SettingsError("trigger", "give the trigger: module, channel, slope and level")
        if spec is not None:
            if spec.module > len(s.modules):
                raise SettingsError(
                    "trigger.module", f"the rig has {len(s.modules)} modules, not {spec.module}"
                )
            m = s.modules[spec.module - 1]
            if m.channels and spec.channel not in m.channels:
                raise SettingsError(
                    "trigger.channel",
                    f"module {spec.module} has no enabled channel {spec.channel} (enabled: "
                    f"{', '.join(map(str, m.channels))})",
                )

    def record_window(self, plan: RecordPlan) -> None:
        """While monitoring: start recording by ``plan`` (raises when one already records)."""
        with self._cond:
            run, s = self._monitor, self._session
            if run is None or s is None:
                raise CaptureBusyError("not monitoring: start monitoring first")
            if run.plan is not None:
                raise CaptureBusyError("already recording; stop recording first")
        self.check_plan(s, plan)
        check_folder(self._window_root(run), expected_rate(s), s.settings.disk_margin_s)
        with self._cond:
            run.requests.append(("plan", plan))
            self._status_version += 1
            self._cond.notify_all()

    def stop_window(self) -> None:
        """End the recording (every open window ends at the next block boundary) and the
        plan (a trigger no longer fires); monitoring goes on."""
        self._monitor_request("stop-recording")

    def trigger_now(self) -> None:
        """A manual trigger: a recording with the plan's pre-trigger and duration, now."""
        run = self._monitor
        if run is None or run.plan is None or run.plan.mode != "trigger":
            raise CaptureBusyError("no trigger is armed: set a trigger and record first")
        self._monitor_request("trigger")

    def _monitor_request(self, what: str) -> None:
        with self._cond:
            run = self._monitor
            if run is None:
                raise CaptureBusyError("not monitoring")
            run.requests.append((what, None))
            self._status_version += 1
            self._cond.notify_all()

    # --- the monitoring session (the orchestrator's job) -------------------------------------

    def _monitor_session(self, s: Session, request: MonitorRequest) -> None:
        run = MonitorRun(request)
        run.retention_s = (request.plan or RecordPlan()).retention_s()
        with self._lock:
            self._monitor = run
        failed: str | None = None
        try:
            self._set_phase(Phase.CONNECTING, run.id)
            self._connect_streams(s, None, None, int(run.retention_s * TICKS))
            self._start_measurement(s, Phase.MONITORING, run.id)
            if request.plan is not None:
                run.requests.append(("plan", request.plan))
            self._monitor_loop(s, run)
            self._end_windows(s, run)
            self._stop_measurement(s)
        except Exception as exc:
            failed = self._wind_down(s, exc)
            raise
        finally:
            for w in list(run.windows):
                outcome = Outcome.FAILED if failed else Outcome.STOPPED
                self._finish_window(s, run, w, outcome, failed or self.stop_reason)
            parallel([r for m in s.modules for r in m.receivers], lambda r: r.close())
            for m in s.modules:
                if m.live is not None:
                    m.live.final_stats()
            for capture in run.unsummarized:  # the streams are quiet now: read the files
                try:
                    capture.write()
                except OSError as exc:
                    self._publish(Warning(message=f"writing capture.json failed: {exc}"))
            with self._lock:
                self._monitor = None
            self._publish(self._monitor_status(run, active=False))

    def _monitor_loop(self, s: Session, run: MonitorRun) -> None:
        stall_limit = self._watch_streams_from(s, time.monotonic())
        next_status = 0.0
        while True:
            with self._cond:
                self._raise_failure(s)
                if run.stop:
                    return
                requests, run.requests = run.requests, []
                fired, run.fired = run.fired, []
                if not requests and not fired:
                    self._cond.wait(0.05)
            for what, arg in requests:
                self._handle_request(s, run, what, arg)
            for t, manual in fired:
                self._triggered(s, run, t, manual)
            self._check_stalls(s, stall_limit)
            self._advance_plan(s, run)
            if run.windows and run.disk is not None and self._disk_full(run.disk):
                self._stop_plan(s, run)
            now = time.monotonic()
            if now >= next_status:
                next_status = now + MONITOR_STATUS_INTERVAL_S
                self._publish(self._monitor_status(run))
                if run.windows:
                    w = run.windows[-1]
                    window = w.capture.window or {}
                    end, start = window.get("end_ticks"), window.get("start_ticks")
                    duration = (end - start) / TICKS if end and start else None
                    self._publish(
                        RecordingTime(
                            elapsed_s=round(w.covered_ticks() / TICKS, 3), duration_s=duration
                        )
                    )
            if run.request.end_when_done and self._plan_done(run):
                return

    # --- plans and requests -----------------------------------------------------------------

    def _handle_request(self, s: Session, run: MonitorRun, what: str, arg: Any) -> None:
        if what == "plan":
            self._apply_plan(s, run, arg)
        elif what == "stop-recording":
            self._stop_plan(s, run)
        elif what == "trigger" and run.plan is not None and run.plan.mode == "trigger":
            now = self._stream_now(s)
            if now is not None:
                self._triggered(s, run, now, True)

    def _apply_plan(self, s: Session, run: MonitorRun, plan: RecordPlan) -> None:
        run.plan = plan
        run.events = run.segments = run.windows_done = 0
        run.last_segment_id = None
        run.disk = DiskWatch(
            self._window_root(run), expected_rate(s), s.settings.disk_margin_s, time.monotonic
        )
        retention = plan.retention_s()
        if retention > run.retention_s:
            run.retention_s = retention
            for m in s.modules:
                for r in m.receivers:
                    if r.ring is not None:
                        r.ring.retention_ticks = int(retention * TICKS)
        if plan.mode == "trigger":
            self._install_trigger(s, run, plan)
            return
        if plan.start_at is not None:
            run.scheduled = int(plan.start_at * TICKS)  # put on the sample grid when it opens
        else:
            run.scheduled = None
            self._start_plan_window(s, run, None)

    def _start_plan_window(self, s: Session, run: MonitorRun, start: int | None) -> None:
        """The first window of a manual or segmented plan, at ``start`` or the next boundary."""
        plan = run.plan
        assert plan is not None
        if start is None:
            start = self._next_boundary(s)
            if start is None:
                run.scheduled = -1  # no samples yet: start at the first boundary there is
                return
        run.scheduled = None
        total = (
            None if plan.duration_s is None else self._samples(plan.duration_s, s) * self._tps(s)
        )
        run.plan_end_ticks = None if total is None else start + total
        if plan.mode == "segments":
            assert plan.segment_s is not None
            length = self._samples(plan.segment_s, s) * self._tps(s)
            end = start + length
            if run.plan_end_ticks is not None:
                end = min(end, run.plan_end_ticks)
            run.next_segment_start = end
            self._open_window(s, run, "segment", start, end, {}, segment=1)
        else:
            end = run.plan_end_ticks
            self._open_window(s, run, "manual", start, end, {})

    def _install_trigger(self, s: Session, run: MonitorRun, plan: RecordPlan) -> None:
        spec = plan.trigger
        assert spec is not None
        m = s.modules[spec.module - 1]
        found = m.stream_of(spec.channel)
        if found is None:
            raise SettingsError(
                "trigger.channel", f"module {spec.module} does not stream channel {spec.channel}"
            )
        receiver, sid = found
        run.detector = None

        def on_watched(signal: int, t: int, raw: Any, _r: StreamReceiver = receiver) -> None:
            if signal != sid:
                return
            det = run.detector
            if det is None:
                interp = _r.tap.interpretations.get(sid)
                tps = _r.tap.tps(sid)
                if interp is None or not tps:
                    return
                det = LevelDetector(spec, interp.scale_factor, interp.offset, tps)
                run.trigger_unit = interp.unit
                run.detector = det
            hit = det.feed(t, raw)
            if hit is not None:
                self._rearm(s, run, det, hit)
                with self._cond:
                    run.fired.append((hit, False))
                    self._cond.notify_all()

        receiver.watch(sid, "trigger", on_watched)

    def _rearm(self, s: Session, run: MonitorRun, det: LevelDetector, hit: int) -> None:
        """After an event: the next one no earlier than the window's end plus the hold-off, and
        none after the plan's last one (runs on the receiver, before the event is queued)."""
        plan = run.plan
        if plan is None:
            det.enabled = False
            return
        post = self._samples(plan.duration_s or 0.0, s) * self._tps(s)
        det.armed_from = hit + post + int(plan.hold_off_s * TICKS)
        det.fired += 1
        if plan.events is not None and det.fired >= plan.events:
            det.enabled = False

    def _triggered(self, s: Session, run: MonitorRun, t: int, manual: bool) -> None:
        plan = run.plan
        if plan is None or plan.mode != "trigger" or plan.trigger is None:
            return
        if plan.events is not None and run.events >= plan.events:
            return
        if manual and run.detector is not None:
            self._rearm(s, run, run.detector, t)
        run.events += 1
        tps = self._tps(s)
        pre = self._samples(plan.pre_trigger_s, s) * tps
        post = self._samples(plan.duration_s or 0.0, s) * tps
        spec = plan.trigger
        info = {
            "trigger": {
                **spec.to_json(),
                "unit": run.trigger_unit,
                "manual": manual,
                "time_ticks": t,
                "time": store.iso(t / TICKS),
                "pre_trigger_s": plan.pre_trigger_s,
                "post_trigger_s": plan.duration_s,
                "hold_off_s": plan.hold_off_s,
                "event": run.events,
                "events": plan.events,
            }
        }
        w = self._open_window(s, run, "trigger", t - pre, t + post, info)
        self._publish(
            TriggerFired(
                capture_id=w.pending.capture_id,
                module=spec.module,
                channel=spec.channel,
                slope=spec.slope,
                level=spec.level,
                unit=run.trigger_unit,
                time_ticks=t,
                event=run.events,
                manual=manual,
            )
        )

    def _stop_plan(self, s: Session, run: MonitorRun) -> None:
        """Stop recording: open windows end at the next boundary; the plan is over."""
        end = self._next_boundary(s)
        block = BLOCK_VALUES * self._tps(s)
        for w in run.windows:
            window = w.capture.window or {}
            current, start = window.get("end_ticks"), window.get("start_ticks")
            if end is None or start is None:
                continue
            stop_at = max(end, start + block)  # a recording stopped at once still has a block
            if current is None or current > stop_at:
                w.stopped = True
                w.set_end(stop_at)
        self._disarm_trigger(s, run)
        run.plan = None
        run.scheduled = None
        run.next_segment_start = None

    def _disarm_trigger(self, s: Session, run: MonitorRun) -> None:
        run.detector = None
        for m in s.modules:
            for r in m.receivers:
                r.unwatch("trigger")

    def _plan_done(self, run: MonitorRun) -> bool:
        plan = run.plan
        if run.windows or run.requests or run.fired:
            return False
        if plan is None:
            return run.windows_done > 0
        if plan.mode == "trigger":
            return plan.events is not None and run.events >= plan.events
        return run.scheduled is None and run.next_segment_start is None and run.windows_done > 0

    def _advance_plan(self, s: Session, run: MonitorRun) -> None:
        """Open what is due, chain segments, finish what is done."""
        if run.scheduled is not None and run.plan is not None:
            if run.scheduled < 0:
                self._start_plan_window(s, run, None)
            else:
                now = self._stream_now(s)
                if now is not None and now >= run.scheduled - int(SCHEDULE_LEAD_S * TICKS):
                    self._start_plan_window(s, run, self._on_grid(s, run.scheduled))
        for w in list(run.windows):
            if not w.done:
                continue
            follower = None
            start = run.next_segment_start
            plan = run.plan
            if w.segment is not None and plan is not None and start is not None and not w.stopped:
                end_total = run.plan_end_ticks
                if end_total is None or start < end_total:
                    assert plan.segment_s is not None
                    end = start + self._samples(plan.segment_s, s) * self._tps(s)
                    if end_total is not None:
                        end = min(end, end_total)
                    run.next_segment_start = end
                    follower = self._open_window(
                        s, run, "segment", start, end, {}, segment=w.segment + 1, after=w
                    )
                else:
                    run.next_segment_start = None
            outcome = Outcome.STOPPED if w.stopped else Outcome.COMPLETED
            self._finish_window(s, run, w, outcome, self.stop_reason if w.stopped else "")
            if follower is None and w.segment is not None:
                run.next_segment_start = None
            if plan is not None and plan.mode == "manual":
                run.plan = None

    # --- windows ----------------------------------------------------------------------------

    def _end_windows(self, s: Session, run: MonitorRun) -> None:
        """Before the measurement stops: every open window ends at the next boundary, and
        gets the time to reach it."""
        if not run.windows:
            return
        self._stop_plan(s, run)
        deadline = time.monotonic() + WINDOW_END_TIMEOUT_S
        while run.windows and time.monotonic() < deadline:
            self._advance_plan(s, run)
            if run.windows:
                with self._cond:
                    if s.stream_failure is not None:
                        return
                    self._cond.wait(0.05)

    def _monitor_status(self, run: MonitorRun, active: bool = True) -> MonitorStatus:
        s = self._session
        rings = [r.ring for m in (s.modules if s else []) for r in m.receivers if r.ring]
        held = min((g.held_ticks() for g in rings), default=0) / TICKS
        disk = run.disk.left_s if (run.disk is not None and run.windows) else None
        return MonitorStatus(
            measurement=run.id,
            active=active,
            ring_s=round(held, 3),
            ring_retention_s=run.retention_s,
            ring_bytes=sum(g.bytes_held for g in rings),
            plan=run.plan.to_json() if run.plan else None,
            trigger=run.trigger_state(),
            events=run.events,
            segments=run.segments,
            recording=[w.pending.capture_id for w in run.windows],
            recorded_s=round(run.windows[-1].covered_ticks() / TICKS, 3) if run.windows else 0.0,
            disk_s=round(disk, 1) if disk is not None else None,
        )
