"""The capture sequence as data: each phase, its request, the order, the awaited state.

The multi-module sequence is HBK's tutorial (PROTOCOL.md §3.6): sync parameters go to the PTP
master first; after the lock every request goes to the slaves first and the master last (the
master's start is the trigger). The single-module sequence is REF17 §5.2 / TUT-S.

Where the sources disagree (stop/finish/close: REF17 master first, TUT-M master last) the
tutorial's order is used: the slaves first, the master last, for every request after the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from webapp.capture.events import Phase
from webapp.openapi.model import InputStatus, ModuleState, PtpStatus

Status = dict[str, Any]


class Order(StrEnum):
    MASTER_FIRST = "master-first"
    """The master, then all slaves (concurrently)."""
    MASTER_LAST = "master-last"
    """All slaves (concurrently), then the master."""


class Timeout(StrEnum):
    PTP = "ptp"
    STATE = "state"


@dataclass(frozen=True)
class Wait:
    """A condition every module's ``onchange`` status must meet."""

    description: str
    test: Callable[[Status], bool]
    timeout: Timeout = Timeout.STATE


def _state_is(module_state: str, input_status: str | None = None) -> Callable[[Status], bool]:
    def test(status: Status) -> bool:
        if status.get("moduleState") != module_state:
            return False
        return input_status is None or status.get("inputStatus") == input_status

    return test


def _ptp_locked(status: Status) -> bool:
    return status.get("ptpStatus") == PtpStatus.LOCKED


def _detection_done(status: Status) -> bool:
    return not status.get("transducerDetectionActive", False)


WAIT_LOCKED = Wait("lock onto PTP", _ptp_locked, Timeout.PTP)
WAIT_SAMPLING = Wait("start sampling", _state_is(ModuleState.RECORDER_OPENED, InputStatus.SAMPLING))
WAIT_CONFIGURING = Wait("create a configuration", _state_is(ModuleState.RECORDER_CONFIGURING))
WAIT_DETECTED = Wait("finish transducer detection", _detection_done)
WAIT_SETTLED = Wait("settle", _state_is(ModuleState.RECORDER_CONFIGURING, InputStatus.SETTLED))
WAIT_SYNCHRONIZED = Wait(
    "synchronize", _state_is(ModuleState.RECORDER_CONFIGURING, InputStatus.SYNCHRONIZED)
)
WAIT_STREAMING = Wait(
    "start streaming", _state_is(ModuleState.RECORDER_STREAMING, InputStatus.STREAMING)
)
WAIT_STREAMING_SINGLE = Wait("apply the setup", _state_is(ModuleState.RECORDER_STREAMING))
WAIT_IDLE = Wait("close", _state_is(ModuleState.IDLE))
WAIT_STOPPED = Wait("stop the measurement", _state_is(ModuleState.RECORDER_STREAMING))


@dataclass(frozen=True)
class Step:
    """One phase: an optional request sent to every module in ``order``, then a wait.

    ``request`` names a :class:`~webapp.openapi.client.ModuleClient` method, or a ``_phase_*``
    method of the orchestrator for the steps whose body depends on each module (``custom``).
    """

    phase: Phase
    request: str | None
    order: Order = Order.MASTER_LAST
    wait: Wait | None = None
    custom: bool = False


SYNC_ARM_SEQUENCE: tuple[Step, ...] = (
    Step(Phase.PTP_SYNC, "ptp_sync", Order.MASTER_FIRST, custom=True),
    Step(Phase.PTP_LOCK, None, wait=WAIT_LOCKED),
    Step(Phase.OPENING, "open_multi", Order.MASTER_LAST, WAIT_SAMPLING, custom=True),
    Step(Phase.CREATING, "create", Order.MASTER_LAST, WAIT_CONFIGURING),
    Step(Phase.DETECTING, "detect", Order.MASTER_LAST, WAIT_DETECTED, custom=True),
    Step(Phase.CONFIGURING, "configure", Order.MASTER_LAST, WAIT_SETTLED, custom=True),
    Step(Phase.SYNCHRONIZING, "synchronize", Order.MASTER_LAST, WAIT_SYNCHRONIZED),
    Step(Phase.STARTING_STREAM, "start_streaming", Order.MASTER_LAST, WAIT_STREAMING),
)
"""PTP sync -> lock -> open -> create -> detect -> setup -> synchronize -> startstreaming."""

SINGLE_ARM_SEQUENCE: tuple[Step, ...] = (
    Step(Phase.OPENING, "open_single", wait=WAIT_SAMPLING, custom=True),
    Step(Phase.CREATING, "create", wait=WAIT_CONFIGURING),
    Step(Phase.DETECTING, "detect", wait=WAIT_DETECTED, custom=True),
    Step(Phase.CONFIGURING, "configure", wait=WAIT_STREAMING_SINGLE, custom=True),
)
"""module time, stand-alone sync, open (single module) -> create -> detect -> setup (the module
then streams internally)."""


def arm_sequence(synchronized: bool) -> tuple[Step, ...]:
    return SYNC_ARM_SEQUENCE if synchronized else SINGLE_ARM_SEQUENCE


def ordered(items: list[Any], order: Order) -> tuple[list[Any], list[Any]]:
    """Split modules (master = first item) into the two batches of ``order``: each batch is
    sent concurrently, the second only after the first has answered."""
    if not items:
        return [], []
    master, slaves = items[:1], items[1:]
    if order is Order.MASTER_FIRST:
        return master, slaves
    return slaves, master
