"""The engine's side of the live state: every change folded here and written to Redis.

:class:`JournaledState` is the engine's :class:`~webapp.engine.state.LiveState`; each write to it
(an orchestrator event, a topic the rig or setup sets, a log line) is also queued as a record.
:class:`Journal` sends the queued records to a Redis stream in batches (one pipeline, never
from the orchestrator's own greenlet) and, at most every :data:`SNAPSHOT_INTERVAL_S`, the whole
state with the id of the last record it includes. A web process starts from that snapshot and
reads the stream after it (:mod:`webapp.engine.mirror`), so it has exactly the engine's state.

Records carry the engine's run id and a running number: a reader that sees a gap (the stream
was trimmed past it) or another run (the engine restarted) takes the snapshot again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from webapp import runtime
from webapp.capture import events as ev
from webapp.engine import codec, keys
from webapp.engine.state import LiveState
from webapp.engine.trouble import report

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 0.5
"""The longest a snapshot in Redis lags the state (when it changed)."""
SNAPSHOT_REFRESH_S = 5.0
"""The snapshot is written again this often even when nothing changed (a Redis restarted
empty has it back at once)."""
STREAM_LENGTH = 20_000
"""About this many records are kept in the stream (a reader further behind resyncs)."""


class JournaledState(LiveState):
    """A LiveState whose every change is also queued for :class:`Journal`."""

    def __init__(self) -> None:
        super().__init__()
        self.journal_lock = threading.Lock()
        self.pending: list[dict[str, Any]] = []
        self.on_record: Any = None

    def _record(self, record: dict[str, Any]) -> None:
        self.pending.append(record)

    def set_topic(self, topic: str, value: Any) -> None:
        with self.journal_lock:
            super().set_topic(topic, value)
            self._record({"k": "topic", "topic": topic, "value": value})
        self._wake()

    def bump_history(self) -> None:
        with self.journal_lock:
            super().bump_history()
            self._record({"k": "history"})
        self._wake()

    def add_log(self, level: str, message: str, *, t: float | None = None, **where: Any) -> None:
        t = time.time() if t is None else t
        with self.journal_lock:
            super().add_log(level, message, t=t, **where)
            self._record({"k": "log", "level": level, "message": message, "t": t, "where": where})
        self._wake()

    def on_event(self, event: ev.Event) -> None:
        with self.journal_lock:
            super().on_event(event)
            self._record({"k": "event", "event": codec.event_to_dict(event)})
        self._wake()

    def _wake(self) -> None:
        if self.on_record is not None:
            self.on_record()


def apply(state: LiveState, record: dict[str, Any]) -> None:
    """One journal record applied to a mirror (the same folds as the engine's state)."""
    kind = record.get("k")
    if kind == "event":
        event = codec.event_from_dict(record["event"])
        if event is not None:
            state.on_event(event)
    elif kind == "topic":
        state.set_topic(record["topic"], record["value"])
    elif kind == "history":
        state.bump_history()
    elif kind == "log":
        where = record.get("where") or {}
        state.add_log(record["level"], record["message"], t=record.get("t"), **where)


class Journal:
    """Writes a :class:`JournaledState`'s records and snapshots to Redis (one greenlet)."""

    def __init__(self, redis: Any, state: JournaledState) -> None:
        self.redis = redis
        self.state = state
        self.run = uuid.uuid4().hex
        self.n = 0
        self.last_id = "0-0"
        self._wake = threading.Event()
        self._snapshot_due = True
        self._last_snapshot = 0.0
        self._stop = False
        self._flush_lock = threading.Lock()
        state.on_record = self._wake.set

    def start(self) -> None:
        # The stream may hold an earlier run's records: this run's snapshot includes them
        # (readers start after them), so it names the stream's end.
        last = self.redis.xrevrange(keys.EVENTS, count=1)
        if last:
            self.last_id = _text(last[0][0])
        self.flush()  # the first snapshot before anyone can ask for it
        runtime.spawn(self._loop, name="journal")

    def stop(self) -> None:
        self._stop = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(SNAPSHOT_INTERVAL_S)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:
                report(log, "writing the live state to Redis", exc)
                runtime.sleep(0.5)

    def flush(self) -> None:
        """Send the queued records, then (when due) the snapshot that includes them."""
        with self._flush_lock:  # one writer at a time: records go out in their order
            self._flush()

    def _flush(self) -> None:
        state = self.state
        now = time.monotonic()
        with state.journal_lock:
            batch, state.pending = state.pending, []
            if batch:
                self._snapshot_due = True
            snapshot = None
            since = now - self._last_snapshot
            if (self._snapshot_due and since >= SNAPSHOT_INTERVAL_S) or since >= SNAPSHOT_REFRESH_S:
                snapshot = state.snapshot()
                self._snapshot_due = False
                self._last_snapshot = now
        if not batch and snapshot is None:
            return
        pipe = self.redis.pipeline(transaction=False)
        for record in batch:
            self.n += 1
            body = codec.dumps({**record, "run": self.run, "n": self.n})
            pipe.xadd(keys.EVENTS, {"r": body}, maxlen=STREAM_LENGTH, approximate=True)
        ids = pipe.execute() if batch else []
        if ids:
            self.last_id = _text(ids[-1])
        if snapshot is not None:
            body = codec.dumps(
                {"run": self.run, "n": self.n, "id": self.last_id, "state": snapshot}
            )
            self.redis.set(keys.STATE, body)
        else:
            self._wake.set()  # a snapshot is due later: look again then


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
