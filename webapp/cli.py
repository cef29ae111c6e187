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
# sets ``func`` to a callable taking the parsed arguments and returning an exit code. The
# commands each module adds are listed here, so a command imports only its own module: the
# capture command does not pay for the web server's, the emulator's or scipy's imports.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "webapp.web.cli": ("serve",),
    "webapp.engine.cli": ("engine",),
    "webapp.emulator.cli": ("emulate",),
    "webapp.capture.cli": ("capture",),
    "webapp.analysis.cli": ("inspect", "export"),
    "webapp.web.access.usercli": ("user",),
    "webapp.openapi.discover_cli": ("discover",),
    "webapp.calibration.cli": ("calibrate",),
}


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


def modules_for(command: str | None) -> list[str]:
    """The command modules to load for ``command``: its own, or every one (help, a typo)."""
    own = [name for name, commands in COMMAND_MODULES.items() if command in commands]
    return own or list(COMMAND_MODULES)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with ``command``'s subcommand only (every subcommand when None or unknown,
    so ``--help`` lists them all and a typo is answered with the list)."""
    parser = argparse.ArgumentParser(
        prog="lanxi-dashboard",
        description="Multi-module, sample-synchronous LAN-XI capture: dashboard, emulator, tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules_for(command):
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
    command = _first_command(argv)
    if command in GREEN_COMMANDS:
        _monkey_patch()
    parser = build_parser(command)
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
