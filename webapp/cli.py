"""``lanxi-dashboard`` / ``python -m webapp``: one entry point, one subcommand per job.

This is the only place that monkey-patches the standard library with eventlet, and it does so
before any other project module (or requests, or socket users) is imported, for the commands
that run many sockets at once. Everything below it is written against the standard library.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence

# Commands that run many concurrent sockets (stream receivers, long polls, Socket.IO clients).
GREEN_COMMANDS = frozenset({"serve", "engine", "emulate", "capture"})

# Each module contributes its subcommands through ``add_parser(subparsers)``; every subparser
# sets ``func`` to a callable taking the parsed arguments and returning an exit code.
COMMAND_MODULES = (
    "webapp.web.cli",
    "webapp.engine.cli",
    "webapp.emulator.cli",
    "webapp.capture.cli",
    "webapp.analysis.cli",
    "webapp.web.usercli",
    "webapp.openapi.discover_cli",
    "webapp.calibration.cli",
)


def _first_command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _monkey_patch() -> None:
    # LANXI_ASYNC=threading runs the same code on native threads (debugging, profiling).
    if os.environ.get("LANXI_ASYNC", "eventlet") == "eventlet":
        # eventlet announces its maintenance mode on import; the choice of eventlet is
        # deliberate and the notice would only clutter every command's output.
        warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")
        import eventlet

        eventlet.monkey_patch()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanxi-dashboard",
        description="Multi-module, sample-synchronous LAN-XI capture: dashboard, emulator, tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _first_command(argv) in GREEN_COMMANDS:
        _monkey_patch()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
