"""The ``capture`` command's options in settings terms: the recording plan (trigger, segments,
start time), generator options, the output folder check, and settings errors named by the
option that caused them."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from webapp.capture.names import check_name
from webapp.capture.settings import SettingsError
from webapp.capture.store import CAPTURE_JSON, files_in_the_way
from webapp.capture.trigger import RecordPlan, TriggerSpec


def plan_from_args(args: argparse.Namespace) -> RecordPlan | None:
    """The recording plan the options ask for (None: a plain capture from the start)."""
    if args.trigger is None and args.segment is None and args.start_at is None:
        return None
    if args.trigger is not None and args.segment is not None:
        raise SettingsError("trigger", "--trigger and --segment cannot be combined")
    duration = None if args.until_stopped else args.time
    start_at = time_option(args.start_at) if args.start_at is not None else None
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


def time_option(text: str) -> float:
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


def would_overwrite(folder: Path, name: str) -> str:
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


OPTION_NAMES = {
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


PLAN_FIELDS = {"trigger", "pre_trigger_s", "events", "hold_off_s", "segment_s", "start_at"}
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


def in_option_terms(exc: SettingsError) -> str:
    """The settings' message with a setting's name said as the option that sets it."""
    field = (exc.field or "").split(".")[0]
    option = OPTION_NAMES.get(field)
    if option and exc.message.startswith(f"{exc.field} "):
        return f"{option} {exc.message[len(exc.field or '') + 1 :]}"
    if option and field in PLAN_FIELDS:
        return (
            f"{option} {exc.message}" if exc.message.startswith("'") else f"{option}: {exc.message}"
        )
    return exc.message
