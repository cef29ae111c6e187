"""Failed-login counting in Redis, so every web process counts against one budget.

The same rule as :class:`webapp.web.access.ratelimit.FailureLimiter` (``max_failures`` within
``window_s`` seconds block a key until the oldest of them leaves the window), kept as one sorted
set of failure times per key (a SHA-256 of the key, expiring with the window). Times are wall
clock, the one clock the processes share.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

_FAILURE = """
local now, window, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('ZADD', key, now, ARGV[3 + i])
  redis.call('ZREMRANGEBYRANK', key, 0, -(max + 1))
  redis.call('EXPIRE', key, math.ceil(window))
end
return 1
"""

_RETRY_AFTER = """
local now, window, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for _, key in ipairs(KEYS) do
  local times = redis.call('ZRANGEBYSCORE', key, '(' .. tostring(now - window), '+inf', 'WITHSCORES')
  local n = #times / 2
  if n >= max then
    wait = math.max(wait, tonumber(times[(n - max) * 2 + 2]) + window - now)
  end
end
return tostring(wait)
"""


class RedisFailureLimiter:
    def __init__(
        self,
        client: Any,
        prefix: str,
        max_failures: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._client = client
        self._prefix = prefix
        self._failure = client.register_script(_FAILURE)
        self._retry_after = client.register_script(_RETRY_AFTER)

    def _key(self, key: str) -> str:
        return self._prefix + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def _args(self) -> list[str]:
        return [repr(self.clock()), repr(float(self.window_s)), str(self.max_failures)]

    def retry_after(self, *keys: str) -> int | None:
        """Whole seconds until every key may try again, or None if none is blocked now."""
        wait = float(self._retry_after(keys=[self._key(k) for k in keys], args=self._args()))
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failure(self, *keys: str) -> None:
        members = [uuid.uuid4().hex for _ in keys]
        self._failure(keys=[self._key(k) for k in keys], args=[*self._args(), *members])

    def success(self, *keys: str) -> None:
        if keys:
            self._client.delete(*(self._key(k) for k in keys))
