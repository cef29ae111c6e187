"""``lanxi-dashboard calibrate``: a calibration check of one channel from the terminal.

    lanxi-dashboard calibrate ADDR --channel N --reference 94dB@1kHz [--transducer ID]
                              [--tolerance DB] [--seconds S] [--store | --no-store]
                              [--user NAME] [--due YYYY-MM-DD] [--data-dir DIR] [--json]

Measures the channel while the calibrator (or shaker) is on, prints the measured level, the
new sensitivity and its deviation from the database's, and the verdict. The new sensitivity
is stored in the database's calibration history with ``--store``, or after a "y" at the
prompt on a terminal (never without one of the two). Exit status 0 when the check passes,
1 when it fails (deviation beyond the tolerance) or there is nothing to compare with, 2 when
the check could not be made (bad input, no tone, module not idle or unreachable).
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

from webapp.calibration.check import detected_label, run_check
from webapp.calibration.database import TransducerDatabase
from webapp.calibration.measure import DEFAULT_TOLERANCE_DB, CalibrationError
from webapp.capture.schemas import FieldError
from webapp.openapi.client import ModuleError
from webapp.openapi.units import sensitivity_text, unit_label

EXIT_PASS, EXIT_FAIL, EXIT_BAD = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    from webapp.datadir import default_data_dir

    p = subparsers.add_parser(
        "calibrate",
        help="calibration check of one channel (sound calibrator or shaker)",
        description="Measure one channel while a sound calibrator (94dB@1kHz, 114dB@1kHz) or a "
        "handheld shaker (10m/s2@159.2Hz) is on its transducer; show the new sensitivity, its "
        "deviation from the transducer database's and pass/fail; store it on confirmation.",
    )
    p.add_argument("address", metavar="ADDR", help="the module (host or host:port)")
    p.add_argument("--channel", type=int, required=True, help="input channel, from 1")
    p.add_argument("--reference", required=True, help="94dB@1kHz, 114dB@1kHz or 10m/s2@159.2Hz")
    p.add_argument(
        "--transducer",
        metavar="ID",
        help="database id TYPE_SERIAL to compare with (default: the TEDS transducer found)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE_DB,
        metavar="DB",
        help=f"pass within ± this many dB (default {DEFAULT_TOLERANCE_DB})",
    )
    p.add_argument("--seconds", type=float, default=1.0, help="measurement time (default 1)")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--store", action="store_true", help="store the new sensitivity")
    store.add_argument("--no-store", action="store_true", help="never store, do not ask")
    p.add_argument("--user", default=None, help="who calibrates (default: the login name)")
    p.add_argument("--due", default=None, help="next calibration due, YYYY-MM-DD")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where the transducer database is (default $LANXI_DATA_DIR or ./data)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: Any, out: Any = None, ask: Any = None) -> int:
    out = out or sys.stdout
    database = TransducerDatabase(args.data_dir)
    try:
        check = run_check(
            database,
            args.address,
            args.channel,
            args.reference,
            transducer=args.transducer,
            tolerance_db=args.tolerance,
            seconds=args.seconds,
        )
    except (CalibrationError, FieldError, ModuleError, OSError) as exc:
        print(f"calibrate: {exc}", file=sys.stderr)
        return EXIT_BAD
    r = check.result
    ref = r.reference
    if args.json:
        print(json.dumps(check.to_json(), indent=1), file=out)
    else:
        unit = unit_label(ref.unit)
        print(
            f"{check.module} channel {check.channel}: {ref.kind} {ref.text} "
            f"({ref.rms:.4g} {unit} RMS, {ref.level_db:.1f} {ref.db_label})",
            file=out,
        )
        print(f"  transducer  {_label(check)}", file=out)
        print(
            f"  measured    {r.measured_volts_rms * 1e3:.4f} mV RMS at "
            f"{r.measured_frequency_hz:.1f} Hz",
            file=out,
        )
        print(f"  sensitivity {sensitivity_text(r.sensitivity, ref.unit)} (new)", file=out)
        if r.stored_sensitivity is not None:
            print(
                f"  stored      {sensitivity_text(r.stored_sensitivity, ref.unit)}: reads "
                f"{r.level_with_stored_db:.2f} {ref.db_label}",
                file=out,
            )
            verdict = "PASS" if r.passed else "FAIL"
            print(
                f"  deviation   {r.deviation_db:+.3f} dB (tolerance ±{r.tolerance_db:g} dB): "
                f"{verdict}",
                file=out,
            )
        else:
            print("  no stored sensitivity to compare with", file=out)
    if check.transducer is not None and not args.no_store:
        want = args.store
        if not want and ask is None and sys.stdin.isatty():
            ask = input
        if not want and ask is not None:
            answer = ask(
                f"store {sensitivity_text(r.sensitivity, ref.unit)} for {_label(check)}? [y/N] "
            )
            want = str(answer).strip().lower() in ("y", "yes")
        if want:
            user = args.user or getpass.getuser()
            try:
                entry = database.record_calibration(
                    check.transducer.id,
                    sensitivity=r.sensitivity,
                    user=user,
                    reference=ref.text,
                    deviation_db=r.deviation_db,
                    passed=r.passed,
                    due=args.due,
                )
            except FieldError as exc:
                print(f"calibrate: {exc}", file=sys.stderr)
                return EXIT_BAD
            from webapp.auditlog import AuditLog

            AuditLog(args.data_dir).append(
                "calibration.store",
                user,
                via="cli",
                transducer=entry.id,
                sensitivity=r.sensitivity,
                reference=ref.text,
                deviation_db=r.deviation_db,
            )
            if not args.json:
                print(f"  stored in {database.path} by {user}", file=out)
    return EXIT_PASS if r.passed else EXIT_FAIL


def _label(check: Any) -> str:
    if check.transducer is not None:
        t = check.transducer
        return f"{t.type} s/n {t.serial}"
    return detected_label(check.detected)
