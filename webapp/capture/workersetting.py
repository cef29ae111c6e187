"""The ``receiver_workers`` setting: how many worker processes run a recording's stream
receivers (:mod:`webapp.capture.workers`). Standard library only, so the command line can check
it without loading the receivers."""

from __future__ import annotations

import argparse
import os
from typing import Any

AUTO = "auto"
AUTO_FROM_MODULES = 16
"""``auto``: rigs of this many modules or more get one worker per core; smaller ones keep
their receivers in the engine (a worker's start costs a few tenths of a second, and a few
modules take a fraction of one core)."""
MAX_WORKERS = 64


def parse_workers(value: Any) -> int | str:
    """``"auto"`` or a whole number of worker processes from 1 to :data:`MAX_WORKERS`; raises
    ValueError with the sentence to show otherwise. The one check for every way in."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if isinstance(value, bool) or not 1 <= number <= MAX_WORKERS:
        raise ValueError(
            f"receiver workers must be 'auto' or a whole number from 1 to {MAX_WORKERS}, "
            f"not {value!r}"
        )
    return number


def workers_option(text: str) -> int | str:
    """``--receiver-workers`` of the ``capture``, ``serve`` and ``engine`` commands (argparse
    type)."""
    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


RECEIVER_WORKERS_HELP = (
    "worker processes for the stream receivers of a recording: a number, or 'auto' "
    f"(default: one per core from {AUTO_FROM_MODULES} modules, below that in this process)"
)


def add_receiver_workers_option(p: argparse.ArgumentParser) -> None:
    """``--receiver-workers N|auto``, the same for ``capture``, ``serve`` and ``engine``."""
    p.add_argument(
        "--receiver-workers",
        type=workers_option,
        default=AUTO,
        metavar="N",
        help=RECEIVER_WORKERS_HELP,
    )


def worker_count(setting: int | str, modules: int) -> int:
    """Worker processes for a rig of ``modules`` (1: the receivers stay in the engine)."""
    if setting == AUTO:
        return 1 if modules < AUTO_FROM_MODULES else max(1, os.cpu_count() or 1)
    return max(1, min(int(setting), modules))
