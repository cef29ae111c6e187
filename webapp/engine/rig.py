"""The rig: which modules the dashboard drives, which one is the PTP master, which domain.

The list, the master and the domain persist in ``<data-dir>/rig.json``; what each module says
about itself (``module/info``) and whether it answered are probed in the background and kept in
memory only, because they are facts about now.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webapp import runtime, statefile
from webapp.capture.schemas import FieldError, address_key
from webapp.engine import schemas
from webapp.openapi.model import ModuleInfo

DEFAULT_DOMAIN = 42


class RigError(FieldError):
    """A refused rig change (``field`` the machine path, ``message`` the user's words)."""


def check_address(address: Any) -> str:
    """A module address as the rig takes it (the rule: :data:`webapp.capture.schemas.Address`:
    host, host:port with a port of 1..65535, IPv4, IPv6 or [IPv6]:port), trimmed."""
    try:
        return str(schemas.check(schemas.RigModule, {"address": address}).address)
    except FieldError as exc:
        raise RigError(exc.field or "address", exc.message) from None


def same_module(address: str, others: list[str]) -> str | None:
    """The entry of ``others`` that names the same module as ``address`` (``A`` and ``A:80``)."""
    key = address_key(address)
    return next((o for o in others if address_key(o) == key), None)


def info_to_json(info: ModuleInfo) -> dict[str, Any]:
    return {
        "type": info.type_number,
        "serial": info.serial,
        "name": info.name,
        "firmware": info.firmware,
        "hardware": info.hardware,
        "input_channels": info.input_channels,
        "output_channels": info.output_channels,
        "sample_rates": info.sample_rates,
        "ranges": info.ranges,
        "filters": info.filters,
        "module_state": info.module_state,
        "ptp": info.supports_ptp,
    }


class RigStore:
    """Modules of the rig with their probed facts; ``on_change`` gets the public view."""

    def __init__(
        self,
        path: Path,
        probe: Callable[[str], ModuleInfo],
        on_change: Callable[[dict[str, Any]], None] = lambda _: None,
    ):
        self.path = path
        self._probe = probe
        self._on_change = on_change
        self._lock = threading.Lock()
        self._addresses: list[str] = []
        self._master: str | None = None
        self._domain = DEFAULT_DOMAIN
        self._facts: dict[str, dict[str, Any]] = {}
        self._emulated: set[str] = set()
        self.left_by: dict[str, str] = {}
        """Per address: the interrupted capture that may have left it recording or open."""
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        self._addresses = [str(a) for a in data.get("modules", [])]
        self._master = data.get("master")
        self._domain = int(data.get("ptp_domain", DEFAULT_DOMAIN))

    def _save(self) -> None:
        data = {"modules": self._addresses, "master": self._master, "ptp_domain": self._domain}
        statefile.write_json(self.path, data, indent=2)

    def _changed(self) -> None:
        self._on_change(self.view())

    # --- reading ---------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        with self._lock:
            master = self._master if self._master in self._addresses else None
            master = master or (self._addresses[0] if self._addresses else None)
            modules = []
            for address in self._addresses:
                facts = self._facts.get(address, {"reachable": None, "info": None, "error": ""})
                modules.append(
                    {
                        "address": address,
                        "role": "master" if address == master else "slave",
                        "emulated": address in self._emulated,
                        "left_by": self.left_by.get(address, ""),
                        **facts,
                    }
                )
            return {"modules": modules, "master": master, "ptp_domain": self._domain}

    def note_interrupted(self, captures: list[dict[str, Any]]) -> None:
        """Say, for each rig module an interrupted capture used, that the capture may have left
        it recording (the Rig page shows it by the return-to-Idle control)."""
        with self._lock:
            for c in captures:
                when = str(c.get("created") or "")[:16].replace("T", " ")
                note = f"left recording by the interrupted capture {c.get('name', c.get('id'))}"
                note += f" ({when} UTC)" if when else ""
                for mod in c.get("modules") or []:
                    address = mod.get("address") if isinstance(mod, dict) else None
                    if address in self._addresses:
                        self.left_by[address] = note
        self._changed()

    def ordered_addresses(self) -> list[str]:
        """The rig's modules with the PTP master first (the orchestrator's convention)."""
        view = self.view()
        master = view["master"]
        rest = [m["address"] for m in view["modules"] if m["address"] != master]
        return ([master] if master else []) + rest

    @property
    def domain(self) -> int:
        return self._domain

    def info(self, address: str) -> dict[str, Any] | None:
        with self._lock:
            return (self._facts.get(address) or {}).get("info")

    def is_emulated(self, address: str) -> bool:
        return address in self._emulated

    # --- changing --------------------------------------------------------------------------

    def add(self, address: Any, emulated: bool = False, probe: bool = True) -> str:
        address = check_address(address)
        with self._lock:
            first = same_module(address, self._addresses)
            if first == address:
                raise RigError("address", f"{address} is already in the rig")
            if first is not None:
                raise RigError(
                    "address", f"{address} is the same module as {first}, already in the rig"
                )
            self._addresses.append(address)
            if emulated:
                self._emulated.add(address)
            self._facts[address] = {"reachable": None, "info": None, "error": "", "probing": True}
            self._save()
        self._changed()
        if probe:
            runtime.spawn(self.probe, address, name=f"probe {address}")
        return address

    def mark_emulated(self, addresses: list[str]) -> None:
        with self._lock:
            self._emulated.update(addresses)
        self._changed()

    def remove(self, address: str) -> None:
        with self._lock:
            if address not in self._addresses:
                raise RigError("address", f"{address} is not in the rig")
            self._addresses.remove(address)
            self._facts.pop(address, None)
            if self._master == address:
                self._master = None
            self._save()
        self._changed()

    def configure(self, master: Any = None, ptp_domain: Any = None) -> None:
        body = {k: v for k, v in (("master", master), ("ptp_domain", ptp_domain)) if v is not None}
        try:
            schemas.check(schemas.RigConfig, body)
        except FieldError as exc:
            raise RigError(exc.field or "rig", exc.message) from None
        with self._lock:
            if master is not None and master not in self._addresses:
                raise RigError("master", f"{master!r} is not a module of the rig")
            if master is not None:
                self._master = master
            if ptp_domain is not None:
                self._domain = ptp_domain
            self._save()
        self._changed()

    def probe(self, address: str) -> None:
        """Ask one module for its info; record the answer or why there was none."""
        with self._lock:
            if address not in self._addresses:
                return
            facts = dict(self._facts.get(address, {}))
            facts["probing"] = True
            self._facts[address] = facts
        try:
            info = info_to_json(self._probe(address))
            result = {"reachable": True, "info": info, "error": "", "probing": False}
            result["last_seen"] = time.time()
        except Exception as exc:  # any failure is a fact to show, not a crash
            old = self._facts.get(address, {})
            result = {"reachable": False, "info": old.get("info"), "error": str(exc),
                      "probing": False, "last_seen": old.get("last_seen")}  # fmt: skip
        result["checked"] = time.time()
        with self._lock:
            if address not in self._addresses:
                return
            self._facts[address] = result
            self._mark_same_serials()
        self._changed()

    def _mark_same_serials(self) -> None:
        """Two entries that turn out to be one module (same type and serial number): the later
        one is marked with the earlier one's address (``same_as``) and an error; arming refuses
        them too (the orchestrator compares the serials it reads)."""
        seen: dict[tuple[Any, Any], str] = {}
        for address in self._addresses:
            facts = self._facts.get(address)
            if not facts:
                continue
            first = facts.pop("same_as", None)
            if first is not None and facts.get("reachable"):
                facts["error"] = ""
            info = facts.get("info") or {}
            if not facts.get("reachable") or not info.get("serial"):
                continue
            key = (info.get("type"), info.get("serial"))
            if key in seen:
                facts["same_as"] = seen[key]
                facts["error"] = (
                    f"{address} is the same module as {seen[key]} (Type {key[0]} serial "
                    f"{key[1]}): remove one of them"
                )
            else:
                seen[key] = address

    def probe_all(self) -> None:
        for address in list(self._addresses):
            runtime.spawn(self.probe, address, name=f"probe {address}")
