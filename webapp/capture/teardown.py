"""Best-effort requests of the teardown: whatever state a module is in and whatever broke,
every module must be reached, so failures become warnings, never exceptions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from webapp import runtime
from webapp.capture.events import Event, Warning
from webapp.capture.phases import Order, ordered
from webapp.capture.session import ModuleRun, Session, describe_error, parallel
from webapp.openapi.client import ModuleClient, ModuleError
from webapp.openapi.model import ModuleState

log = logging.getLogger(__name__)

TEARDOWN_SETTLE_S = 5.0
"""How long the teardown waits for a module to leave the state a request moved it out of."""
STOP_MASTER_AFTER_S = 0.5
"""How long the master's ``measurements/stop`` waits for the slaves' answers: long enough for
a live module to answer, short enough that a dead slave does not keep the master recording."""
SECOND_BATCH_WAIT_S = {"stop_measurement": STOP_MASTER_AFTER_S}
"""Requests whose second batch (the master) goes out once the first has answered or this long
has passed; every other request waits for the first batch's answers."""
TEARDOWN_REQUEST_TIMEOUT_S = 3.0
"""How long a stop, finish, cancel, close or status read of the teardown may go unanswered: a
module that does not answer within it is named and left, and the others (the master last) go
on without waiting for it."""
POLL_S = 0.1
RETURN_TO_IDLE = (
    (ModuleState.RECORDER_RECORDING, "stop_measurement"),
    (ModuleState.RECORDER_STREAMING, "finish"),
    (ModuleState.RECORDER_CONFIGURING, "cancel"),
    (ModuleState.RECORDER_OPENED, "close"),
)
"""From which state which request leads towards Idle, in the order the states are left."""


def quick(m: ModuleRun) -> ModuleClient:
    """The module's client with the teardown's short timeout (or its own, if shorter)."""
    return m.client.with_timeout(min(m.client.timeout, TEARDOWN_REQUEST_TIMEOUT_S))


def leave_configuring(m: ModuleRun) -> None:
    """If ``cancel`` is refused: apply the default setup and finish, which also ends the
    configuring."""
    m.client.put_setup(m.client.default_setup())
    status = m.client.onchange()
    if status.get("moduleState") == ModuleState.RECORDER_STREAMING:
        m.client.finish()


def cancel_then_close(m: ModuleRun) -> None:
    """A ``finish`` or ``close`` that failed: ``cancel`` (refused unless the module is
    configuring, which is no harm), then ``close``; raises if ``close`` fails too."""
    client = quick(m)
    try:
        client.cancel()
    except ModuleError as exc:
        if exc.status is None:
            raise
        log.info("teardown: %s", exc)
    client.close()


def _note(m: ModuleRun, exc: BaseException, publish: Callable[[Event], None]) -> None:
    """A teardown request that failed: a warning naming the module and the request; a module
    that did not answer at all is marked gone, so later steps do not wait for it again."""
    if isinstance(exc, ModuleError) and exc.status is None:
        m.gone = True
        message = f"teardown: {exc}; the module may need a reset"
    else:
        if not isinstance(exc, ModuleError):
            log.error("teardown of %s", m.address, exc_info=exc)
        message = f"teardown: {describe_error(exc)}"
    m.troubles.append(describe_error(exc))
    publish(Warning(message=message, module=m.address))


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
                _note(m, exc, publish)
            else:
                log.info("teardown: %s", exc)
        except Exception as exc:  # a teardown must reach every module, whatever broke
            _note(m, exc, publish)

    parallel([m for m in s.modules if which(m)], run)


def best_effort_each(
    s: Session,
    order: Order,
    method: str,
    which: Callable[[ModuleRun], bool],
    publish: Callable[[Event], None],
    fallback: Callable[[ModuleRun], None] | None = None,
) -> list[ModuleRun]:
    """One client request (with the short :data:`TEARDOWN_REQUEST_TIMEOUT_S`) to the modules
    ``which`` selects, in ``order``: the first batch side by side, then the second whether or
    not every module of the first answered. After a failure ``fallback`` is tried (unless the
    module did not answer at all); what still failed becomes a warning. Returns the modules
    whose request failed. For a request in :data:`SECOND_BATCH_WAIT_S` the second batch does not
    wait longer than that for the first one's answers."""
    first_wait_s = SECOND_BATCH_WAIT_S.get(method)
    failed: list[ModuleRun] = []

    def run(m: ModuleRun) -> None:
        # A teardown must reach every module, whatever broke: any failure is a warning.
        try:
            getattr(quick(m), method)()
            return
        except Exception as exc:
            failure = exc
        failed.append(m)
        answered = not (isinstance(failure, ModuleError) and failure.status is None)
        if fallback is not None and answered:
            try:
                fallback(m)
                log.info("teardown: %s; %s instead", failure, fallback.__name__)
                return
            except Exception as exc:
                _note(m, failure, publish)
                _note(m, exc, publish)
                return
        _note(m, failure, publish)

    first, second = ordered([m for m in s.modules if which(m)], order)
    if first_wait_s is None or not first or not second:
        for batch in (first, second):
            parallel(batch, run)
        return failed
    # The second batch goes out once the first has answered or ``first_wait_s`` has passed;
    # the first batch's requests that are still unanswered go on meanwhile.
    started = [runtime.spawn(run, m, name=f"{method} {m.address}") for m in first]
    deadline = time.monotonic() + first_wait_s
    for t in started:
        t.join(max(0.0, deadline - time.monotonic()))
    parallel(second, run)
    for t in started:
        t.join()
    return failed


def stop_measurements(
    s: Session, which: Callable[[ModuleRun], bool], publish: Callable[[Event], None]
) -> list[ModuleRun]:
    """``measurements/stop`` to the modules ``which`` selects, the master last: every slave at
    once, then the master as soon as they answered or :data:`STOP_MASTER_AFTER_S` has passed,
    each request within :data:`TEARDOWN_REQUEST_TIMEOUT_S`, so one dead slave does not keep
    the master recording.
    Returns the modules whose stop failed (named in warnings; those that did not answer are
    marked gone)."""
    return best_effort_each(s, Order.MASTER_LAST, "stop_measurement", which, publish)


def stopped_after_all(
    unstopped: list[ModuleRun], publish: Callable[[Event], None]
) -> list[ModuleRun]:
    """Of the modules whose ``measurements/stop`` went unanswered within the short timeout,
    those a status read now shows stopped are no failure: the answer came late (a module, or
    the network, busy for a moment), not the stop. Each such module is named in a warning and
    no longer counted as gone. Returns the modules still not known to have stopped."""
    still = []
    for m in unstopped:
        if not m.gone:
            still.append(m)  # it answered, with an error: the stop itself was refused
            continue
        try:
            state = quick(m).onchange().get("moduleState")
        except Exception:
            still.append(m)
            continue
        if state == ModuleState.RECORDER_RECORDING:
            still.append(m)
            continue
        m.gone = False
        publish(
            Warning(
                message=f"module {m.number} ({m.address}) answered its stop late (more than "
                f"{TEARDOWN_REQUEST_TIMEOUT_S:g} s); its status says it stopped ({state})",
                module=m.address,
            )
        )
    return still


def left_non_idle(s: Session) -> list[dict[str, Any]]:
    """Every module the session opened that is not Idle by its last status read (or no longer
    answers), with what went wrong: ``{"number", "address", "state", "reason"}``."""
    left = []
    for m in s.modules:
        state = m.state[0]
        if not m.opened or (state == ModuleState.IDLE and not m.gone):
            continue
        seen = f"last seen in state {state}" if state else "state unknown"
        why = f"does not answer ({seen})" if m.gone else f"in state {state}"
        if m.troubles:
            why += f" after: {'; '.join(dict.fromkeys(m.troubles))}"
        left.append(
            {
                "number": m.number,
                "address": m.address,
                "state": None if m.gone else state,
                "reason": why,
            }
        )
    return left


def left_sentence(left: list[dict[str, Any]]) -> str:
    """The sentence for ``reason`` and the terminal that names the modules left non-Idle."""
    if not left:
        return ""
    which = "; ".join(f"module {e['number']} ({e['address']}) {e['reason']}" for e in left)
    return (
        f"left not Idle: {which}; return it to Idle (Rig page, or lanxi-dashboard capture "
        "--return-to-idle ADDR) or reset it"
    )


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
