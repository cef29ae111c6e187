"""What the emulated modules of one process share: their PTP domains and their triggers.

PTP: a module in PTP mode locks only once a module with ``preferredMaster: true`` exists in its
domain (the master itself locks on its own), ``ptp_lock_seconds`` after both are there, passing
through Unlocked, Settling and Locking. The network only records who is in which domain since
when; each module derives its own ``ptpStatus`` from that.

Trigger: a PTP slave's ``POST measurements`` arms it; the trigger master's start fires the
trigger of its trigger domain, and every armed module starts at the same instant ``T0``, the
first block boundary of the absolute grid after the start request plus a short latency. A slave
that arrives after the trigger joins at the next boundary of the same grid.

The network never calls into a module while holding its own lock: it returns what changed and
the caller notifies the modules (no lock-order cycles between modules and the network).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PtpMember:
    domain: int
    preferred_master: bool
    since: float  # monotonic time the module joined the domain with these settings


@dataclass
class TriggerGroup:
    """The modules that started on one trigger; the last one to stop ends the group's streams."""

    trigger_domain: int | None
    t0: int
    grid: int
    members: list[Any] = field(default_factory=list)
    stopped: set[int] = field(default_factory=set)
    running: bool = True  # the trigger master is still recording: late slaves may join
    ended: threading.Event = field(default_factory=threading.Event)

    def member_stopped(self, member: Any) -> bool:
        """Record a member's stop; True when it was the last member still recording."""
        self.stopped.add(id(member))
        if member is self.members[0]:
            self.running = False
        return all(id(m) in self.stopped for m in self.members)


class PtpNetwork:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ptp: dict[int, PtpMember] = {}  # id(module) -> membership
        self._modules: dict[int, Any] = {}
        self._armed: dict[int | None, dict[int, tuple[Any, int]]] = {}
        self._running: dict[int | None, TriggerGroup] = {}

    # --- PTP -------------------------------------------------------------------------------

    def join_ptp(self, module: Any, domain: int, preferred_master: bool) -> list[Any]:
        """Put a module into a domain; returns the modules whose lock state may have changed."""
        with self._lock:
            old = self._ptp.get(id(module))
            self._ptp[id(module)] = PtpMember(domain, preferred_master, time.monotonic())
            self._modules[id(module)] = module
            touched = self._domain_members(domain)
            if old is not None and old.domain != domain:
                touched += self._domain_members(old.domain)  # they may have lost their master
            return touched

    def leave_ptp(self, module: Any) -> list[Any]:
        with self._lock:
            member = self._ptp.pop(id(module), None)
            self._modules.pop(id(module), None)
            return self._domain_members(member.domain) if member else []

    def ptp_modules(self) -> list[Any]:
        """Every module that is in a PTP domain."""
        with self._lock:
            return list(self._modules.values())

    def _domain_members(self, domain: int) -> list[Any]:
        return [self._modules[k] for k, m in self._ptp.items() if m.domain == domain]

    def lock_reference(self, module: Any) -> float | None:
        """Monotonic time from which the module's lock progresses; None while it cannot lock."""
        with self._lock:
            me = self._ptp.get(id(module))
            if me is None:
                return None
            if me.preferred_master:
                return me.since
            masters = [
                m.since for m in self._ptp.values() if m.domain == me.domain and m.preferred_master
            ]
            if not masters:
                return None
            return max(me.since, min(masters))

    # --- trigger ---------------------------------------------------------------------------

    def arm(
        self, module: Any, trigger_domain: int, grid: int, earliest: int
    ) -> tuple[TriggerGroup, int] | None:
        """A slave's start. Joins a running trigger at once (returns its group and T0), or waits
        for the trigger master (returns None)."""
        with self._lock:
            group = self._running.get(trigger_domain)
            if group is not None and group.running:
                t0 = group.t0 + max(0, -(-(earliest - group.t0) // grid)) * grid
                group.members.append(module)
                return group, t0
            self._armed.setdefault(trigger_domain, {})[id(module)] = (module, grid)
            return None

    def disarm(self, module: Any) -> None:
        with self._lock:
            for armed in self._armed.values():
                armed.pop(id(module), None)

    def fire(
        self, master: Any, trigger_domain: int | None, grid: int, earliest: int
    ) -> tuple[TriggerGroup, list[tuple[Any, int]]]:
        """The trigger master's start: T0 for it and every module armed in its trigger domain.

        T0 lies on the coarsest block grid among them, so it is a block boundary for all.
        """
        with self._lock:
            armed = list(self._armed.pop(trigger_domain, {}).values()) if trigger_domain else []
            common = max([grid] + [g for _m, g in armed])
            t0 = -(-earliest // common) * common
            group = TriggerGroup(trigger_domain, t0, common, [master] + [m for m, _g in armed])
            if trigger_domain is not None:
                self._running[trigger_domain] = group
            return group, [(m, t0) for m in group.members]

    def forget(self, module: Any) -> None:
        """A module shut down or rebooted: it leaves every domain and trigger."""
        self.leave_ptp(module)
        self.disarm(module)
