"""The teardown: walk every module of a session back to Idle, whatever state it is in, the
master last, each request with the short teardown timeout; name what is left non-Idle. A base
class of :class:`webapp.capture.orchestrator.Orchestrator` (the requests themselves are in
:mod:`webapp.capture.teardown`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from webapp.capture import store
from webapp.capture.events import Phase, Warning
from webapp.capture.phases import Order
from webapp.capture.session import ModuleRun, Session
from webapp.capture.teardown import (
    RETURN_TO_IDLE,
    TEARDOWN_SETTLE_S,
    best_effort,
    best_effort_each,
    cancel_then_close,
    leave_configuring,
    left_non_idle,
    left_sentence,
    quick,
)
from webapp.capture.watching import WATCH_RETRY_S, StatusWatching


class Disarming(StatusWatching):
    """Teardown steps of :class:`~webapp.capture.orchestrator.Orchestrator`."""

    phase: Phase
    last_left_non_idle: list[dict[str, Any]]
    _finished_capture: store.CaptureRecord | None

    def _set_phase(self, phase: Phase, detail: str = "") -> None:
        raise NotImplementedError

    # --- teardown ---------------------------------------------------------------------------

    def _teardown(self, s: Session, phase: Phase, recorded: bool = False) -> None:
        """Walk every module this session touched back to Idle (stand-alone if configured),
        whatever state it is in; failures become warnings, never exceptions. Every request
        has the short teardown timeout; a module that does not answer is left out of the
        later steps. A module left non-Idle is named in a warning, in
        :attr:`last_left_non_idle` and (``recorded``: the capture this job just recorded) in
        that capture's ``capture.json``."""
        if s.closed:
            return
        s.ptp_locked = False  # leaving the PTP domain on purpose is no fault
        self._set_phase(phase)

        def in_state(state: str) -> Callable[[ModuleRun], bool]:
            return lambda m: m.opened and not m.gone and m.state[0] == state

        # The same walk as for a module left open elsewhere, for every module of the session.
        phases = {
            "stop_measurement": Phase.STOPPING,
            "finish": Phase.FINISHING,
            "close": Phase.CLOSING,
        }
        fallbacks = {
            "cancel": leave_configuring,
            "finish": cancel_then_close,
            "close": cancel_then_close,
        }
        fresh = False
        for state, method in RETURN_TO_IDLE:
            step_phase, needed = phases.get(method), in_state(state)
            if not fresh:
                best_effort(
                    s,
                    lambda m: self._refresh_quick(s, m),
                    lambda m: m.opened and not m.gone,
                    self._publish,
                )
            fresh = False
            todo = [m for m in s.modules if needed(m)]
            if method == "stop_measurement":
                for m in s.modules:
                    for r in m.receivers:
                        r.expect_end = True
            if not todo:
                continue
            if step_phase is not None and step_phase != self.phase:
                self._set_phase(step_phase)
            best_effort_each(
                s,
                Order.MASTER_LAST,
                method,
                lambda m, t=todo: m in t,
                self._publish,
                fallback=fallbacks.get(method),
            )
            self._settle(s, todo, needed, method)
            fresh = True
        # The last status reads are current: a module not sent anything since did not move.
        s.left_non_idle = left_non_idle(s)
        if s.settings.return_to_standalone and s.synchronized:
            best_effort_each(
                s,
                Order.MASTER_LAST,
                "set_standalone",
                lambda m: m.ptp_configured and not m.gone,
                self._publish,
            )
        self.last_left_non_idle = list(s.left_non_idle)
        if s.left_non_idle:
            self._report_left(s, recorded)
        with self._cond:
            s.closed = True
            s.armed = False
            self._cond.notify_all()

    def _refresh_quick(self, s: Session, m: ModuleRun) -> None:
        """A fresh status within the teardown's short timeout."""
        self._update_status(s, m, quick(m).onchange())

    def _report_left(self, s: Session, recorded: bool) -> None:
        """Name the modules left non-Idle: a warning, and in the capture just recorded."""
        sentence = left_sentence(s.left_non_idle)
        warning = Warning(message=sentence)
        self._publish(warning)
        capture = self._finished_capture if recorded else None
        if capture is None:
            return
        capture.left_non_idle = list(s.left_non_idle)
        capture.reason = f"{capture.reason}; {sentence}" if capture.reason else sentence
        capture.add_event(warning)
        try:
            capture.write()
        except OSError as exc:
            self._publish(Warning(message=f"writing capture.json failed: {exc}"))

    def _settle(
        self,
        s: Session,
        modules: list[ModuleRun],
        still: Callable[[ModuleRun], bool],
        request: str,
    ) -> None:
        """Until none of ``modules`` is ``still`` in the state ``request`` moves it out of.

        A 200 answer means the change has happened, so this is one status read; a 202
        (accepted, pending) means it is still to come, and the next teardown step would find
        the module in the old state and skip it, leaving it open. Bounded: a module that does
        not move within :data:`TEARDOWN_SETTLE_S` is reported and left to the next steps."""
        best_effort(s, lambda m: self._refresh_quick(s, m), lambda m: m in modules, self._publish)
        deadline = time.monotonic() + TEARDOWN_SETTLE_S
        with self._cond:
            while True:
                waiting = [m for m in modules if still(m) and m.watch_error is None]
                left = deadline - time.monotonic()
                if not waiting or left <= 0:
                    break
                self._cond.wait(min(left, WATCH_RETRY_S))  # the watchers' long polls wake it
        for m in waiting:
            self._publish(
                Warning(
                    message=f"teardown: still {m.state[0]} {TEARDOWN_SETTLE_S:g} s after "
                    f"{request}; the module may need a reset",
                    module=m.address,
                )
            )
