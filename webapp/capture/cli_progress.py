"""What the ``capture`` command prints: progress lines from the orchestrator's events and the
summary of the capture written."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TextIO

from webapp.capture import events as ev
from webapp.capture import store
from webapp.capture.events import Phase
from webapp.capture.settings import CaptureSettings
from webapp.capture.store import CAPTURE_JSON, read_capture
from webapp.openapi.model import FAULT_KINDS, FAULT_NAMES

PTP_REPORT_INTERVAL_S = 10.0


def print_summary(printer: ProgressPrinter, folder: Path) -> bool:
    """The files and what the data is worth; False when the capture is not sample-synchronous
    (a module lost PTP lock while recording)."""
    if not (folder / CAPTURE_JSON).is_file():
        return True
    try:
        meta = read_capture(folder)
    except (OSError, ValueError):
        return True
    if meta.get("outcome") == "running":
        return True
    for m in meta.get("modules", []):
        for f in m.get("files", []):
            printer.line(
                f'Stream from {m["address"]} saved as "{folder / f["file"]}" ({f["bytes"]} bytes)'
            )
    printer.line(f"Capture description: {folder / CAPTURE_JSON}")
    quality = meta.get("quality")
    if not isinstance(quality, dict):
        return True
    counts = [f"{quality.get(k, 0)} {k}" for k in ("errors", "warnings") if quality.get(k)]
    printer.line(
        f"Data quality: {quality.get('verdict')}"
        + (f" ({', '.join(counts)}; lanxi-dashboard inspect {folder})" if counts else "")
    )
    spans = quality.get("ptp_unlocked") or []
    if spans:
        where = "; ".join(
            f"module {s.get('module')} from {s.get('from_s') or 0:.3f} s"
            + (f" to {s['to_s']:.3f} s" if s.get("to_s") is not None else " to the end")
            for s in spans
        )
        printer.line(f"error: NOT sample-synchronous: PTP lock lost by {where}")
        return False
    return True


class ProgressPrinter:
    """Turns orchestrator events into terminal lines (called from background threads)."""

    def __init__(self, settings: CaptureSettings, out: TextIO) -> None:
        self.out = out
        self.numbers = {a: i + 1 for i, a in enumerate(settings.modules)}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._ptp: dict[str, str] = {}
        self._ptp_report = time.monotonic()
        self._recorded_second = -1
        self.errors: set[str] = set()

    def line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def name(self, address: str | None) -> str:
        if address is None:
            return ""
        number = self.numbers.get(address)
        return f"Module {number} ({address})" if number else address

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.PhaseChanged):
            elapsed = time.monotonic() - self.started
            detail = f": {e.detail}" if e.detail and e.phase != Phase.FAILED else ""
            self.line(f"[{elapsed:6.1f} s] {e.phase}{detail}")
        elif isinstance(e, ev.PtpProgress):
            self._on_ptp(e)
        elif isinstance(e, ev.TransducersDetected):
            for i, t in enumerate(e.transducers):
                if t:
                    ttype = (t.get("type") or {}).get("number", "?")
                    self.line(
                        f"{self.name(e.module)} channel {i + 1}: {ttype} s/n {t.get('serialNumber')}, "
                        f"CCLD {'on' if t.get('requiresCcld') else 'off'}, polarization voltage "
                        f"{'on' if t.get('requires200V') else 'off'}"
                    )
        elif isinstance(e, ev.CaptureStarted):
            self._recorded_second = -1  # each capture (window, segment) counts from 0
            self.line(f'Recording "{e.name}" into {e.folder}')
        elif isinstance(e, ev.TriggerFired):
            how = "manual trigger" if e.manual else f"module {e.module} channel {e.channel} "
            if not e.manual:
                how += f"{'rose' if e.slope == 'rising' else 'fell'} through {e.level:g} {e.unit}"
            self.line(f"Trigger {e.event}: {how.strip()} at {store.iso(e.time_ticks / (1 << 32))}")
        elif isinstance(e, ev.RecordingTime):
            second = int(e.elapsed_s)
            if second != self._recorded_second:
                self._recorded_second = second
                of = f" / {e.duration_s:g} s" if e.duration_s is not None else ""
                self.line(f"Measuring {e.elapsed_s:5.1f} s{of}")
        elif isinstance(e, ev.ChannelFault):
            faults = [
                f"{FAULT_NAMES[k]} ({'now' if getattr(e, k) == 'curr' else 'earlier'})"
                for k in FAULT_KINDS
                if getattr(e, k) != "none"
            ]
            self.line(
                f"  {self.name(e.module)} channel {e.channel}: {', '.join(faults) or 'no fault'}"
            )
        elif isinstance(e, ev.DataQualityChanged):
            flags = ", ".join(e.flags) or "valid again"
            self.line(f"  {self.name(e.module)} channel {e.channel}: data {flags}")
        elif isinstance(e, ev.Warning):
            self.line(f"warning: {e.message}")
        elif isinstance(e, ev.Error):
            self.errors.add(e.message)
            self.line(f"error: {e.message}")
        elif isinstance(e, ev.CaptureFinished):
            reason = f" ({e.reason})" if e.reason and e.reason not in self.errors else ""
            self.line(f"Capture {e.outcome}{reason}")

    def _on_ptp(self, e: ev.PtpProgress) -> None:
        changed = self._ptp.get(e.module) != e.status
        self._ptp[e.module] = e.status
        if changed:
            self.line(f"  {self.name(e.module)} PTP {e.status} after {e.elapsed_s:.1f} s")
        now = time.monotonic()
        if now - self._ptp_report >= PTP_REPORT_INTERVAL_S and not all(
            s == "Locked" for s in self._ptp.values()
        ):
            self._ptp_report = now
            waiting = sum(1 for s in self._ptp.values() if s != "Locked")
            self.line(
                f"  waiting for {waiting} module(s) to lock onto PTP: "
                f"{e.elapsed_s:.0f} s of {e.timeout_s:g} s"
            )
