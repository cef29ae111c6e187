"""Running the ``capture`` command: settings from the options, the orchestrator driven to the end
(ended on SIGINT/SIGTERM within ``--stop-timeout``), windows of a monitored measurement, and
the exit status (see :mod:`webapp.capture.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from webapp.capture import events as ev
from webapp.capture import store
from webapp.capture.channeltable import TableError, read_table
from webapp.capture.cli_options import (
    add_waveform_outputs,
    generators_from_options,
    in_option_terms,
    plan_from_args,
    would_overwrite,
)
from webapp.capture.cli_progress import ProgressPrinter, print_summary
from webapp.capture.diskspace import DISK_STOP
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import CaptureBusyError, Orchestrator
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.capture.shutdown import ShutdownSignals, end_on_signal, exit_status, stopping_sentence
from webapp.capture.teardown import left_sentence
from webapp.capture.trigger import RecordPlan
from webapp.openapi.client import ModuleError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


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
        plan = plan_from_args(args)
    except TableError as exc:
        print(f"error: {args.channel_table}: {exc.message}", file=out, flush=True)
        return EXIT_BAD_INPUT
    except SettingsError as exc:
        print(f"error: {in_option_terms(exc)}", file=out, flush=True)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: --channel-table: {exc.strerror or exc}", file=out, flush=True)
        return EXIT_BAD_INPUT
    if not args.stop_timeout > 0:
        print("error: --stop-timeout must be more than 0 seconds", file=out, flush=True)
        return EXIT_BAD_INPUT
    if plan is not None:
        return _run_windows(args, settings, plan, folder, out)
    refusal = would_overwrite(folder, settings.name)
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
        print_summary(printer, folder)
        return EXIT_FAILED
    return _exit_status(args, printer, orchestrator, signals, print_summary(printer, folder))


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
            printer.line(f"error: {in_option_terms(exc)}")
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
            synchronous = print_summary(printer, Path(folder)) and synchronous
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
