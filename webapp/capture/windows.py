"""Windows of a monitored measurement: the data of a monitoring session, and the steps that
open a window (a capture folder, a writer per stream) and finish it (files closed, capture.json
with its ``window`` section). A base class of :class:`webapp.capture.monitoring.Monitoring`."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.capture import store
from webapp.capture.capture_records import first_sample_spread
from webapp.capture.diskspace import DiskWatch
from webapp.capture.events import CaptureFinished, CaptureStarted, Outcome, Warning
from webapp.capture.receiver import StreamFile, StreamReceiver
from webapp.capture.recording import Recording
from webapp.capture.session import ModuleRun, PendingCapture, Session, parallel
from webapp.capture.stream_connections import lost_samples, stream_file_name
from webapp.capture.trigger import LevelDetector, RecordPlan
from webapp.capture.window import WindowWriter
from webapp.openapi.model import BLOCK_VALUES

TICKS = 1 << 32


@dataclass
class WindowFile:
    module: ModuleRun
    receiver: StreamReceiver
    writer: WindowWriter
    record: store.FileRecord
    sink: StreamFile | None = None


@dataclass
class Window:
    """One recording cut from the measurement: a capture with a file per stream."""

    pending: PendingCapture
    capture: store.CaptureRecord
    files: list[WindowFile]
    segment: int | None = None
    stopped: bool = False

    @property
    def done(self) -> bool:
        return all(f.writer.done for f in self.files)

    def set_end(self, end_ticks: int) -> None:
        for f in self.files:
            with f.receiver.ring.lock:  # type: ignore[union-attr]
                f.writer.end_ticks = end_ticks
                f.writer.advance()
        assert self.capture.window is not None
        self.capture.window["end_ticks"] = end_ticks

    def covered_ticks(self) -> int:
        return min((f.writer.covered_ticks() for f in self.files), default=0)


@dataclass
class MonitorRequest:
    id: str
    plan: RecordPlan | None = None
    folder: Path | None = None
    """Where window capture folders go (default ``<data_dir>/captures``)."""
    end_when_done: bool = False
    """Stop monitoring once the plan is done (the terminal's ``capture --trigger``)."""


@dataclass
class MonitorRun:
    request: MonitorRequest
    plan: RecordPlan | None = None
    windows: list[Window] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    fired: list[tuple[int, bool]] = field(default_factory=list)
    events: int = 0
    segments: int = 0
    windows_done: int = 0
    detector: LevelDetector | None = None
    trigger_unit: str = ""
    scheduled: int | None = None
    """Start time (ticks) of a plan waiting for its moment."""
    next_segment_start: int | None = None
    plan_end_ticks: int | None = None
    stop: bool = False
    last_segment_id: str | None = None
    disk: DiskWatch | None = None
    retention_s: float = 0.0
    unsummarized: list[store.CaptureRecord] = field(default_factory=list)
    """Windows finished while the measurement streamed, whose quality summary is still due."""

    @property
    def id(self) -> str:
        return self.request.id

    def trigger_state(self) -> str:
        plan = self.plan
        if plan is None or plan.mode != "trigger":
            return "off"
        if plan.events is not None and self.events >= plan.events:
            return "done" if not self.windows else "holding"
        if self.windows:
            return "holding"
        return "armed"


class WindowCaptures(Recording):
    """Opening and finishing the windows of :class:`~webapp.capture.monitoring.Monitoring`."""

    data_dir: Path

    def _window_root(self, run: MonitorRun) -> Path:
        return run.request.folder or self.data_dir / store.CAPTURES_DIR

    def _open_window(
        self,
        s: Session,
        run: MonitorRun,
        kind: str,
        start: int,
        end: int | None,
        info: dict[str, Any],
        segment: int | None = None,
        after: Window | None = None,
    ) -> Window:
        plan = run.plan
        name = plan.name if plan is not None else "Monitor"
        if segment is not None:
            name = f"{name}-seg{segment:04d}"
        elif kind == "trigger":
            name = f"{name}-event{run.events:04d}"
        duration = (end - start) / TICKS if end is not None else None
        root = self._window_root(run)
        capture_id = store.new_capture_id(name, root=root)
        pending = PendingCapture(capture_id, name, duration, root / capture_id)
        pending.test = plan.test if plan is not None else None
        pending.folder.mkdir(parents=True, exist_ok=True)
        capture = self._capture_record(s, pending)
        window: dict[str, Any] = {
            "measurement": run.id,
            "kind": kind,
            "start_ticks": start,
            "end_ticks": end,
            "start_time": store.iso(start / TICKS),
            **info,
        }
        if segment is not None:
            window["segment"] = {
                "index": segment,
                "previous": after.pending.capture_id if after is not None else None,
                "next": None,
            }
            run.segments = segment
        capture.window = window
        files: list[WindowFile] = []
        w = Window(pending, capture, files, segment=segment)
        previous = {id(f.receiver): f.writer for f in after.files} if after is not None else {}
        for m in s.modules:
            record = capture.modules[m.number - 1]
            record.files = []
            for r in m.receivers:
                file_name = stream_file_name(name, m.number, r.channel)
                frecord = store.FileRecord(file=file_name, channels=list(r.channels))
                record.files.append(frecord)
                wf = WindowFile(m, r, None, frecord)  # type: ignore[arg-type]

                def open_sink(
                    _wf: WindowFile = wf, _path: Path = pending.folder / file_name
                ) -> StreamFile:
                    _wf.sink = StreamFile(_path)
                    return _wf.sink

                wf.writer = WindowWriter(r.ring, open_sink, start, end)  # type: ignore[arg-type]
                files.append(wf)
        try:
            capture.write()
        except OSError as exc:
            self._publish(Warning(message=f"writing capture.json failed: {exc}"))
        for wf in files:
            assert wf.receiver.ring is not None
            wf.receiver.ring.add(wf.writer, replacing=previous.get(id(wf.receiver)))
            runtime.sleep(0)  # one stream at a time: the receivers go on in between
        if after is not None and after.capture.window is not None:
            after.capture.window["segment"]["next"] = capture_id
        run.windows.append(w)
        for m in s.modules:
            if m.acoustics is not None:
                m.acoustics.reset()  # Leq, LAFmax and peaks: since this recording started
        with self._lock:
            self._capture = capture
            self.current_capture_id = capture_id
            self._recording = True
        self._publish(
            CaptureStarted(
                capture_id=capture_id,
                name=name,
                folder=str(pending.folder),
                modules=[m.address for m in s.modules],
                duration_s=duration,
            )
        )
        return w

    def _finish_window(
        self, s: Session, run: MonitorRun, w: Window, outcome: Outcome, reason: str
    ) -> None:
        if w in run.windows:
            run.windows.remove(w)
        run.windows_done += 1
        for f in w.files:
            if f.receiver.ring is not None:
                f.receiver.ring.remove(f.writer)

        def close(f: WindowFile) -> None:
            try:
                if f.sink is None:  # nothing reached this window: its file says so, empty
                    f.sink = StreamFile(w.pending.folder / f.record.file)
                f.sink.close()
            except OSError as exc:
                self._publish(
                    Warning(
                        message=f"closing {f.sink.path.name} failed: {exc}", module=f.module.address
                    )
                )

        parallel(w.files, close)
        capture = w.capture
        window = capture.window or {}
        notes: list[str] = []
        if outcome is Outcome.COMPLETED and not w.done:
            outcome = Outcome.STOPPED
        for m in s.modules:
            mine = [f for f in w.files if f.module is m]
            record = capture.modules[m.number - 1]
            firsts = [f.writer.first_ticks for f in mine if f.writer.first_ticks is not None]
            record.first_ticks = min(firsts) if firsts else None
            for f in mine:
                f.record.bytes = f.writer.bytes
                f.record.sha256 = (
                    f.sink.digest if f.sink is not None else hashlib.sha256().hexdigest()
                )
                f.record.lost_samples = lost_samples(
                    f.receiver, f.receiver.channels, f.writer.missing_samples()
                )
                if not f.writer.bytes:
                    f.record.bytes = 0
                for note in f.writer.inexact:
                    notes.append(f"module {m.number}: {note}")
        firsts = {m.address: capture.modules[m.number - 1].first_ticks for m in s.modules}
        known = {a: t for a, t in firsts.items() if t is not None}
        spread = first_sample_spread(known, s.sample_rate)
        if spread:
            notes.append(spread)
        start = window.get("start_ticks")
        first = known.get(s.master.address) or (min(known.values()) if known else None)
        capture.start_ticks = first
        if first is not None and start is not None and first > start:
            late = (first - start) / TICKS
            notes.append(
                f"the recording starts {late:.3f} s after its window start: the measurement "
                "had not been running that long, or the ring no longer held it"
            )
        if not known:
            notes.append("no samples: the recording ended before its window began")
        window["first_ticks"] = first
        capture.recorded_s = round(w.covered_ticks() / TICKS, 6)
        for note in notes:
            self._publish(Warning(message=f"{capture.id}: {note}"))
        text = "; ".join(x for x in [reason, *notes] if x)
        capture.outcome, capture.reason = str(outcome), text
        capture.ended = time.time()
        finished = CaptureFinished(
            capture_id=capture.id, outcome=str(outcome), reason=text, folder=str(capture.folder)
        )
        capture.add_event(finished)
        try:
            capture.write(summarize=False)  # summarized once the measurement has stopped
        except OSError as exc:
            self._publish(Warning(message=f"writing capture.json failed: {exc}"))
        run.unsummarized.append(capture)
        with self._lock:
            if self._capture is capture:
                self._capture = run.windows[-1].capture if run.windows else None
            self._finished_capture = capture
            self.last_capture_id = capture.id
            self.last_outcome = str(outcome)
            self.last_folder = capture.folder
            self._recording = bool(run.windows)
            if not run.windows:
                self.current_capture_id = None
        self.bus.publish(finished)

    # --- stream time ------------------------------------------------------------------------

    def _tps(self, s: Session) -> int:
        return TICKS // s.sample_rate

    @staticmethod
    def _samples(seconds: float, s: Session) -> int:
        return round(seconds * s.sample_rate)

    def _stream_now(self, s: Session) -> int | None:
        """The latest sample time any stream has delivered (None before any)."""
        latest = [r.ring.latest_ticks for m in s.modules for r in m.receivers if r.ring]
        latest = [t for t in latest if t]
        return max(latest) if latest else None

    def _next_boundary(self, s: Session) -> int | None:
        """The next block boundary of the master's stream at or after the latest sample any
        module has delivered (None before the master's first sample)."""
        now = self._stream_now(s)
        origin = s.master.first_ticks()
        if now is None or origin is None:
            return None
        block = BLOCK_VALUES * self._tps(s)
        k = -(-(now - origin) // block)
        return origin + max(0, k) * block

    def _on_grid(self, s: Session, ticks: int) -> int:
        """``ticks`` moved up to the next sample time of the measurement (of the master's
        samples; before the first of them, of the absolute grid of sample periods)."""
        origin = s.master.first_ticks()
        tps = self._tps(s)
        if origin is None:
            return ticks + (-ticks) % tps
        return origin + -(-(ticks - origin) // tps) * tps
