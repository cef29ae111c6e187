"""Status of every module from its ``onchange`` long poll: one watcher per module for the
whole session, the waits of the capture sequence on it, and the events its changes make
(module state, PTP lock lost and regained, channel faults). A base class of
:class:`webapp.capture.orchestrator.Orchestrator`."""

from __future__ import annotations

import threading
import time
from typing import Any

from webapp.capture.events import (
    Event,
    ModuleStatus,
    PtpLockChanged,
    PtpProgress,
    Warning,
)
from webapp.capture.phases import Timeout, Wait
from webapp.capture.ptp import EXPECTED_LOCK_S, lock_hint
from webapp.capture.session import (
    ModuleRun,
    PhaseTimeoutError,
    Session,
    fault_changes,
    parallel,
    timeout_message,
)
from webapp.openapi.client import ModuleError
from webapp.openapi.model import PtpStatus

PTP_PROGRESS_INTERVAL_S = 1.0
WATCH_FAILURES = 3
"""Consecutive failed status polls after which a module counts as unreachable."""
WATCH_RETRY_S = 0.5
UNREACHABLE_AFTER_S = 10.0


class StatusWatching:
    """Status watchers and waits (the orchestrator provides the lock, the condition, the
    abort check and the event publishing declared here)."""

    _lock: threading.RLock
    _cond: threading.Condition
    _abort: threading.Event
    _status_version: int

    def _publish(self, event: Event) -> None:
        raise NotImplementedError

    def _check_abort(self) -> None:
        raise NotImplementedError

    def _refresh(self, s: Session, m: ModuleRun) -> None:
        """A fresh status (no long poll) so a wait never acts on an answer from before a request."""
        self._update_status(s, m, m.client.onchange())

    def _await(self, s: Session, wait: Wait, modules: list[ModuleRun] | None = None) -> None:
        """Until every module's status passes ``wait`` (or the phase's timeout, an abort, or a
        module that stops answering). Status arrives from the watchers' long polls."""
        modules = list(s.modules if modules is None else modules)
        ptp = wait.timeout is Timeout.PTP
        timeout = s.settings.ptp_timeout_s if ptp else s.settings.state_timeout_s
        started = time.monotonic()
        deadline = started + timeout
        parallel(modules, lambda m: self._refresh(s, m))
        reported: dict[str, tuple[str, float]] = {}
        while True:
            events: list[Event] = []
            with self._cond:
                now = time.monotonic()
                version = self._status_version
                errors = [m.watch_error for m in modules if m.watch_error is not None]
                pending = [m for m in modules if not wait.test(m.status)]
                if ptp:
                    statuses = {x.address: x.state[2] or "Unknown" for x in s.modules}
                    for m in modules:
                        status = m.state[2] or "Unknown"
                        last = reported.get(m.address)
                        if (
                            last is None
                            or last[0] != status
                            or now - last[1] >= PTP_PROGRESS_INTERVAL_S
                        ):
                            reported[m.address] = (status, now)
                            events.append(
                                PtpProgress(
                                    module=m.address,
                                    status=status,
                                    locked=status == PtpStatus.LOCKED,
                                    elapsed_s=round(now - started, 3),
                                    timeout_s=timeout,
                                    expected_s=EXPECTED_LOCK_S,
                                    hint=lock_hint(
                                        m.address,
                                        m.number,
                                        statuses,
                                        s.master.address,
                                        s.settings.ptp_domain,
                                        now - started,
                                    ),
                                )  # fmt: skip
                            )
                done = bool(errors) or not pending or self._abort.is_set() or now >= deadline
            for e in events:
                self._publish(e)
            if done:
                break
            with self._cond:
                if self._status_version == version and not self._abort.is_set():
                    wake = deadline - time.monotonic()
                    if ptp:
                        wake = min(wake, PTP_PROGRESS_INTERVAL_S)
                    if wake > 0:
                        self._cond.wait(wake)
        if errors:
            raise errors[0]
        self._check_abort()
        if pending:
            raise PhaseTimeoutError(
                timeout_message(wait, timeout, pending, ptp), [m.address for m in pending]
            )

    # --- status watchers --------------------------------------------------------------------

    def _watch(self, s: Session, m: ModuleRun) -> None:
        """One long poll after another for the whole session. A module counts as unreachable
        after :data:`WATCH_FAILURES` failed polls in a row, or when polls have been failing
        for :data:`UNREACHABLE_AFTER_S` (a module that holds a poll past its 30 s cap)."""
        tag: int | None = None
        failures = 0
        failing_since = 0.0
        while not s.closed:
            asked = time.monotonic()
            try:
                status = m.client.onchange(last=tag)
            except ModuleError as exc:
                if s.closed:
                    return
                failures += 1
                failing_since = failing_since or asked
                if (
                    failures >= WATCH_FAILURES
                    or time.monotonic() - failing_since >= UNREACHABLE_AFTER_S
                ):
                    with self._cond:
                        m.watch_error = exc
                        self._status_version += 1
                        self._cond.notify_all()
                    return
                tag = None
                time.sleep(WATCH_RETRY_S)
                continue
            if s.closed:
                return
            failures, failing_since = 0, 0.0
            new_tag = status.get("lastUpdateTag")
            tag = int(new_tag) if isinstance(new_tag, int) else None
            self._update_status(s, m, status)
            if tag is None:
                time.sleep(WATCH_RETRY_S)  # a module without tags: plain polling

    def _update_status(self, s: Session, m: ModuleRun, status: dict[str, Any]) -> None:
        events: list[Event] = []
        with self._cond:
            old_tag, new_tag = m.status.get("lastUpdateTag"), status.get("lastUpdateTag")
            if isinstance(old_tag, int) and isinstance(new_tag, int) and new_tag < old_tag:
                return  # an answer overtaken by a newer one (a long poll and a fresh read crossed)
            before = m.state
            m.status = status
            after = m.state
            self._status_version += 1
            self._cond.notify_all()
            if after != before:
                events.append(
                    ModuleStatus(
                        module=m.address,
                        module_state=after[0],
                        input_status=after[1],
                        ptp_status=after[2],
                    )
                )
                if s.ptp_locked and before[2] == PtpStatus.LOCKED != after[2]:
                    # Its sample clock is no longer disciplined by the master's: the capture
                    # goes on (the samples are all kept) but this must stand in its record.
                    events.append(PtpLockChanged(m.address, m.number, False, after[2]))
                    events.append(
                        Warning(
                            message=f"module {m.number} lost PTP lock (ptpStatus "
                            f"{after[2] or 'unknown'}): its samples are no longer synchronous "
                            "with the other modules'",
                            module=m.address,
                        )
                    )
                elif s.ptp_locked and before[2] != PtpStatus.LOCKED == after[2]:
                    events.append(PtpLockChanged(m.address, m.number, True, after[2]))
            events.extend(fault_changes(m, status))
        for e in events:
            self._publish(e)
