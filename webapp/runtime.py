"""The few concurrency primitives whose implementation depends on the async mode.

Everything else in the core uses the standard library (threading, socket, time, queue): after
eventlet's monkey patching in the entry point those are green, without it they are real threads.
The async mode therefore stays one setting, chosen in ``webapp.cli`` alone.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def eventlet_active() -> bool:
    """True once the entry point has monkey-patched the standard library with eventlet."""
    if "eventlet" not in sys.modules:  # not imported, so not patched (and no import cost)
        return False
    try:
        import eventlet.patcher
    except ImportError:  # pragma: no cover - eventlet is a dependency
        return False
    return bool(eventlet.patcher.is_monkey_patched("socket"))


def spawn(
    fn: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
) -> threading.Thread:
    """Start ``fn`` in the background (a greenlet under eventlet, a daemon thread otherwise)."""
    thread = threading.Thread(target=fn, args=args, kwargs=kwargs, name=name, daemon=True)
    thread.start()
    return thread


def sleep(seconds: float) -> None:
    """Sleep, yielding to other greenlets; ``sleep(0)`` is a pure yield."""
    time.sleep(seconds)


def offload(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (fsync, close or unlink of a big file) without freezing the hub.

    Under eventlet such a call would stall every greenlet for its whole duration, so it goes to
    eventlet's native thread pool; without eventlet it simply runs here.
    """
    if eventlet_active():
        from eventlet import tpool

        return tpool.execute(fn, *args, **kwargs)
    return fn(*args, **kwargs)
