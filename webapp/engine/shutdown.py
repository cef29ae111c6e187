"""How a process that runs the capture engine ends on SIGTERM or SIGINT.

``lanxi-dashboard serve`` (the engine embedded) and ``lanxi-dashboard engine`` (on its own)
both end a capture the same way before they exit (see :mod:`webapp.capture.shutdown`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from webapp.capture.shutdown import ShutdownSignals, end_on_signal, signal_name, stopping_sentence

SIGNAL_POLL_S = 0.1
"""How often the dashboard looks whether SIGTERM or SIGINT has come."""


def end_serving_on_signal(
    orchestrator: Any,
    signals: ShutdownSignals,
    timeout_s: float,
    prog: str = "lanxi-dashboard serve",
) -> None:
    """The first SIGTERM or SIGINT: end any capture and arming cleanly (every module back to
    Idle, the master last; files closed; capture.json complete), then exit: 0 when every
    module is Idle, 1 naming the modules that are not, 128 + the signal's number when a second
    signal cut it short (see :mod:`webapp.capture.shutdown`)."""
    while not signals.count:
        time.sleep(SIGNAL_POLL_S)
    end_serving(orchestrator, signals, timeout_s, prog)


def end_serving(
    orchestrator: Any,
    signals: ShutdownSignals,
    timeout_s: float,
    prog: str = "lanxi-dashboard serve",
    before_exit: Any = None,
) -> None:
    from webapp.capture.teardown import left_sentence

    def say(text: str) -> None:
        print(f"{prog}: {text}", file=sys.stderr, flush=True)

    status: int | None = None
    if orchestrator.busy or orchestrator.armed:
        say(stopping_sentence(signals, timeout_s))
        status = end_on_signal(orchestrator, signals, timeout_s, say)
        if status is None:
            left = orchestrator.last_left_non_idle
            if left:
                say(f"error: {left_sentence(left)}")
            else:
                say("every module is back to Idle and every capture is complete")
            status = 1 if left else 0
    else:
        say(f"{signal_name(signals.first or signal.SIGTERM)}: no capture running; exiting")
        status = 0
    if before_exit is not None:
        before_exit()
    sys.stdout.flush()
    # Nothing is left to close: the capture's files and capture.json are complete and every
    # state file is written when it changes. The web server's own loop has no clean way out
    # from here.
    os._exit(status)
