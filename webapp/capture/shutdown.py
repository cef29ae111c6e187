"""Ending a process that drives modules, on SIGTERM or SIGINT: one rule for ``capture`` and
``serve``.

The first signal asks for a clean end: stop the recording (every slave, then the master),
finish and close every module, close the files and complete ``capture.json``, then exit. That
is bounded by :data:`SHUTDOWN_TIMEOUT_S`; if the teardown takes longer (a module that does not
answer), or a second signal comes, the process exits at once and says what it leaves: the
modules that may still be recording or open, and the capture whose ``capture.json`` stays
``running`` (every reader then calls it interrupted, with what is on disk).

A signal handler only counts and records; the work happens outside it (in the ``capture``
command's main loop, or in a background greenlet of ``serve``), because a handler must not
take the orchestrator's locks.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

SHUTDOWN_TIMEOUT_S = 10.0
"""How long a clean end after SIGTERM or SIGINT may take before the process quits anyway."""
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_status(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + signum


class ShutdownSignals:
    """Counts SIGTERM and SIGINT while installed (a context manager); the handler does nothing
    else."""

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None
        """The first signal's number."""
        self.last: int | None = None
        self.first_at: float | None = None
        """``time.monotonic()`` of the first signal."""
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ShutdownSignals:
        for signum in SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handler)
            except ValueError:  # not the main thread (a command run inside a test): no handlers
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signum
        if self.first is None:
            self.first, self.first_at = signum, time.monotonic()

    def overdue(self, timeout_s: float) -> bool:
        """The clean end asked for by the first signal has taken longer than ``timeout_s``."""
        return self.first_at is not None and time.monotonic() - self.first_at > timeout_s


def quit_sentence(left: str, how: str) -> str:
    """What a process that quits before its teardown is done says: ``how`` it came to quit,
    and what it ``left`` (:meth:`Orchestrator.left_if_quit_now`)."""
    if not left:
        return f"{how}: quitting; every module had been returned to Idle."
    return f"{how}: quitting without finishing the teardown; {left}"


def stopping_sentence(signals: ShutdownSignals, timeout_s: float) -> str:
    return (
        f"{signal_name(signals.first or signal.SIGTERM)}: stopping and closing every module "
        f"(within {timeout_s:g} s; a second signal quits at once)..."
    )


def end_on_signal(
    orchestrator: Any, signals: ShutdownSignals, timeout_s: float, say: Callable[[str], None]
) -> int | None:
    """After the first signal: return every module to Idle (:meth:`Orchestrator.disarm` stops
    a recording first) and wait for it. Returns ``None`` once the teardown is done (the caller
    reports the outcome as usual), or the exit status when the process must quit before: a
    second signal (128 + its number) or a teardown longer than ``timeout_s`` (1), after
    ``say`` has named what is left."""
    orchestrator.disarm(reason=f"stopped by {signal_name(signals.first or signal.SIGTERM)}")
    while not orchestrator.wait(0.05):
        if signals.count >= 2:
            say(
                quit_sentence(
                    orchestrator.left_if_quit_now(), f"second {signal_name(signals.last or 0)}"
                )
            )
            return exit_status(signals.last or signal.SIGTERM)
        if signals.overdue(timeout_s):
            say(
                quit_sentence(
                    orchestrator.left_if_quit_now(), f"teardown not done after {timeout_s:g} s"
                )
            )
            return 1
    return None
