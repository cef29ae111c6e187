"""``lanxi-dashboard capture``: HBK's multi-module tutorial as a command, on the orchestrator.

    lanxi-dashboard capture ADDR ADDR ... [-n NAME] [-t SECONDS] [-d DOMAIN] [-o DIR]
                            [--ptp-timeout SECONDS]
    lanxi-dashboard capture ADDR ... --trigger M:CH>LEVEL [--pre-trigger S] [-t S] [--events N]
    lanxi-dashboard capture ADDR ... --segment S [-t TOTAL | --until-stopped] [--start-at TIME]
    lanxi-dashboard capture --return-to-idle ADDR ...

Writes ``NAME.<n>.stream`` (module n, the first address is the PTP master) and ``capture.json``
into DIR (with ``--trigger``, ``--segment`` or ``--start-at``: one capture folder per event or
segment under DIR, windows of the monitored measurement, see docs/capture.md), prints progress, exits 0 on success, 1 with the error on failure or when a module is
left non-Idle, 2 for bad input and 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)
when a signal ended a timed capture early. SIGINT (Ctrl-C) and SIGTERM stop the recording (or
abandon the set-up) and tear everything down, the master last, within ``--stop-timeout``
seconds (default 10); a second signal, or a teardown that takes longer, quits at once and says
which modules and which capture it leaves (see :mod:`webapp.capture.shutdown`). With
``--until-stopped`` a signal is the expected end: exit 0 when everything was returned to Idle.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from webapp.capture import events as ev
from webapp.capture import store
from webapp.capture.channeltable import TableError, read_table
from webapp.capture.diskspace import DISK_STOP
from webapp.capture.events import EventBus, Phase
from webapp.capture.names import check_name
from webapp.capture.orchestrator import CaptureBusyError, Orchestrator
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.capture.shutdown import (
    SHUTDOWN_TIMEOUT_S,
    ShutdownSignals,
    end_on_signal,
    exit_status,
    stopping_sentence,
)
from webapp.capture.store import CAPTURE_JSON, files_in_the_way, read_capture
from webapp.capture.teardown import left_sentence
from webapp.capture.trigger import RecordPlan, TriggerSpec
from webapp.capture.workersetting import add_receiver_workers_option
from webapp.openapi.client import ModuleError
from webapp.openapi.model import FAULT_KINDS, FAULT_NAMES

PTP_REPORT_INTERVAL_S = 10.0

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


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
        "--disk-margin",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="refuse to start unless the output folder's disk has room for this many seconds "
        "of data (default 30); while recording, warn below it and stop before the disk is full",
    )
    p.add_argument(
        "--fail-on-drop",
        action="store_true",
        help="end the capture when a stream drops (default: connect it again, go on, and "
        "count the samples it missed as lost)",
    )
    p.add_argument(
        "--until-stopped", action="store_true", help="record until Ctrl-C instead of -t seconds"
    )
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=SHUTDOWN_TIMEOUT_S,
        metavar="SECONDS",
        help="after SIGTERM or Ctrl-C, how long stopping and closing the modules may take "
        f"before the command quits anyway, naming what it leaves (default {SHUTDOWN_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--trigger",
        metavar="M:CH>LEVEL",
        help="record when module M's channel CH rises through LEVEL (in the channel's unit, "
        "e.g. 1:2>30 for 30 m/s^2); M:CH<LEVEL for falling. The measurement runs and is "
        "watched from the start; each event is a capture folder under -o DIR, -t seconds "
        "after the trigger",
    )
    p.add_argument(
        "--pre-trigger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --trigger: also keep this much before the trigger (default 0)",
    )
    p.add_argument(
        "--events",
        type=int,
        default=1,
        metavar="N",
        help="with --trigger: record N events, then stop (default 1; --until-stopped: until "
        "Ctrl-C)",
    )
    p.add_argument(
        "--hold-off",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --trigger: after an event's recording ends, ignore the trigger this long",
    )
    p.add_argument(
        "--segment",
        type=float,
        metavar="SECONDS",
        help="split the recording into consecutive captures of this many seconds (-t in all, "
        "or --until-stopped), one folder each under -o DIR, no sample lost or repeated",
    )
    p.add_argument(
        "--start-at",
        metavar="TIME",
        help="start recording at this time (ISO 8601, e.g. 2026-12-07T14:30:00Z, or seconds "
        "since 1970); the measurement is monitored until then",
    )
    p.add_argument(
        "--channel-table",
        metavar="CSV",
        help="name the channels: a channel table (module,channel,name,point,direction,group,"
        "note; docs/capture.md), copied into capture.json and the exports",
    )
    p.add_argument("--object", default="", help="the test object, for capture.json")
    p.add_argument("--operator", default="", help="who runs the test, for capture.json")
    p.add_argument("--notes", default="", help="notes on the test, for capture.json")
    p.add_argument(
        "--tag", action="append", default=[], help="a tag for the capture (repeat for more)"
    )
    p.add_argument(
        "--keep-ptp",
        action="store_true",
        help="leave the modules in PTP mode afterwards (the next capture locks faster)",
    )
    p.add_argument(
        "--generator",
        action="append",
        default=[],
        metavar="N:FILE",
        help="drive module N's generator (N from 1, as ADDR is listed) during each recording "
        'with FILE, a generator/output body {"outputs": [...]} (PROTOCOL.md §5.7); repeatable',
    )
    p.add_argument(
        "--generator-waveform",
        action="append",
        default=[],
        metavar="N:OUT:FILE[@GAIN]",
        help="stream sound file FILE (WAV, FLAC, … at 131072, 65536, 32768 or 16384 Hz; "
        "channel 1) through module N's generator output OUT during each recording, "
        "full scale × GAIN (default 1: ±10 V); repeatable (docs/capture.md)",
    )
    add_receiver_workers_option(p)
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
        on_stream_drop="fail" if args.fail_on_drop else "reconnect",
        disk_margin_s=args.disk_margin,
        test={"object": args.object, "operator": args.operator, "notes": args.notes,
              "tags": args.tag},
    )  # fmt: skip
    try:  # bad input is refused before any module is contacted
        if args.channel_table:
            settings.labels = read_table(Path(args.channel_table), settings.modules)
        settings.generators = generators_from_options(args.generator, settings.modules)
        add_waveform_outputs(settings.generators, args.generator_waveform, settings.modules)
        settings.validate()
        plan = _plan(args)
    except TableError as exc:
        print(f"error: {args.channel_table}: {exc.message}", file=out, flush=True)
        return EXIT_BAD_INPUT
    except SettingsError as exc:
        print(f"error: {_in_option_terms(exc)}", file=out, flush=True)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: --channel-table: {exc.strerror or exc}", file=out, flush=True)
        return EXIT_BAD_INPUT
    if not args.stop_timeout > 0:
        print("error: --stop-timeout must be more than 0 seconds", file=out, flush=True)
        return EXIT_BAD_INPUT
    if plan is not None:
        return _run_windows(args, settings, plan, folder, out)
    refusal = _would_overwrite(folder, settings.name)
    if refusal:
        print(f"error: {refusal}", file=out, flush=True)
        return EXIT_BAD_INPUT
    bus = EventBus()
    printer = ProgressPrinter(settings, out)
    bus.subscribe(printer)
    orchestrator = Orchestrator(bus, folder, receiver_workers=args.receiver_workers)
    duration = "until stopped" if settings.duration_s is None else f"{settings.duration_s:g}-second"
    printer.line(
        f'Creating {duration} measurement "{settings.name}" on modules at '
        f"{', '.join(settings.modules)}"
    )
    status, signals = _drive(
        args, printer, orchestrator, lambda: orchestrator.start(settings, folder=folder)
    )
    if status is not None:
        return status
    if orchestrator.phase == Phase.FAILED:
        _say_failure(printer, orchestrator)
        _summary(printer, folder)
        return EXIT_FAILED
    return _exit_status(args, printer, orchestrator, signals, _summary(printer, folder))


def _drive(
    args: argparse.Namespace, printer: ProgressPrinter, orchestrator: Orchestrator, begin: Any
) -> tuple[int | None, ShutdownSignals]:
    """Start the orchestrator's work (``begin``) and wait for it, ending it on SIGINT/SIGTERM
    within ``--stop-timeout``; returns an exit status when the command must end at once (bad
    input, a refusal, an overdue teardown), else None, with the signals seen."""
    with ShutdownSignals() as signals:
        try:
            begin()
        except SettingsError as exc:
            printer.line(f"error: {_in_option_terms(exc)}")
            return EXIT_BAD_INPUT, signals
        except (ModuleError, CaptureBusyError) as exc:
            printer.line(f"error: {exc}")
            return EXIT_FAILED, signals
        while not orchestrator.wait(0.1):
            if signals.count:
                printer.line(stopping_sentence(signals, args.stop_timeout))
                status = end_on_signal(orchestrator, signals, args.stop_timeout, printer.line)
                if status is not None:
                    return status, signals
                break
    return None, signals


def _say_failure(printer: ProgressPrinter, orchestrator: Orchestrator) -> None:
    if orchestrator.last_error not in printer.errors:
        printer.line(f"error: {orchestrator.last_error}")


def _exit_status(
    args: argparse.Namespace,
    printer: ProgressPrinter,
    orchestrator: Orchestrator,
    signals: ShutdownSignals,
    synchronous: bool,
) -> int:
    """After the work ended without failing: 1 when a module was left non-Idle, the disk
    stopped the recording or the data is not sample-synchronous; 128 + the signal for a timed
    run cut short; else 0."""
    left = orchestrator.last_left_non_idle
    if left:
        printer.line(f"error: {left_sentence(left)}")
        return EXIT_FAILED
    if orchestrator.last_outcome == "stopped" and orchestrator.stop_reason.startswith(DISK_STOP):
        printer.line(f"error: {orchestrator.stop_reason}")
        return EXIT_FAILED
    if not synchronous:
        return EXIT_FAILED
    if signals.count and not args.until_stopped:
        return exit_status(signals.first or 0)
    return EXIT_OK


def _plan(args: argparse.Namespace) -> RecordPlan | None:
    """The recording plan the options ask for (None: a plain capture from the start)."""
    if args.trigger is None and args.segment is None and args.start_at is None:
        return None
    if args.trigger is not None and args.segment is not None:
        raise SettingsError("trigger", "--trigger and --segment cannot be combined")
    duration = None if args.until_stopped else args.time
    start_at = _time_option(args.start_at) if args.start_at is not None else None
    if args.trigger is not None:
        plan = RecordPlan(
            name=args.name,
            mode="trigger",
            trigger=TriggerSpec.parse(args.trigger, "trigger"),
            pre_trigger_s=args.pre_trigger,
            duration_s=args.time,
            events=None if args.until_stopped else args.events,
            hold_off_s=args.hold_off,
            start_at=start_at,
        )
    elif args.segment is not None:
        plan = RecordPlan(
            name=args.name, mode="segments", segment_s=args.segment, duration_s=duration,
            start_at=start_at,
        )  # fmt: skip
    else:
        plan = RecordPlan(name=args.name, mode="manual", duration_s=duration, start_at=start_at)
    plan.validate()
    return plan


def _time_option(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            "start_at", f"{text!r} is not a time: write e.g. 2026-12-07T14:30:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as the user reads the clock
    return when.timestamp()


def _run_windows(
    args: argparse.Namespace, settings: CaptureSettings, plan: RecordPlan, root: Path, out: TextIO
) -> int:
    """Monitor the measurement and record by ``plan``: each recording a capture folder under
    ``root``; exits when the plan is done (or at Ctrl-C)."""
    bus = EventBus()
    printer = ProgressPrinter(settings, out)
    bus.subscribe(printer)
    finished: list[str] = []
    bus.subscribe(
        lambda e: finished.append(e.folder) if isinstance(e, ev.CaptureFinished) else None
    )
    orchestrator = Orchestrator(bus, root, receiver_workers=args.receiver_workers)
    printer.line(f"Monitoring modules at {', '.join(settings.modules)}: {_describe(plan)}")
    status, signals = _drive(
        args,
        printer,
        orchestrator,
        lambda: orchestrator.monitor(settings, plan, folder=root, end_when_done=True),
    )
    if status is not None:
        return status
    synchronous = True
    for folder in finished:
        if folder:
            synchronous = _summary(printer, Path(folder)) and synchronous
    if orchestrator.phase == Phase.FAILED:
        _say_failure(printer, orchestrator)
        return EXIT_FAILED
    if not finished and not orchestrator.last_left_non_idle:
        printer.line("error: nothing was recorded")
        return EXIT_FAILED
    return _exit_status(args, printer, orchestrator, signals, synchronous)


def _describe(plan: RecordPlan) -> str:
    if plan.mode == "trigger" and plan.trigger is not None:
        events = "until stopped" if plan.events is None else f"{plan.events} event(s)"
        return (
            f"trigger {plan.trigger.describe()}, {plan.pre_trigger_s:g} s before to "
            f"{plan.duration_s:g} s after, {events}"
        )
    total = "until stopped" if plan.duration_s is None else f"{plan.duration_s:g} s"
    at = f" from {store.iso(plan.start_at)}" if plan.start_at is not None else ""
    if plan.mode == "segments":
        return f"segments of {plan.segment_s:g} s, {total}{at}"
    return f"recording {total}{at}"


def _would_overwrite(folder: Path, name: str) -> str:
    """Why this capture must not be written into ``folder`` (it would replace an earlier
    capture's files), or "" when nothing is in the way. Checked before any module request."""
    try:
        name = check_name(name)
    except ValueError:
        return ""  # the settings check reports the name in its own words
    taken = files_in_the_way(folder, name)
    if not taken:
        return ""
    how = (
        "pick another folder with -o (capture.json describes the capture already there)"
        if CAPTURE_JSON in taken
        else "pick another name with -n or another folder with -o"
    )
    return (
        f"{folder} already holds {', '.join(taken)}: this capture would overwrite them; "
        f"{how}. Nothing was started."
    )


_OPTIONS = {
    "trigger": "--trigger",
    "pre_trigger_s": "--pre-trigger",
    "events": "--events",
    "hold_off_s": "--hold-off",
    "segment_s": "--segment",
    "start_at": "--start-at",
    "name": "-n/--name",
    "duration_s": "-t/--time",
    "ptp_domain": "-d/--ptp-domain",
    "ptp_timeout_s": "--ptp-timeout",
    "state_timeout_s": "--state-timeout",
    "bandwidth": "--bandwidth",
    "disk_margin_s": "--disk-margin",
}


_PLAN_FIELDS = {"trigger", "pre_trigger_s", "events", "hold_off_s", "segment_s", "start_at"}
"""Fields whose messages do not name them: the option is put in front."""


def generators_from_options(options: list[str], modules: list[str]) -> dict[str, list[Any]]:
    """``--generator N:FILE`` → the settings' generators (module address → outputs)."""
    generators: dict[str, list[Any]] = {}
    for option in options:
        number, sep, file = option.partition(":")
        if not sep or not number.isdigit() or not 1 <= int(number) <= len(modules):
            raise SettingsError(
                "generators",
                f"--generator {option!r}: write N:FILE with N a module number 1 to {len(modules)}",
            )
        try:
            body = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingsError("generators", f"--generator {option!r}: {exc}") from None
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(outputs, list):
            raise SettingsError(
                "generators", f'--generator {option!r}: the file must hold {{"outputs": [...]}}'
            )
        generators.setdefault(modules[int(number) - 1], []).extend(outputs)
    return generators


def add_waveform_outputs(
    generators: dict[str, list[Any]], options: list[str], modules: list[str]
) -> None:
    """``--generator-waveform N:OUT:FILE[@GAIN]`` → a streamed output in the generators."""
    for option in options:
        number, _, rest = option.partition(":")
        output, _, spec = rest.partition(":")
        file, at, gain_text = spec.rpartition("@") if "@" in spec else (spec, "", "")
        try:
            gain = float(gain_text) if at else 1.0
        except ValueError:
            gain = -1.0
        if (
            not number.isdigit()
            or not 1 <= int(number) <= len(modules)
            or not output.isdigit()
            or not file
            or not 0 <= gain <= 1
        ):
            raise SettingsError(
                "generators",
                f"--generator-waveform {option!r}: write N:OUT:FILE[@GAIN] with N a module "
                f"number 1 to {len(modules)}, OUT an output number and GAIN 0 to 1",
            )
        generators.setdefault(modules[int(number) - 1], []).append(
            {
                "number": int(output),
                "gain": gain,
                "inputs": [
                    {"number": 1, "signalType": "stream", "gain": 1.0, "file": file},
                    {"number": 2, "signalType": "none"},
                ],
            }
        )


def _in_option_terms(exc: SettingsError) -> str:
    """The settings' message with a setting's name said as the option that sets it."""
    field = (exc.field or "").split(".")[0]
    option = _OPTIONS.get(field)
    if option and exc.message.startswith(f"{exc.field} "):
        return f"{option} {exc.message[len(exc.field or '') + 1 :]}"
    if option and field in _PLAN_FIELDS:
        return (
            f"{option} {exc.message}" if exc.message.startswith("'") else f"{option}: {exc.message}"
        )
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


def _summary(printer: ProgressPrinter, folder: Path) -> bool:
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
