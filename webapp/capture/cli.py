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

The options are defined here; running the command is in :mod:`webapp.capture.cli_run`, the
options in settings terms in :mod:`webapp.capture.cli_options`, what it prints in
:mod:`webapp.capture.cli_progress`.
"""

from __future__ import annotations

from typing import Any

from webapp.capture.cli_run import run
from webapp.capture.shutdown import SHUTDOWN_TIMEOUT_S
from webapp.capture.workersetting import add_receiver_workers_option


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
