"""Emulated modules run inside ``serve --emulate N``, and the fault panel's backend for them.

The emulator package offers the in-process rig (N modules on free ports of 127.0.0.1, each with
an ``address`` "host:port") and, per module, the emulator-only fault endpoint described in
docs/emulator.md. This module is the one place the web layer touches it: the web layer never
imports emulator internals, and the emulator never imports the web layer.
"""

from __future__ import annotations

import importlib
from typing import Any

import requests

from webapp.web.faults import FAULTS

# The fault panel's kinds as the emulator names them (webapp/emulator/faults.py FaultKind).
EMULATOR_KINDS = {
    "cable-fault": "cable-fault",
    "overload": "overload",
    "cm-overload": "cmol",
    "ptp-loss": "ptp-no-lock",
    "stream-drop": "stream-drop",
}
FAULT_PATH = "/emulator/faults"
TIMEOUT_S = 5.0


def _rig_class() -> Any:
    for name in ("webapp.emulator.server", "webapp.emulator.module", "webapp.emulator"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        rig = getattr(module, "EmulatedRig", None)
        if rig is not None:
            return rig
    raise RuntimeError("this build has no in-process emulated rig (webapp.emulator.EmulatedRig)")


class EmulatedModules:
    """N emulated modules in this process plus the fault backend the panel calls."""

    def __init__(self, rig: Any):
        self._rig = rig
        self.addresses: list[str] = [m.address for m in rig.modules]

    @classmethod
    def start(
        cls, count: int, module_type: str = "3050", ptp_lock_s: float | None = None
    ) -> EmulatedModules:
        kwargs: dict[str, Any] = {"module_type": module_type}
        if ptp_lock_s is not None:
            kwargs["ptp_lock_seconds"] = ptp_lock_s
        return cls(_rig_class().start(count, **kwargs))

    def stop(self) -> None:
        self._rig.stop()

    # --- fault backend (see webapp.web.faults.FaultPanel) ------------------------------------

    def inject(
        self, address: str, kind: str, channel: int | None, duration_s: float | None
    ) -> None:
        if address not in self.addresses:
            raise ValueError(f"{address} is not one of this dashboard's emulated modules")
        body: dict[str, Any] = {"kind": EMULATOR_KINDS[kind], "active": True}
        if FAULTS[kind][1]:
            body["channel"] = channel
        if duration_s is not None:
            body["duration"] = duration_s
        self._post(address, body)

    def clear(self, address: str) -> None:
        if address not in self.addresses:
            raise ValueError(f"{address} is not one of this dashboard's emulated modules")
        response = requests.delete(f"http://{address}{FAULT_PATH}", timeout=TIMEOUT_S)
        self._check(address, "DELETE", response)

    def _post(self, address: str, body: dict[str, Any]) -> None:
        response = requests.post(f"http://{address}{FAULT_PATH}", json=body, timeout=TIMEOUT_S)
        self._check(address, "POST", response)

    @staticmethod
    def _check(address: str, method: str, response: requests.Response) -> None:
        if response.status_code >= 400:
            raise RuntimeError(
                f"module {address}: {method} {FAULT_PATH} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
