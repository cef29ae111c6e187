"""The entry point loads only the chosen command's module, and its table of commands is true."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

from tests.support.processes import REPO
from webapp import cli


def test_every_command_module_adds_exactly_the_commands_listed_for_it():
    for name, commands in cli.COMMAND_MODULES.items():
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command")
        importlib.import_module(name).add_parser(sub)
        assert tuple(sub.choices) == commands, name


def test_help_and_an_unknown_command_list_every_command():
    everything = {c for commands in cli.COMMAND_MODULES.values() for c in commands}
    for command in (None, "captur"):
        parser = cli.build_parser(command)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert set(sub.choices) == everything


def test_the_capture_command_loads_neither_the_web_server_nor_the_emulator_nor_scipy():
    probe = (
        "import json, sys; from webapp.cli import build_parser; build_parser('capture');"
        "print(json.dumps(sorted(m for m in ('flask', 'flask_socketio', 'scipy', 'h5py',"
        " 'webapp.emulator', 'webapp.web', 'webapp.calibration.check') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
