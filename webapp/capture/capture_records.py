"""A recording's capture.json: the record made when it starts (modules, setups, labels,
calibrations, test metadata) and its ending (first-sample spread, recorded time, overruns,
outcome), written and announced. A base class of :class:`webapp.capture.recording.Recording`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from webapp.calibration.records import channel_calibrations
from webapp.capture import store
from webapp.capture.events import CaptureFinished, Event, EventBus, Outcome, RecordingTime, Warning
from webapp.capture.labels import labelled_channels
from webapp.capture.outputs import HandOutputs
from webapp.capture.session import ModuleRun, PendingCapture, Session


class CaptureRecords:
    """capture.json steps of :class:`~webapp.capture.orchestrator.Orchestrator` (which provides
    the state and the event publishing declared here)."""

    bus: EventBus
    data_dir: Path
    last_capture_id: str | None
    last_outcome: str | None
    last_folder: Path | None
    _lock: threading.RLock
    _capture: store.CaptureRecord | None
    _finished_capture: store.CaptureRecord | None
    _recording: bool
    outputs: HandOutputs

    def _publish(self, event: Event) -> None:
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
