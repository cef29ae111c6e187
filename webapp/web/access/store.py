"""Where the access state every web process must agree on is kept.

Three things decide who may do what beyond the users and share-link files: the control lock
(holder, since, pending requests), the sessions ended by a logout, and the share links revoked.
One ``serve`` process keeps them in its memory (:class:`MemoryAccessStore`, the default). Several
web processes behind one address share them through Redis
(:class:`webapp.web.access.store_redis.RedisAccessStore`): a lock taken through one process holds
on all, a logged-out session is refused by all and a revoked link stops everywhere.

Each store also carries notices between processes: ``announce("control")`` after a lock change
(every process then tells its viewers), ``announce("sweep")`` after a logout or revocation (every
process then drops the sockets whose login or link ended). The in-memory store has nobody to
tell.

``share_through_redis(app, url)`` switches an app made by ``create_app`` to the Redis store; the
``serve`` command calls it when it is given ``--message-queue``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

NOTICE_CONTROL = "control"
NOTICE_SWEEP = "sweep"
NOTICE_RESYNC = "resync"  # the link to the other processes came back: anything may have changed


@dataclass(frozen=True)
class Holder:
    user: str
    since: float
    """Wall-clock time (seconds since the epoch) control was taken."""


@dataclass(frozen=True)
class LockState:
    holder: Holder | None
    requests: tuple[tuple[str, float], ...]
    """(user, when asked), oldest first."""


class AccessStore(Protocol):
    """The shared access state. Every lock operation is atomic across all processes using the
    store: two takes at the same moment cannot both win."""

    # control lock
    def lock_state(self) -> LockState: ...

    def lock_acquire(self, user: str, now: float) -> tuple[bool, bool]:
        """Take control if free (or already ``user``'s): (granted, changed)."""
        ...

    def lock_take(self, user: str, now: float) -> tuple[Holder | None, bool]:
        """Take control whoever holds it: (previous holder, changed)."""
        ...

    def lock_release(self, user: str) -> bool:
        """Free control if ``user`` holds it; True if it did."""
        ...

    def lock_request(self, user: str, now: float) -> bool:
        """Record ``user``'s request for control; False when ``user`` holds it."""
        ...

    def lock_forget(self, user: str) -> bool:
        """Drop ``user``'s control and request; True if anything changed."""
        ...

    # sessions and share links
    def end_session(self, nonce: str, keep_s: float) -> None:
        """Refuse the session ``nonce`` from now on (for ``keep_s``, its longest lifetime)."""
        ...

    def session_ended(self, nonce: str) -> bool: ...

    def revoke_share(self, share_id: str) -> None: ...

    def share_revoked(self, share_id: str) -> bool: ...

    def batch_checks(
        self, nonces: Iterable[Any], share_ids: Iterable[Any]
    ) -> AbstractContextManager[None]:
        """Within the block, ``session_ended`` and ``share_revoked`` answer for these from one
        look-up made at its start (the socket sweep checks every socket at once)."""
        ...

    # notices between processes
    def announce(self, notice: str) -> None:
        """Tell every other process using this store (not this one) about ``notice``."""
        ...

    def on_notice(self, listener: Callable[[str], None]) -> None:
        """``listener(notice)`` for each notice from another process."""
        ...

    def close(self) -> None: ...


class MemoryAccessStore:
    """The access state of one process, in its memory (lost, so freed, at a restart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: Holder | None = None
        self._requests: dict[str, float] = {}
        self._ended: dict[str, float] = {}  # nonce → when the session would have expired anyway
        self._revoked: set[str] = set()

    def lock_state(self) -> LockState:
        with self._lock:
            return LockState(self._holder, tuple(self._requests.items()))

    def lock_acquire(self, user: str, now: float) -> tuple[bool, bool]:
        with self._lock:
            if self._holder is not None and self._holder.user != user:
                return False, False
            changed = self._holder is None
            if changed:
                self._holder = Holder(user, now)
            self._requests.pop(user, None)
            return True, changed

    def lock_take(self, user: str, now: float) -> tuple[Holder | None, bool]:
        with self._lock:
            previous = self._holder
            if previous is not None and previous.user == user:
                return previous, False
            self._holder = Holder(user, now)
            self._requests.pop(user, None)
            return previous, True

    def lock_release(self, user: str) -> bool:
        with self._lock:
            if self._holder is None or self._holder.user != user:
                return False
            self._holder = None
            return True

    def lock_request(self, user: str, now: float) -> bool:
        with self._lock:
            if self._holder is not None and self._holder.user == user:
                return False
            self._requests[user] = now
            return True

    def lock_forget(self, user: str) -> bool:
        with self._lock:
            held = self._holder is not None and self._holder.user == user
            if held:
                self._holder = None
            asked = self._requests.pop(user, None) is not None
            return held or asked

    def end_session(self, nonce: str, keep_s: float) -> None:
        now = time.time()
        with self._lock:
            self._ended = {n: t for n, t in self._ended.items() if t > now}
            self._ended[nonce] = now + keep_s

    def session_ended(self, nonce: str) -> bool:
        with self._lock:
            return nonce in self._ended

    def revoke_share(self, share_id: str) -> None:
        with self._lock:
            self._revoked.add(share_id)

    def share_revoked(self, share_id: str) -> bool:
        with self._lock:
            return share_id in self._revoked

    def batch_checks(
        self, nonces: Iterable[Any], share_ids: Iterable[Any]
    ) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # every check is a look-up in memory anyway

    def announce(self, notice: str) -> None:
        pass  # one process: nobody else to tell

    def on_notice(self, listener: Callable[[str], None]) -> None:
        pass

    def close(self) -> None:
        pass


def share_through_redis(app: Any, redis_url: str, *, prefix: str = "lanxi:access:") -> Any:
    """Keep ``app``'s control lock, ended sessions and revoked share links in Redis at
    ``redis_url``, shared with every other web process given the same URL, and count failed
    logins there too; returns the store.

    ``create_app(message_queue=URL)`` calls it once, right after access control is set up.
    Fails at once, naming the URL, if Redis does not answer.
    """
    from webapp.web.access.accesscontrol import AccessControl
    from webapp.web.access.ratelimit_redis import RedisFailureLimiter
    from webapp.web.access.settings import EXTENSION
    from webapp.web.access.store_redis import RedisAccessStore, register_unavailable_error

    store = RedisAccessStore(redis_url, prefix=prefix)
    store.check()
    ac: AccessControl = app.extensions[EXTENSION]
    ac.use_store(store)
    # Failed logins count against one budget, whichever process a guess reaches.
    for scope in ("account", "address"):
        local = getattr(ac.limiter, scope)
        shared = RedisFailureLimiter(
            store.client, f"{prefix}login:{scope}:", local.max_failures, local.window_s
        )
        setattr(ac.limiter, scope, shared)
    register_unavailable_error(app, redis_url)
    return store
