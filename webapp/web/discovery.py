"""The Rig page's "Find modules": runs ``lanxi-dashboard discover --json`` in a process of its
own (python-zeroconf's asyncio thread does not belong under the dashboard's eventlet hub) and
marks the modules the rig already has."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from webapp import runtime
from webapp.openapi.discovery import DEFAULT_SECONDS

PROCESS_SLACK_S = 20.0
"""Beyond the listening time: the process's start and each module's own answers."""


class DiscoveryError(RuntimeError):
    pass


def find_modules(
    in_rig: set[str], interface: str | None = None, seconds: float = DEFAULT_SECONDS
) -> list[dict[str, Any]]:
    """Every module that answers mDNS, as ``discover --json`` gives it, with ``in_rig``."""
    command = [sys.executable, "-m", "webapp", "discover", "--json", "--seconds", f"{seconds:g}"]
    if interface:
        command += ["--interface", interface]
    try:
        done = runtime.offload(
            subprocess.run,
            command,
            capture_output=True,
            text=True,
            timeout=seconds + PROCESS_SLACK_S,
        )
    except subprocess.TimeoutExpired:
        raise DiscoveryError(
            f"no answer from the search within {seconds + PROCESS_SLACK_S:g} s"
        ) from None
    if done.returncode != 0:
        said = (done.stdout or done.stderr).strip().splitlines()
        raise DiscoveryError(said[-1] if said else f"the search failed ({done.returncode})")
    found = json.loads(done.stdout)
    for module in found:
        module["in_rig"] = module["address"] in in_rig
    return found
