"""The emulated module's faults: scheduling, setting and clearing them, and the levels and
fault history they make the recorder report."""

from __future__ import annotations

import logging
import time
from typing import Any

from webapp.emulator.acquisition import SignalPlan, Variant
from webapp.emulator.clock import TICKS_PER_SECOND, next_grid_time, now_ticks
from webapp.emulator.faults import (
    CHANNEL_FAULT_VALIDITY,
    CHANNEL_FAULTS,
    Fault,
    FaultKind,
    FaultSpec,
    check_fault_fits,
    normalise_path,
)
from webapp.openapi.stream import Validity

log = logging.getLogger(__name__)


class FaultHandling:
    """Faults, levels and fault history of :class:`~webapp.emulator.module.ModuleEmulator`."""

    def _reset_history(self) -> None:
        self.history = {}
        for kind, ch in self._timeline.current:
            self.history[(CHANNEL_FAULTS[kind], ch)] = "curr"
        if self.acquisition is not None:
            for plan in self.acquisition.signals:
                if plan.clips:
                    self.history[("anol", plan.channel)] = "curr"

    def _refresh_levels(self) -> None:
        if self.acquisition is None:
            self.levels = {}
            return
        active = self._timeline.current
        levels = {}
        for plan in self.acquisition.signals:
            variant, _validity = self._quality(plan, active)
            levels[plan.channel] = plan.level(variant)
        self.levels = levels

    def _quality(
        self, plan: SignalPlan, active: frozenset[tuple[FaultKind, int]]
    ) -> tuple[Variant, int]:
        validity = Validity.CLIPPED if plan.clips else Validity.VALID
        variant = Variant.NORMAL
        for kind, ch in active:
            if ch != plan.channel:
                continue
            validity |= CHANNEL_FAULT_VALIDITY[kind]
            if kind is FaultKind.CABLE_FAULT:
                variant = Variant.DEAD
            elif kind is FaultKind.OVERLOAD and variant is Variant.NORMAL:
                variant = Variant.OVERLOAD
        if variant is Variant.DEAD:
            validity &= ~Validity.CLIPPED
        return variant, int(validity)

    def _block_quality(self, plan: SignalPlan, tick: int) -> tuple[Variant, int]:
        return self._quality(plan, self._timeline.at(tick))

    # --- faults ------------------------------------------------------------------------------

    def schedule_fault(self, spec: FaultSpec) -> None:
        """A fault from the command line or the endpoint: now, or SECONDS into a measurement."""
        check_fault_fits(spec.fault, self.profile)
        with self.cond:
            if spec.at_seconds is None:
                self._set_fault(spec.fault, True, "requested", spec.duration)
            else:
                self._scheduled.append(spec)
                self._fault_log.append(
                    {
                        "time": time.time(),
                        "fault": spec.fault.describe(),
                        "event": f"scheduled at {spec.at_seconds:g} s into the measurement",
                    }
                )
            self.cond.notify_all()

    def clear_fault(self, fault: Fault | None) -> int:
        """Clear one fault (or all with None); scheduled ones are dropped too."""
        with self.cond:
            targets = list(self._faults.values()) if fault is None else [fault]
            self._scheduled = [s for s in self._scheduled if fault is not None and s.fault != fault]
            cleared = 0
            for f in targets:
                if f.key in self._faults:
                    self._set_fault(f, False, "cleared")
                    cleared += 1
            return cleared

    def _set_fault(
        self, fault: Fault, active: bool, why: str, duration: float | None = None
    ) -> None:
        kind = fault.kind
        self._fault_log.append(
            {
                "time": time.time(),
                "fault": fault.describe(),
                "event": ("set " if active else "clear ") + why,
            }
        )
        log.info(
            "%s: fault %s %s (%s)", self.name, fault.describe(), "set" if active else "cleared", why
        )
        if kind is FaultKind.STREAM_DROP:
            if active:
                for port in self.ports:
                    port.drop_connections()
            return
        if active:
            self._faults[fault.key] = fault
            if duration is not None:
                self._expiries.append((time.monotonic() + duration, fault))
        else:
            self._faults.pop(fault.key, None)
            self._expiries = [(d, f) for d, f in self._expiries if f != fault]
        if kind in CHANNEL_FAULTS:
            self._set_channel_fault(kind, fault.channel, active)
        if kind is FaultKind.PTP_NO_LOCK:
            self.published_ptp = self._compute_ptp(time.monotonic())
        self._changed()

    def _set_channel_fault(self, kind: FaultKind, channel: int, active: bool) -> None:
        now = now_ticks()
        grid = self.acquisition.block_ticks if self.acquisition else 1
        self._timeline.set(kind, channel, active, next_grid_time(now, grid))
        if self.measurement is None or self.measurement.t0 is None:
            self._timeline.prune(now - 60 * TICKS_PER_SECOND)
        key = (CHANNEL_FAULTS[kind], channel)
        if active:
            self.history[key] = "curr"
        elif self.history.get(key) == "curr":
            self.history[key] = "prev"
        self._refresh_levels()

    def fault_http_500(self, path: str) -> bool:
        return ("http-500", normalise_path(path)) in self._faults

    def faults_snapshot(self) -> dict[str, Any]:
        with self.cond:
            return {
                "active": [f.describe() for f in self._faults.values()],
                "scheduled": [
                    {
                        "fault": s.fault.describe(),
                        "at": s.at_seconds,
                        "duration": s.duration,
                    }
                    for s in self._scheduled
                ],
                "log": list(self._fault_log),
            }
