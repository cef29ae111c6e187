"""The engine served through Redis: its heartbeat, its state journaled, its commands taken.

``lanxi-dashboard engine`` claims the queue's engine slot (:class:`Heartbeat`), builds an
:class:`~webapp.engine.core.EngineCore` on a :class:`~webapp.engine.journal.JournaledState`
and starts an :class:`EngineService` for it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from webapp import runtime
from webapp.engine import codec, keys
from webapp.engine.commands import CommandServer
from webapp.engine.core import EngineCore
from webapp.engine.journal import Journal, JournaledState
from webapp.engine.trouble import report
from webapp.engine.watching import WatchUnion

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
HEARTBEAT_TTL_S = 3.0
"""Web processes take a missing heartbeat for "no engine running" and say so at once."""


class AnotherEngineRunning(RuntimeError):
    pass


def _gone(who: dict[str, Any]) -> bool:
    """Whether the engine a heartbeat names ran on this machine and its process is gone."""
    if who.get("host") != socket.gethostname() or not isinstance(who.get("pid"), int):
        return False
    if who["pid"] == os.getpid():
        return False
    try:
        os.kill(who["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Heartbeat:
    """The queue's engine slot: one key with an expiry, renewed while this engine lives."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.body = codec.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        )
        self._stop = False

    def claim(self) -> None:
        """Take the slot before the engine touches anything, and keep it: refuses
        (:class:`AnotherEngineRunning`) while another engine's heartbeat is live, since two
        engines on one queue would both take commands, drive the same modules and mark each
        other's running capture interrupted."""
        ttl = int(HEARTBEAT_TTL_S * 1000)
        while not self.redis.set(keys.ENGINE, self.body, nx=True, px=ttl):
            other = self.redis.get(keys.ENGINE)
            who = codec.loads(other) if other else {}
            if other is None:
                continue  # expired meanwhile: try again
            if _gone(who):
                # An engine of this machine that died (killed, crashed) a moment ago: its
                # heartbeat has not expired yet, but nobody will renew it. Take over.
                log.warning("taking over from engine pid %s, which is no longer running",
                            who.get("pid"))  # fmt: skip
                if self.redis.set(keys.ENGINE, self.body, px=ttl, xx=True):
                    break
                continue
            raise AnotherEngineRunning(
                f"another capture engine runs on this message queue (pid {who.get('pid')} on "
                f"{who.get('host')})"
            )
        runtime.spawn(self._loop, name="engine heartbeat")

    def _loop(self) -> None:
        while not self._stop:
            runtime.sleep(HEARTBEAT_S)
            if self._stop:
                return
            try:
                self.redis.set(keys.ENGINE, self.body, px=int(HEARTBEAT_TTL_S * 1000))
            except Exception as exc:
                report(log, "the engine's heartbeat to Redis", exc)

    def release(self) -> None:
        self._stop = True
        try:
            self.redis.delete(keys.ENGINE)
        except Exception:
            log.exception("removing the engine's heartbeat from Redis failed")


class EngineService:
    """Serves ``core`` on the queue: journal, commands, the viewers' watch union."""

    def __init__(self, redis: Any, core: EngineCore) -> None:
        if not isinstance(core.state, JournaledState):
            raise TypeError("the engine's state must be a JournaledState")
        self.redis = redis
        self.core = core
        self.journal = Journal(redis, core.state)
        self.commands = CommandServer(
            redis,
            {
                "control": core.control,
                "rig": core.rig,
                "setups": core.setups,
                "faults": core.faults,
                "engine": core,
            },
        )
        self.watch = WatchUnion(
            redis,
            core.watch_waveforms,
            core.watch_spectra,
            lambda n: core.state.set_topic("viewers", {"count": n}),
            core.watch_frfs,
        )

    def start(self) -> None:
        self.journal.start()
        self.watch.start()
        self.commands.start()

    def stop_commands(self) -> None:
        """No more commands (the engine is shutting down)."""
        self.commands.stop()

    def stop(self) -> None:
        self.commands.stop()
        self.watch.stop()
        try:
            self.journal.flush()
        except Exception:
            log.exception("writing the last of the live state to Redis failed")
        self.journal.stop()
