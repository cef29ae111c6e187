"""``lanxi-dashboard inspect`` and ``lanxi-dashboard export``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from webapp.analysis.capture_errors import CaptureError, StreamingReadError
from webapp.analysis.export import FORMATS, export
from webapp.analysis.export_common import ExportError
from webapp.analysis.integrity import build_report, format_report
from webapp.analysis.progressbar import ProgressBar
from webapp.analysis.reader import Capture


def add_parser(subparsers: Any) -> None:
    inspect = subparsers.add_parser(
        "inspect",
        help="integrity report of a capture",
        description="Integrity report of a capture: sample counts per module and channel, the "
        "common first-sample time and PTP lock (sample synchronism), gaps, data-quality flags, "
        "faults, truncated files and SHA-256 checksums against capture.json. Exit status 0 "
        "when the report has no errors, 1 when it has (e.g. a module that lost PTP lock while "
        "recording: named with the span), 2 when the capture cannot be read.",
    )
    inspect.add_argument(
        "capture",
        nargs="+",
        metavar="CAPTURE_DIR_OR_FILES",
        help="a capture folder, its capture.json, or .stream files",
    )
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.add_argument(
        "--no-checksums", action="store_true", help="skip hashing the files (faster)"
    )
    inspect.add_argument(
        "--levels",
        action="store_true",
        help="also RMS, peak and dB level of every channel (reads every sample)",
    )
    inspect.set_defaults(func=run_inspect)

    exp = subparsers.add_parser(
        "export",
        help="calibrated signals as WAV, HDF5, MAT, CSV or UFF",
        description="Write a capture's calibrated signals for other tools. Gaps (lost samples) "
        "are NaN in HDF5/MAT, empty in CSV, 0 in WAV and UFF.",
    )
    exp.add_argument(
        "capture",
        nargs="+",
        metavar="CAPTURE",
        help="a capture folder, its capture.json, or .stream files",
    )
    exp.add_argument("--format", "-f", required=True, choices=FORMATS)
    exp.add_argument(
        "--trim", action="store_true", help="cut every channel to the span all channels share"
    )
    exp.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file or folder (default: the current folder; WAV always writes into a "
        "folder unless OUT ends in .wav and there is one file)",
    )
    exp.add_argument(
        "--per",
        choices=("module", "channel"),
        default="module",
        help="WAV: one file per module (channels interleaved) or per channel",
    )
    exp.add_argument(
        "--channels", metavar="KEYS", help="comma-separated channel keys, e.g. m1-ch1,m2-ch3"
    )
    exp.add_argument(
        "--start", type=float, metavar="S", help="start S seconds after the capture start"
    )
    exp.add_argument("--duration", type=float, metavar="S", help="export at most S seconds")
    exp.set_defaults(func=run_export)


def _open(sources: list[str], background: bool = False) -> Capture | None:
    try:
        return Capture.open(sources[0] if len(sources) == 1 else sources, background=background)
    except (CaptureError, OSError) as exc:
        print(f"lanxi-dashboard: cannot read {' '.join(sources)}: {exc}", file=sys.stderr)
        return None


def _report(args: argparse.Namespace, background: bool) -> dict[str, Any] | None:
    cap = _open(args.capture, background)
    if cap is None:
        return None
    with cap:
        return build_report(cap, checksums=not args.no_checksums, levels=args.levels)


def run_inspect(args: argparse.Namespace) -> int:
    # With --levels every sample is read: let that pass start while the files are indexed.
    try:
        report = _report(args, background=args.levels)
    except StreamingReadError:  # a damaged capture: read it again after the whole index
        report = _report(args, background=False)
    if report is None:
        return 2
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_report(report))
    return 1 if report["verdict"] == "errors" else 0


def run_export(args: argparse.Namespace) -> int:
    cap = _open(args.capture)
    if cap is None:
        return 2
    keys = [k.strip() for k in args.channels.split(",") if k.strip()] if args.channels else None
    bar = ProgressBar.for_stream(sys.stderr, f"export {args.format}")
    try:
        with cap:
            if keys:
                for key in keys:
                    cap.channel(key)
            result = export(
                cap,
                args.format,
                args.output,
                keys=keys,
                trim=args.trim,
                start_s=args.start,
                duration_s=args.duration,
                per=args.per,
                progress=bar,
            )
    except (ExportError, KeyError, OSError) as exc:
        if bar is not None:
            bar.close()
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"lanxi-dashboard export: {message}", file=sys.stderr)
        return 2
    if bar is not None:
        bar(1.0)
        bar.close()
    for problem in cap.problems:
        if problem.severity == "error":
            print(f"note: {problem}", file=sys.stderr)
    print(result.summary())
    return 0
