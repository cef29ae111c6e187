"""One controlling operator at a time.

Whoever holds control may set up, arm, start and stop; everybody else sees who holds it and
since when, and may ask for it. The holder gives it up, or an admin takes it. The lock lives in
an access store (``webapp.web.access.store``): the serving process's memory by default, so a
restart frees it, or Redis shared by every web process, so it holds on all of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from webapp.web.access.store import (
    NOTICE_CONTROL,
    NOTICE_RESYNC,
    AccessStore,
    Holder,
    MemoryAccessStore,
)

__all__ = ["ControlLock", "Holder"]

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class ControlLock:
    def __init__(
        self, clock: Callable[[], float] = time.time, store: AccessStore | None = None
    ) -> None:
        self.clock = clock
        self._listeners: list[tuple[Listener, bool]] = []
        self.store: AccessStore = store or MemoryAccessStore()

    def use_store(self, store: AccessStore) -> None:
        """Keep the lock in ``store`` from now on; changes made by other processes using it
        reach this one's listeners."""
        self.store = store
        store.on_notice(self._on_notice)

    def snapshot(self) -> dict[str, Any]:
        state = self.store.lock_state()
        return {
            "holder": asdict(state.holder) if state.holder else None,
            "requests": [{"user": u, "at": t} for u, t in state.requests],
        }

    def holder(self) -> Holder | None:
        return self.store.lock_state().holder

    def subscribe(self, listener: Listener, *, remote: bool = True) -> None:
        """``listener(snapshot)`` after every change (the web layer pushes it to viewers).

        ``remote=False``: only after changes made through this process, for a listener whose
        push already reaches the viewers of every process (a Socket.IO message queue)."""
        self._listeners.append((listener, remote))

    def _changed(self, *, local: bool = True) -> None:
        if local:
            self.store.announce(NOTICE_CONTROL)
        listeners = [f for f, remote in self._listeners if local or remote]
        if not listeners:
            return
        snap = self.snapshot()
        for listener in listeners:
            try:
                listener(snap)
            except Exception:
                log.exception("control listener failed")

    def _on_notice(self, notice: str) -> None:
        if notice in (NOTICE_CONTROL, NOTICE_RESYNC):
            self._changed(local=False)

    def acquire(self, user: str) -> bool:
        """Take control if it is free (or already ours); False if someone else holds it."""
        granted, changed = self.store.lock_acquire(user, self.clock())
        if changed:
            self._changed()
        return granted

    def take(self, user: str) -> Holder | None:
        """Take control whoever holds it (admins); returns the previous holder."""
        previous, changed = self.store.lock_take(user, self.clock())
        if changed:
            self._changed()
        return previous

    def release(self, user: str) -> bool:
        """Give control up; False if ``user`` did not hold it."""
        released = self.store.lock_release(user)
        if released:
            self._changed()
        return released

    def request(self, user: str) -> bool:
        """Ask the holder for control; True if recorded (False when ``user`` holds it)."""
        recorded = self.store.lock_request(user, self.clock())
        if recorded:
            self._changed()
        return recorded

    def forget(self, user: str) -> None:
        """The user logged out or was removed: drop their control and their request."""
        if self.store.lock_forget(user):
            self._changed()
