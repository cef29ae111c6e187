"""``lanxi-dashboard emulate``: emulated modules on their own loopback addresses, like real ones."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from webapp.emulator.faults import FaultSpecError, parse_fault_spec
from webapp.emulator.options import EmulatorOptions
from webapp.emulator.runner import EmulatedRig
from webapp.emulator.waveforms import Loopback
from webapp.openapi.model import MODULE_TYPES

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "emulate",
        help="run emulated LAN-XI modules",
        description=(
            "Run N emulated LAN-XI modules: module 1 listens on ADDRESS itself, module i on "
            "ADDRESS + i - 1 (HTTP on PORT, streams on 1536, 1537, ...). HBK's example "
            "clients and the dashboard talk to them as to real modules."
        ),
    )
    p.add_argument("--modules", "-n", type=int, default=3, help="number of modules (default 3)")
    p.add_argument(
        "--address",
        default="127.0.0.11",
        help="address of module 1; module i is on ADDRESS + i - 1 (default 127.0.0.11)",
    )
    p.add_argument(
        "--port", type=int, default=80, help="HTTP port (default 80; 0 = free ports on ADDRESS)"
    )
    p.add_argument(
        "--stream-port",
        type=int,
        default=None,
        help="first stream port (default 1536, or free ports with --port 0)",
    )
    p.add_argument(
        "--type",
        default="3050",
        help=f"module type(s), comma-separated, one per module, last repeats "
        f"({', '.join(sorted(MODULE_TYPES))}; default 3050)",
    )
    d = EmulatorOptions()
    p.add_argument("--ptp-lock-seconds", type=float, default=d.ptp_lock_seconds)
    p.add_argument("--teds-seconds", type=float, default=d.teds_seconds)
    p.add_argument("--settle-seconds", type=float, default=d.settle_seconds)
    p.add_argument("--reboot-seconds", type=float, default=d.reboot_seconds)
    p.add_argument(
        "--buffer-seconds",
        type=float,
        default=d.buffer_seconds,
        help="send buffer per stream port; a slower reader loses whole blocks (Overrun)",
    )
    p.add_argument("--sd-card", action="store_true", help="report an inserted SD card")
    p.add_argument(
        "--calibration-shaker",
        action="store_true",
        help="channel 2's accelerometer on a handheld calibration shaker "
        "(10 m/s² RMS at 159.2 Hz) instead of the vibrating structure",
    )
    p.add_argument(
        "--mdns",
        nargs="?",
        const="",
        default=None,
        metavar="INTERFACE_IP",
        help="answer mDNS as real modules do (BK<type>-<serial>._http._tcp.local.), on the "
        "interface with this address (default: all)",
    )
    p.add_argument(
        "--serial",
        type=int,
        default=None,
        metavar="N",
        help="serial number of module 1 (module i reports N+i-1; default: from type and index)",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="MODULE:KIND[:ARG][@SECONDS[+DURATION]], e.g. 2:overload:1@3, 1:http-500:open; "
        "kinds: ptp-no-lock, cable-fault:CH, overload:CH, cmol:CH, stream-drop, http-500:PATH, "
        "unreachable",
    )
    p.add_argument(
        "--loopback",
        action="append",
        default=None,
        metavar="WIRE",
        help="generator output to input wire of every module with outputs, repeatable: "
        "OUT>IN (a cable) or OUT>IN:FN_HZ:DAMPING[:GAIN] (through a resonance), e.g. 1>1, "
        "1>2:1000:0.02 (default: a 3160's output 1 cabled to its input 1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        faults = [parse_fault_spec(f) for f in args.fault]
    except FaultSpecError as exc:
        log.error("--fault: %s", exc)
        return 2
    try:
        loopbacks = tuple(args.loopback) if args.loopback is not None else None
        for wire in loopbacks or ():
            Loopback.parse(wire)
    except ValueError as exc:
        log.error("--loopback: %s", exc)
        return 2
    options = EmulatorOptions(
        ptp_lock_seconds=args.ptp_lock_seconds,
        teds_seconds=args.teds_seconds,
        settle_seconds=args.settle_seconds,
        reboot_seconds=args.reboot_seconds,
        buffer_seconds=args.buffer_seconds,
        sd_card=args.sd_card,
        calibration_shaker=args.calibration_shaker,
        serial=args.serial,
        loopbacks=loopbacks,
    )
    try:
        rig = EmulatedRig.start(
            args.modules,
            types=args.type,
            host=args.address,
            port=args.port,
            stream_port=args.stream_port,
            consecutive_addresses=True,
            faults=faults,
            options=options,
        )
    except FaultSpecError as exc:  # a fault the modules cannot have (a channel they lack)
        log.error("--fault: %s", exc)
        return 2
    except (OSError, ValueError) as exc:
        log.error("cannot start the emulated modules: %s", exc)
        return 1
    # Ctrl-C/SIGTERM end the modules cleanly from the moment their start lines are printed: a
    # program that reads them and signals at once must not kill the process mid-start.
    done = threading.Event()

    def _stop(*_: object) -> None:
        done.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    for i, m in enumerate(rig.modules, start=1):
        print(
            f"module {i}: {m.emulator.name} at http://{m.host}:{m.port}/rest/rec "
            f"(stream port {m.stream_port})",
            flush=True,
        )
    withdraw = None
    if args.mdns is not None:
        from webapp.emulator.mdns import announce

        try:
            withdraw = announce(
                [(m.emulator.name, m.host, m.port) for m in rig.modules], args.mdns or None
            )
        except OSError as exc:
            log.error("cannot answer mDNS: %s", exc)
            rig.stop()
            return 1
        print(f"answering mDNS for {len(rig.modules)} module(s)", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        if withdraw is not None:
            withdraw()
        rig.stop()
    return 0
