"""Reporting trouble in the engine's and web processes' Redis loops without flooding the log:
Redis down is one line (repeated at most every :data:`REPEAT_S`), anything else a traceback."""

from __future__ import annotations

import logging
import time

REPEAT_S = 10.0
_last: dict[str, float] = {}


def report(log: logging.Logger, what: str, exc: BaseException) -> None:
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        redis = None  # type: ignore[assignment]
    if redis is not None and isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        now = time.monotonic()
        if now - _last.get(what, -REPEAT_S) >= REPEAT_S:
            _last[what] = now
            log.warning("%s: Redis is not reachable (%s); trying again", what, exc)
        return
    log.error("%s failed", what, exc_info=exc)
