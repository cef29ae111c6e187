"""The access state in Redis, shared by every web process given the same URL.

Keys (under a prefix, ``lanxi:access:`` by default):

* ``control:holder`` — hash ``user``, ``since``: who holds control;
* ``control:requests`` — hash user → when they asked;
* ``ended:<sha256 of the session nonce>`` — a logged-out session, expiring when the session
  would have anyway;
* ``shares:revoked`` — hash share id → when it was revoked;
* channel ``notices`` — ``<process id> <notice>`` after each change (see ``access_store``).

Every lock operation is one Lua script, so Redis runs it atomically: of two processes taking a
free lock at the same instant exactly one wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from webapp import runtime
from webapp.web.access.store import NOTICE_RESYNC, Holder, LockState

log = logging.getLogger(__name__)

_ACQUIRE = """
local holder = redis.call('HGET', KEYS[1], 'user')
if holder and holder ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if holder then return 1 end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'since', ARGV[2])
return 2
"""

_TAKE = """
local previous = redis.call('HMGET', KEYS[1], 'user', 'since')
if previous[1] and previous[1] == ARGV[1] then return {0, previous[1], previous[2]} end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'since', ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
if previous[1] then return {1, previous[1], previous[2]} end
return {1}
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'user') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

_REQUEST = """
if redis.call('HGET', KEYS[1], 'user') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

_FORGET = """
local changed = redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'user') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  changed = 1
end
return changed
"""

_STATE = """
return {redis.call('HMGET', KEYS[1], 'user', 'since'), redis.call('HGETALL', KEYS[2])}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class _Checked:
    """The answers of one ``batch_checks`` look-up."""

    nonces: set[str]
    ended: set[str]
    share_ids: set[str]
    revoked: set[str]


class RedisAccessStore:
    def __init__(
        self, url: str, *, prefix: str = "lanxi:access:", client: redis.Redis | None = None
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.origin = uuid.uuid4().hex  # this process, so it skips its own notices
        self.client = self._client = client or redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        self._holder_key = prefix + "control:holder"
        self._requests_key = prefix + "control:requests"
        self._revoked_key = prefix + "shares:revoked"
        self._channel = prefix + "notices"
        self._lock_keys = [self._holder_key, self._requests_key]
        self._acquire = self._client.register_script(_ACQUIRE)
        self._take = self._client.register_script(_TAKE)
        self._release = self._client.register_script(_RELEASE)
        self._request = self._client.register_script(_REQUEST)
        self._forget = self._client.register_script(_FORGET)
        self._state = self._client.register_script(_STATE)
        self._listeners: list[Callable[[str], None]] = []
        self._listening = threading.Lock()
        self._listener_started = False
        self._closed = threading.Event()
        self._batch = threading.local()  # green-local under eventlet: one per sweep

    def check(self) -> None:
        """Raise a clear error if Redis does not answer."""
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise RuntimeError(
                f"the shared access store (Redis at {redacted(self.url)}) does not answer: {exc}"
            ) from exc

    # control lock ----------------------------------------------------------------------------

    def lock_state(self) -> LockState:
        holder_fields, flat = self._state(keys=self._lock_keys)
        holder = None
        if holder_fields[0] is not None:
            holder = Holder(_text(holder_fields[0]), float(_text(holder_fields[1])))
        pairs = [(_text(flat[i]), float(_text(flat[i + 1]))) for i in range(0, len(flat), 2)]
        return LockState(holder, tuple(sorted(pairs, key=lambda p: (p[1], p[0]))))

    def lock_acquire(self, user: str, now: float) -> tuple[bool, bool]:
        answer = int(self._acquire(keys=self._lock_keys, args=[user, repr(now)]))
        return answer > 0, answer == 2

    def lock_take(self, user: str, now: float) -> tuple[Holder | None, bool]:
        answer = self._take(keys=self._lock_keys, args=[user, repr(now)])
        previous = Holder(_text(answer[1]), float(_text(answer[2]))) if len(answer) > 1 else None
        return previous, bool(int(answer[0]))

    def lock_release(self, user: str) -> bool:
        return bool(int(self._release(keys=self._lock_keys, args=[user])))

    def lock_request(self, user: str, now: float) -> bool:
        return bool(int(self._request(keys=self._lock_keys, args=[user, repr(now)])))

    def lock_forget(self, user: str) -> bool:
        return bool(int(self._forget(keys=self._lock_keys, args=[user])))

    # sessions and share links ----------------------------------------------------------------

    @contextlib.contextmanager
    def batch_checks(self, nonces: Iterable[Any], share_ids: Iterable[Any]) -> Iterator[None]:
        wanted = sorted({n for n in nonces if isinstance(n, str) and n})
        shares = sorted({i for i in share_ids if isinstance(i, str) and i})
        pipe = self._client.pipeline(transaction=False)
        for nonce in wanted:
            pipe.exists(self._ended_key(nonce))
        if shares:
            pipe.hmget(self._revoked_key, shares)
        answers = pipe.execute() if wanted or shares else []
        revoked = answers[len(wanted)] if shares else []
        self._batch.checked = _Checked(
            set(wanted),
            {n for n, a in zip(wanted, answers, strict=False) if a},
            set(shares),
            {i for i, v in zip(shares, revoked, strict=True) if v is not None},
        )
        try:
            yield
        finally:
            self._batch.checked = None

    def _checked(self) -> _Checked | None:
        return getattr(self._batch, "checked", None)

    def _ended_key(self, nonce: str) -> str:
        return self.prefix + "ended:" + hashlib.sha256(nonce.encode()).hexdigest()

    def end_session(self, nonce: str, keep_s: float) -> None:
        self._client.set(self._ended_key(nonce), "1", ex=max(1, int(keep_s + 0.999)))

    def session_ended(self, nonce: str) -> bool:
        checked = self._checked()
        if checked is not None and nonce in checked.nonces:
            return nonce in checked.ended
        return bool(self._client.exists(self._ended_key(nonce)))

    def revoke_share(self, share_id: str) -> None:
        self._client.hsetnx(self._revoked_key, share_id, repr(time.time()))

    def share_revoked(self, share_id: str) -> bool:
        checked = self._checked()
        if checked is not None and share_id in checked.share_ids:
            return share_id in checked.revoked
        return bool(self._client.hexists(self._revoked_key, share_id))

    # notices between processes ---------------------------------------------------------------

    def announce(self, notice: str) -> None:
        self._client.publish(self._channel, f"{self.origin} {notice}")

    def on_notice(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)
        with self._listening:
            if self._listener_started:
                return
            self._listener_started = True
        pubsub = self._subscribe()  # subscribed before this returns: no notice is missed
        runtime.spawn(self._listen, pubsub, name="access-store-notices")

    def _subscribe(self) -> Any:
        pubsub = self._client.pubsub()
        pubsub.subscribe(self._channel)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "subscribe":
                return pubsub
        pubsub.close()
        raise redis.ConnectionError(f"could not subscribe to {self._channel}")

    def _listen(self, pubsub: Any) -> None:
        backoff = 0.1
        while not self._closed.is_set():
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    backoff = 0.1
                    self._deliver(NOTICE_RESYNC)  # notices may have been missed meanwhile
                message = pubsub.get_message(timeout=1.0)
            except (redis.RedisError, OSError) as exc:
                if self._closed.is_set():
                    break
                log.warning("access notices from Redis interrupted (%s); reconnecting", exc)
                if pubsub is not None:
                    pubsub.close()
                pubsub = None
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            origin, _, notice = _text(message["data"]).partition(" ")
            if origin != self.origin:
                self._deliver(notice)
        if pubsub is not None:
            pubsub.close()

    def _deliver(self, notice: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("access notice listener failed (%s)", notice)

    def close(self) -> None:
        self._closed.set()


def register_unavailable_error(app: Any, url: str) -> None:
    """A 503 naming the store, instead of a bare 500, while Redis does not answer."""
    from flask import jsonify

    message = (
        f"the shared access store (Redis at {redacted(url)}) does not answer; "
        "logins and control are unavailable until it is back"
    )

    def unavailable(exc: Exception) -> Any:
        log.error("%s: %s", message, exc)
        return jsonify(error=message), 503

    app.register_error_handler(redis.ConnectionError, unavailable)
    app.register_error_handler(redis.TimeoutError, unavailable)
