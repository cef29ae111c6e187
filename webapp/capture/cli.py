"""``lanxi-dashboard capture``: HBK's multi-module tutorial as a command, on the orchestrator.

    lanxi-dashboard capture ADDR ADDR ... [-n NAME] [-t SECONDS] [-d DOMAIN] [-o DIR]
                            [--ptp-timeout SECONDS]
    lanxi-dashboard capture --return-to-idle ADDR ...

Writes ``NAME.<n>.stream`` (module n, the first address is the PTP master) and ``capture.json``
into DIR, prints progress, exits 0 on success, 1 with the error on failure, 2 for bad input and
130 when interrupted. Ctrl-C stops the recording (or abandons the set-up) and tears everything
down; a second Ctrl-C quits without waiting for the teardown.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from webapp.capture import events as ev
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import CaptureBusyError, Orchestrator
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.capture.store import CAPTURE_JSON, read_capture
from webapp.openapi.client import ModuleError
from webapp.openapi.model import FAULT_KINDS, FAULT_NAMES

PTP_REPORT_INTERVAL_S = 10.0

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "capture",
        help="record a sample-synchronous capture from LAN-XI modules",
        description="Record a sample-synchronous capture from two or more LAN-XI modules (PTP), "
        "or from one module on its own. Writes NAME.<n>.stream per module and capture.json.",
    )
    p.add_argument("addrs", nargs="+", metavar="ADDR", help="module addresses, PTP master first")
    p.add_argument("-n", "--name", default="My Measurement", help="name of the measurement")
    p.add_argument(
        "-t", "--time", type=float, default=10.0, metavar="SECONDS", help="duration (default 10)"
    )
    p.add_argument(
        "-d", "--ptp-domain", type=int, default=42, metavar="DOMAIN", help="PTP domain, 4..127"
    )
    p.add_argument(
        "-o", "--output", default=".", metavar="DIR", help="folder for the files (default .)"
    )
    p.add_argument(
        "--ptp-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for PTP lock (default 600)",
    )
    p.add_argument(
        "--state-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for each other state (default 30)",
    )
    p.add_argument("--bandwidth", help='e.g. "25.6 kHz" (default: the highest all modules have)')
    p.add_argument(
        "--multi-socket", action="store_true", help="one stream socket and file per channel"
    )
    p.add_argument(
        "--until-stopped", action="store_true", help="record until Ctrl-C instead of -t seconds"
    )
    p.add_argument(
        "--keep-ptp",
        action="store_true",
        help="leave the modules in PTP mode afterwards (the next capture locks faster)",
    )
    p.add_argument(
        "--return-to-idle",
        action="store_true",
        help="record nothing: walk each module another program left open back to Idle "
        "(stop, finish, cancel, close as its state asks) and exit",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.return_to_idle:
        return return_to_idle(args.addrs, out)
    folder = Path(args.output)
    settings = CaptureSettings(
        modules=list(args.addrs),
        name=args.name,
        duration_s=None if args.until_stopped else args.time,
        ptp_domain=args.ptp_domain,
        bandwidth=args.bandwidth,
        multi_socket=args.multi_socket,
        ptp_timeout_s=args.ptp_timeout,
        state_timeout_s=args.state_timeout,
        return_to_standalone=not args.keep_ptp,
    )
    try:  # bad input is refused before any module is contacted
        settings.validate()
    except SettingsError as exc:
        print(f"error: {_in_option_terms(exc)}", file=out, flush=True)
        return EXIT_BAD_INPUT
    bus = EventBus()
    printer = ProgressPrinter(settings, out)
    bus.subscribe(printer)
    orchestrator = Orchestrator(bus, folder)

    interrupts = _Interrupts()
    previous = signal.signal(signal.SIGINT, interrupts.handler)
    try:
        duration = (
            "until stopped" if settings.duration_s is None else f"{settings.duration_s:g}-second"
        )
        printer.line(
            f'Creating {duration} measurement "{settings.name}" on modules at '
            f"{', '.join(settings.modules)}"
        )
        try:
            orchestrator.start(settings, folder=folder)
        except SettingsError as exc:
            printer.line(f"error: {_in_option_terms(exc)}")
            return EXIT_BAD_INPUT
        except (ModuleError, CaptureBusyError) as exc:
            printer.line(f"error: {exc}")
            return EXIT_FAILED
        stopping = False
        while not orchestrator.wait(0.2):
            if interrupts.count and not stopping:
                stopping = True
                printer.line("Stopping (Ctrl-C again to quit without tearing down)...")
                orchestrator.stop()
            if interrupts.count >= 2:
                printer.line("Quitting without teardown: modules may need a reset.")
                return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)

    if orchestrator.phase == Phase.FAILED:
        if orchestrator.last_error not in printer.errors:
            printer.line(f"error: {orchestrator.last_error}")
        _summary(printer, folder)
        return EXIT_FAILED
    _summary(printer, folder)
    if interrupts.count and not args.until_stopped:
        return EXIT_INTERRUPTED
    return EXIT_OK


_OPTIONS = {
    "name": "-n/--name",
    "duration_s": "-t/--time",
    "ptp_domain": "-d/--ptp-domain",
    "ptp_timeout_s": "--ptp-timeout",
    "state_timeout_s": "--state-timeout",
    "bandwidth": "--bandwidth",
}


def _in_option_terms(exc: SettingsError) -> str:
    """The settings' message with a setting's name said as the option that sets it."""
    option = _OPTIONS.get(exc.field or "")
    if option and exc.message.startswith(f"{exc.field} "):
        return f"{option} {exc.message[len(exc.field or '') + 1 :]}"
    return exc.message


def return_to_idle(addresses: list[str], out: TextIO) -> int:
    orchestrator = Orchestrator(EventBus(), Path("."))
    failed = False
    for address in addresses:
        try:
            sent = orchestrator.return_to_idle(address)
        except ModuleError as exc:
            print(f"error: {exc}", file=out)
            failed = True
            continue
        done = f"sent {', '.join(sent)}; now Idle" if sent else "already Idle"
        print(f"{address}: {done}", file=out)
    return EXIT_FAILED if failed else EXIT_OK


class _Interrupts:
    """Ctrl-C only counts here; the main loop acts on it (a signal handler must not take the
    orchestrator's locks)."""

    def __init__(self) -> None:
        self.count = 0

    def handler(self, signum: int, frame: Any) -> None:
        self.count += 1


def _summary(printer: ProgressPrinter, folder: Path) -> None:
    if not (folder / CAPTURE_JSON).is_file():
        return
    try:
        meta = read_capture(folder)
    except (OSError, ValueError):
        return
    if meta.get("outcome") == "running":
        return
    for m in meta.get("modules", []):
        for f in m.get("files", []):
            printer.line(
                f'Stream from {m["address"]} saved as "{folder / f["file"]}" ({f["bytes"]} bytes)'
            )
    printer.line(f"Capture description: {folder / CAPTURE_JSON}")


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
            self.line(f'Recording "{e.name}" into {e.folder}')
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
