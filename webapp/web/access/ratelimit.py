"""Counting failed logins, per user name and per client address, each with its own budget.

``LoginLimits`` keeps two counters: a tight one per account (a slow-down for guessing one
password) and a larger one per address (a stop for spraying many accounts from one client),
so colleagues behind one NAT or proxy do not lock each other out when one of them mistypes.

A key that collected ``max_failures`` failures within the last
``window_s`` seconds is refused until the oldest of them leaves the window; the caller answers
429 with Retry-After. Memory stays bounded: old failures are dropped as they expire and, past
``max_keys`` keys, the least recently failed keys are forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


class FailureLimiter:
    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, *keys: str) -> int | None:
        """Whole seconds until every key may try again, or None if none is blocked now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.max_failures:
                    wait = max(wait, times[-self.max_failures] + self.window_s - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failure(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now) or deque(maxlen=self.max_failures)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def success(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


@dataclass(frozen=True)
class Throttle:
    """Why a login must wait, and how long (whole seconds)."""

    wait_s: int
    scope: str  # "account" or "address"

    def message(self) -> str:
        what = "for this account" if self.scope == "account" else "from this address"
        return f"too many failed logins {what}; try again in {self.wait_s} s"


class LoginLimits:
    """The per-account and the per-address limiter of the login route."""

    def __init__(
        self,
        account_failures: int = 5,
        account_window_s: float = 60.0,
        address_failures: int = 30,
        address_window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = FailureLimiter(account_failures, account_window_s, clock)
        self.address = FailureLimiter(address_failures, address_window_s, clock)

    @property
    def clock(self) -> Callable[[], float]:
        return self.account.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.account.clock = clock
        self.address.clock = clock

    @staticmethod
    def _keys(name: str, addr: str | None) -> tuple[str, str]:
        return f"user:{name.lower()}", f"addr:{addr}"

    def throttle(self, name: str, addr: str | None) -> Throttle | None:
        """The longer of the two waits, or None if this name may try from this address."""
        user_key, addr_key = self._keys(name, addr)
        waits = [
            (wait, scope)
            for wait, scope in (
                (self.address.retry_after(addr_key), "address"),
                (self.account.retry_after(user_key), "account"),
            )
            if wait is not None
        ]
        if not waits:
            return None
        wait, scope = max(waits)
        return Throttle(wait, scope)

    def failure(self, name: str, addr: str | None) -> None:
        user_key, addr_key = self._keys(name, addr)
        self.account.failure(user_key)
        self.address.failure(addr_key)

    def success(self, name: str, addr: str | None) -> None:
        """Clears the account's count; the address keeps its count (a login to an account
        of one's own must not reset a spray's budget)."""
        self.account.success(self._keys(name, addr)[0])
