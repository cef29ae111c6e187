"""A web process's copy of the engine's live state, kept by reading the engine's journal.

At start (and whenever it finds a gap or another engine run) it takes the engine's snapshot
from Redis and then reads the journal stream after the snapshot's entry, applying each record
with the same folds the engine used (:func:`webapp.engine.journal.apply`). Its own LiveHub
pushes the result to this process's viewers, each at its own pace.
"""

from __future__ import annotations

import logging
from typing import Any

from webapp import runtime
from webapp.engine import codec, keys
from webapp.engine.journal import apply
from webapp.engine.state import LiveState
from webapp.engine.trouble import report

log = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
READ_COUNT = 1000


class StateMirror:
    def __init__(self, redis: Any, state: LiveState) -> None:
        self.redis = redis
        self.state = state
        self.run: str | None = None
        self.n = 0
        self.last_id = "0-0"
        self._stop = False
        self.resyncs = 0

    def start(self) -> None:
        try:
            self.resync()
        except Exception as exc:
            report(log, "reading the engine's state from Redis", exc)
        runtime.spawn(self._loop, name="state mirror")

    def stop(self) -> None:
        self._stop = True

    def resync(self) -> bool:
        """Take the engine's snapshot; False when there is none (no engine has run yet)."""
        raw = self.redis.get(keys.STATE)
        if raw is None:
            self.run, self.n, self.last_id = None, 0, "0-0"
            return False
        snap = codec.loads(raw)
        # A new engine run numbers its log afresh; continue this mirror's numbers.
        self.state.restore(snap["state"], renumber_log=self.run not in (None, snap["run"]))
        self.run, self.n, self.last_id = snap["run"], int(snap["n"]), str(snap["id"])
        self.resyncs += 1
        return True

    def _loop(self) -> None:
        while not self._stop:
            try:
                self._read()
            except Exception as exc:
                report(log, "reading the engine's journal from Redis", exc)
                runtime.sleep(0.5)

    def _read(self) -> None:
        got = self.redis.xread({keys.EVENTS: self.last_id}, count=READ_COUNT, block=READ_BLOCK_MS)
        for _stream, entries in got or []:
            for entry_id, fields in entries:
                record = codec.loads(fields[b"r"] if b"r" in fields else fields["r"])
                if record.get("run") != self.run or int(record.get("n", 0)) != self.n + 1:
                    # Another engine run, or records missed: start again from its snapshot.
                    if not self.resync():
                        self.last_id = _text(entry_id)
                    return
                self.n += 1
                self.last_id = _text(entry_id)
                try:
                    apply(self.state, record)
                except Exception:
                    log.exception("applying a journal record failed: %r", record.get("k"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
