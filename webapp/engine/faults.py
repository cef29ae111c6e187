"""The fault-injection panel: emulated modules only, so a demo can show fault handling.

Real LAN-XI modules have no such thing; the emulator offers an emulator-only fault endpoint on
each emulated module (docs/emulator.md). The panel only talks to modules the dashboard itself
started with ``serve --emulate N`` (or that were marked emulated), never to a real module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from webapp import runtime
from webapp.capture.schemas import FieldError
from webapp.engine import schemas
from webapp.engine.control import RequestError
from webapp.engine.rig import RigStore
from webapp.engine.schemas import FAULTS

_KEEP = 20
"""Injections listed on the panel (the latest)."""
ONE_SHOT = frozenset({"stream-drop"})
"""Faults that happen once (the emulator tears the stream down) rather than last."""


class FaultPanel:
    """Keeps which faults were injected, and forwards injections to the emulator backend.

    ``backend`` has ``inject(address, kind, channel, duration_s)`` and ``clear(address)``.
    """

    def __init__(
        self,
        rig: RigStore,
        backend: Any,
        on_change: Callable[[dict[str, Any]], None] = lambda _: None,
    ):
        self.rig = rig
        self.backend = backend
        self._on_change = on_change
        self._lock = threading.Lock()
        self._active: list[dict[str, Any]] = []

    def view(self) -> dict[str, Any]:
        rig = self.rig.view()
        now = time.time()
        with self._lock:
            active = [
                {
                    **e,
                    "active": e["fault"] not in ONE_SHOT
                    and not e.get("cleared")
                    and e.get("until", now + 1) > now,
                }
                for e in self._active
            ]
        return {
            "available": self.backend is not None,
            "modules": [m["address"] for m in rig["modules"] if self._emulated(m["address"])],
            "kinds": [{"kind": k, "label": v[0], "channel": v[1]} for k, v in FAULTS.items()],
            "injected": active,
        }

    def _emulated(self, address: Any) -> bool:
        """A module of the rig that this dashboard's emulator runs (also when it was removed
        and added back by address)."""
        if not isinstance(address, str) or self.backend is None:
            return False
        return self.rig.is_emulated(address) or address in getattr(self.backend, "addresses", ())

    def emulates(self, address: str) -> bool:
        """Whether this dashboard's emulator runs the module at ``address``."""
        return address in getattr(self.backend, "addresses", ())

    def publish(self) -> None:
        self._on_change(self.view())

    def inject(self, body: Any) -> dict[str, Any]:
        if self.backend is None:
            raise RequestError(None, "no emulated modules in this dashboard", 409)
        try:
            req = schemas.check(schemas.FaultInjection, body)
        except FieldError as exc:
            raise RequestError(exc.field, exc.message) from None
        module, kind, channel, duration = req.module, req.fault, req.channel, req.duration_s
        if not self._emulated(module) or module not in self.view()["modules"]:
            raise RequestError("module", "module must be the address of an emulated module")
        if FAULTS[kind][1]:
            if channel is None:
                raise RequestError("channel", f"a {FAULTS[kind][0]} needs a channel number")
            info = self.rig.info(module) or {}
            count = info.get("input_channels")
            if count and channel > count:
                raise RequestError("channel", f"{module} has {count} input channels")
        else:
            channel = None
        try:
            self.backend.inject(module, kind, channel, duration)
        except Exception as exc:
            raise RequestError(None, f"injecting {kind} into {module} failed: {exc}", 502) from None
        entry = {"module": module, "fault": kind, "channel": channel, "t": time.time()}
        if duration is not None:
            entry["until"] = entry["t"] + float(duration)
        with self._lock:
            self._active = [*self._active, entry][-_KEEP:]
        self.publish()
        if duration is not None:
            # Show the end of a timed fault when it happens (the emulator clears it itself).
            runtime.spawn(self._publish_later, float(duration), name="fault panel expiry")
        return entry

    def _publish_later(self, delay: float) -> None:
        runtime.sleep(delay + 0.05)
        self.publish()

    def clear(self, module: Any = None) -> dict[str, Any]:
        if self.backend is None:
            raise RequestError(None, "no emulated modules in this dashboard", 409)
        targets = [module] if module else self.view()["modules"]
        for address in targets:
            if not self._emulated(address):
                raise RequestError("module", "module must be the address of an emulated module")
            try:
                self.backend.clear(address)
            except Exception as exc:
                raise RequestError(
                    None, f"clearing faults of {address} failed: {exc}", 502
                ) from None
        with self._lock:
            self._active = [
                {**e, "cleared": True} if e["module"] in targets else e for e in self._active
            ]
        self.publish()
        return self.view()
