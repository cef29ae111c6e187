"""Best-effort requests of the teardown: whatever state a module is in and whatever broke,
every module must be reached, so failures become warnings, never exceptions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from webapp.capture.events import Event, Warning
from webapp.capture.phases import Order, ordered
from webapp.capture.session import ModuleRun, Session, describe_error, parallel
from webapp.openapi.client import ModuleError
from webapp.openapi.model import ModuleState

log = logging.getLogger(__name__)

TEARDOWN_SETTLE_S = 5.0
"""How long the teardown waits for a module to leave the state a request moved it out of."""
POLL_S = 0.1
RETURN_TO_IDLE = (
    (ModuleState.RECORDER_RECORDING, "stop_measurement"),
    (ModuleState.RECORDER_STREAMING, "finish"),
    (ModuleState.RECORDER_CONFIGURING, "cancel"),
    (ModuleState.RECORDER_OPENED, "close"),
)
"""From which state which request leads towards Idle, in the order the states are left."""


def leave_configuring(m: ModuleRun) -> None:
    """If ``cancel`` is refused: apply the default setup and finish, which also ends the
    configuring."""
    m.client.put_setup(m.client.default_setup())
    status = m.client.onchange()
    if status.get("moduleState") == ModuleState.RECORDER_STREAMING:
        m.client.finish()


def best_effort(
    s: Session,
    fn: Callable[[ModuleRun], Any],
    which: Callable[[ModuleRun], bool],
    publish: Callable[[Event], None],
) -> None:
    """``fn`` on the modules ``which`` selects, side by side; a module that no longer answers
    is marked gone (later steps skip it), any failure becomes a warning."""

    def run(m: ModuleRun) -> None:
        try:
            fn(m)
        except ModuleError as exc:
            if exc.status is None:  # no answer at all: leave it be from here on
                m.gone = True
                publish(
                    Warning(
                        message=f"teardown: {exc}; the module may need a reset",
                        module=m.address,
                    )
                )
            else:
                log.info("teardown: %s", exc)
        except Exception as exc:  # a teardown must reach every module, whatever broke
            log.exception("teardown of %s", m.address)
            publish(Warning(message=f"teardown: {describe_error(exc)}", module=m.address))

    parallel([m for m in s.modules if which(m)], run)


def best_effort_each(
    s: Session,
    order: Order,
    method: str,
    which: Callable[[ModuleRun], bool],
    publish: Callable[[Event], None],
    fallback: Callable[[ModuleRun], None] | None = None,
) -> None:
    """One client request to the modules ``which`` selects, in ``order``; any failure (after
    ``fallback``, if given) becomes a warning."""

    def run(m: ModuleRun) -> None:
        # A teardown must reach every module, whatever broke: any failure is a warning.
        try:
            getattr(m.client, method)()
            return
        except Exception as exc:
            failure = exc
        if fallback is not None:
            try:
                fallback(m)
                return
            except Exception as exc:
                failure = exc
        if not isinstance(failure, ModuleError):
            log.error("teardown %s of %s", method, m.address, exc_info=failure)
        publish(Warning(message=f"teardown: {describe_error(failure)}", module=m.address))

    for batch in ordered([m for m in s.modules if which(m)], order):
        parallel(batch, run)


def walk_to_idle(m: ModuleRun) -> list[str]:
    """Walk a module that is in no session of ours back to Idle from whatever state it is in:
    stop, finish, cancel (or the default setup and finish where cancel is refused) and close,
    each only if its state asks for it, waiting for each change. Returns the requests sent;
    raises :class:`ModuleError` (naming the module, the request and its message) if a request
    fails or the module ends in another state."""
    sent: list[str] = []
    status = m.client.onchange()
    for from_state, request in RETURN_TO_IDLE:
        if status.get("moduleState") != from_state:
            continue
        if request == "cancel":
            try:
                m.client.cancel()
            except ModuleError:
                leave_configuring(m)
        else:
            getattr(m.client, request)()
        sent.append(request)
        status = _left(m, status, from_state)
    state = status.get("moduleState")
    if state != ModuleState.IDLE:
        raise ModuleError(
            m.address,
            "GET /rest/rec/onchange",
            None,
            f"still in state {state} after {', '.join(sent) or 'nothing to send'}; the module "
            "may need a reboot",
        )
    return sent


def _left(m: ModuleRun, status: dict[str, Any], state: str) -> dict[str, Any]:
    """The module's status once it is no longer in ``state`` (at most
    :data:`TEARDOWN_SETTLE_S`: a 200 answer has already changed it, a 202 is about to)."""
    deadline = time.monotonic() + TEARDOWN_SETTLE_S
    status = m.client.onchange()
    while status.get("moduleState") == state and time.monotonic() < deadline:
        # Plain reads, not a long poll: one could hold the answer for 30 s.
        time.sleep(POLL_S)
        status = m.client.onchange()
    return status
