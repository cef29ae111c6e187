"""One controlling operator at a time.

Whoever holds control may set up, arm, start and stop; everybody else sees who holds it and
since when, and may ask for it. The holder gives it up, or an admin takes it. The lock lives in
the serving process (one dashboard, one rig); it is not persisted, so a restart frees it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    user: str
    since: float
    """Wall-clock time (seconds since the epoch) control was taken."""


class ControlLock:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._holder: Holder | None = None
        self._requests: dict[str, float] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        return {
            "holder": asdict(self._holder) if self._holder else None,
            "requests": [{"user": u, "at": t} for u, t in self._requests.items()],
        }

    def holder(self) -> Holder | None:
        with self._lock:
            return self._holder

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """``listener(snapshot)`` after every change (the web layer pushes it to viewers)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        snap = self.snapshot()
        for listener in list(self._listeners):
            try:
                listener(snap)
            except Exception:
                log.exception("control listener failed")

    def acquire(self, user: str) -> bool:
        """Take control if it is free (or already ours); False if someone else holds it."""
        with self._lock:
            if self._holder is not None and self._holder.user != user:
                return False
            changed = self._holder is None
            if changed:
                self._holder = Holder(user, self.clock())
            self._requests.pop(user, None)
        if changed:
            self._changed()
        return True

    def take(self, user: str) -> Holder | None:
        """Take control whoever holds it (admins); returns the previous holder."""
        with self._lock:
            previous = self._holder
            if previous is not None and previous.user == user:
                return previous
            self._holder = Holder(user, self.clock())
            self._requests.pop(user, None)
        self._changed()
        return previous

    def release(self, user: str) -> bool:
        """Give control up; False if ``user`` did not hold it."""
        with self._lock:
            if self._holder is None or self._holder.user != user:
                return False
            self._holder = None
        self._changed()
        return True

    def request(self, user: str) -> bool:
        """Ask the holder for control; True if recorded (False when ``user`` holds it)."""
        with self._lock:
            if self._holder is not None and self._holder.user == user:
                return False
            self._requests[user] = self.clock()
        self._changed()
        return True

    def forget(self, user: str) -> None:
        """The user logged out or was removed: drop their control and their request."""
        with self._lock:
            held = self._holder is not None and self._holder.user == user
            if held:
                self._holder = None
            asked = self._requests.pop(user, None) is not None
        if held or asked:
            self._changed()
