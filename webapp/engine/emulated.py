"""Emulated modules run inside ``serve --emulate N``, and the fault panel's backend for them.

The emulator package offers the in-process rig (:class:`webapp.emulator.EmulatedRig`: N modules
on free ports of 127.0.0.1, each with an ``address`` "host:port", sharing one PTP network) and,
per module, the emulator-only fault endpoint ``/emulator/faults`` described in
docs/emulator.md. This module is the one place the web layer touches the emulator, and only
through that public surface; the emulator never imports the web layer.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import requests

from webapp.engine.schemas import FAULTS

# The fault panel's kinds as the emulator names them (docs/emulator.md, "Faults").
EMULATOR_KINDS = {
    "cable-fault": "cable-fault",
    "overload": "overload",
    "cm-overload": "cmol",
    "ptp-loss": "ptp-no-lock",
    "stream-drop": "stream-drop",
}
FAULT_PATH = "/emulator/faults"
TIMEOUT_S = 5.0


class EmulatedModules:
    """N emulated modules in this process plus the fault backend the panel calls."""

    def __init__(self, rig: Any):
        self._rig = rig
        self.addresses: list[str] = list(rig.addresses)

    @classmethod
    def start(
        cls,
        count: int,
        module_type: str = "3050",
        ptp_lock_s: float | None = None,
        host: str = "127.0.0.1",
        calibration_shaker: bool = False,
        loopbacks: tuple[str, ...] | None = None,
    ) -> EmulatedModules:
        """``module_type``: one type, or one per module comma-separated (the last repeats)."""
        from webapp.emulator import EmulatedRig

        options: dict[str, Any] = {}
        if ptp_lock_s is not None:
            options["ptp_lock_seconds"] = ptp_lock_s
        if calibration_shaker:
            options["calibration_shaker"] = True
        if loopbacks is not None:
            options["loopbacks"] = loopbacks
        return cls(EmulatedRig.start(count, types=module_type, host=host, port=0, **options))

    def stop(self) -> None:
        self._rig.stop()

    # --- fault backend (see webapp.engine.faults.FaultPanel) ------------------------------------

    def inject(
        self, address: str, kind: str, channel: int | None, duration_s: float | None
    ) -> None:
        self._check_address(address)
        body: dict[str, Any] = {"kind": EMULATOR_KINDS[kind]}
        if FAULTS[kind][1]:
            body["arg"] = channel
        if duration_s is not None:
            body["duration"] = duration_s
        self._request("POST", address, body)

    def clear(self, address: str) -> None:
        self._check_address(address)
        self._request("DELETE", address, None)

    def active(self, address: str) -> list[str]:
        """The module's active faults as the emulator lists them, e.g. ``["overload:2"]``."""
        self._check_address(address)
        return list(self._request("GET", address, None).get("active", []))

    def _check_address(self, address: str) -> None:
        if address not in self.addresses:
            raise ValueError(f"{address} is not one of this dashboard's emulated modules")

    @staticmethod
    def _request(method: str, address: str, body: dict[str, Any] | None) -> dict[str, Any]:
        response = requests.request(
            method, f"http://{address}{FAULT_PATH}", json=body, timeout=TIMEOUT_S
        )
        if response.status_code >= 400:
            raise RuntimeError(
                f"module {address}: {method} {FAULT_PATH} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            answer = response.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}


def add_emulate_options(p: argparse.ArgumentParser) -> None:
    """``--emulate N`` and the emulated modules' options, the same for ``serve`` and
    ``engine``."""
    p.add_argument(
        "--emulate",
        type=int,
        default=0,
        metavar="N",
        help="also run N emulated modules in this process and make them the rig",
    )
    p.add_argument(
        "--emulate-type",
        default="3050",
        help="module type of the emulated modules (default 3050)",
    )
    p.add_argument(
        "--ptp-lock-seconds",
        type=float,
        default=None,
        help="emulated modules: time to PTP lock (default: the emulator's)",
    )
    p.add_argument(
        "--emulate-calibration-shaker",
        action="store_true",
        help="emulated modules: the accelerometer (channel 2) on a 10 m/s² RMS, 159.2 Hz "
        "calibration shaker",
    )
    p.add_argument(
        "--emulate-loopback",
        action="append",
        default=None,
        metavar="WIRE",
        help="emulated modules: generator output to input wire, repeatable, as emulate's "
        "--loopback: OUT>IN or OUT>IN:FN_HZ:DAMPING[:GAIN] (default: a 3160's 1>1)",
    )


def emulate_options_refusal(args: argparse.Namespace) -> str | None:
    """What is wrong with the emulated modules' options, in the user's terms (None: fine)."""
    if args.emulate < 0 or args.emulate > 64:
        return "--emulate takes 0..64 modules"
    for wire in args.emulate_loopback or ():
        from webapp.emulator.waveforms import Loopback

        try:
            Loopback.parse(wire)
        except ValueError as exc:
            return f"--emulate-loopback {wire}: {exc}"
    return None


def start_from_options(args: argparse.Namespace) -> EmulatedModules | None:
    """The emulated modules ``--emulate N`` asks for (None without it), started."""
    if not args.emulate:
        return None
    if not getattr(args, "verbose", False):
        # One line per emulated HTTP request (long polls included) would drown the
        # process's own messages; -v shows them.
        logging.getLogger("webapp.emulator.http").setLevel(logging.WARNING)
    return EmulatedModules.start(
        args.emulate,
        module_type=args.emulate_type,
        ptp_lock_s=args.ptp_lock_seconds,
        calibration_shaker=args.emulate_calibration_shaker,
        loopbacks=tuple(args.emulate_loopback) if args.emulate_loopback else None,
    )


def replace_rig(rig: Any, addresses: list[str]) -> None:
    """The emulated modules become the rig (the previous rig of this data dir is replaced)."""
    for module in rig.view()["modules"]:
        rig.remove(module["address"])
    for address in addresses:
        rig.add(address, emulated=True, probe=False)
