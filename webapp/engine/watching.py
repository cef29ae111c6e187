"""What viewers watch, summed over every web process through Redis.

Decoding a waveform or computing a spectrum costs the receivers CPU, so the engine computes
only what some viewer shows. Each web process's LiveHub knows its own viewers' choices; a
:class:`WatchReporter` writes them to a key of its own with an expiry (renewed every
:data:`RENEW_S`), so the choices of a web process that was killed stop counting within
:data:`TTL_S`. The engine's :class:`WatchUnion` reads every process's key when one says it
changed (pub/sub) and at least every :data:`RENEW_S`, and gives the orchestrator the union; it
also sums the viewer counts into the ``viewers`` topic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from webapp import runtime
from webapp.engine import codec, keys
from webapp.engine.trouble import report

log = logging.getLogger(__name__)

TTL_S = 6.0
RENEW_S = 2.0


class WatchReporter:
    """A web process's end: its viewers' waveforms, spectra and count, kept alive in Redis."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.key = f"{keys.WATCH}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._waveforms: list[tuple[str, int]] = []
        self._spectra: list[tuple[str, int, str, int]] = []
        self._frfs: list[Any] = []
        self._count = 0
        self._dirty = threading.Event()
        self._stop = False

    def start(self) -> None:
        runtime.spawn(self._loop, name="watch reporter")

    def stop(self) -> None:
        self._stop = True
        self._dirty.set()
        with contextlib.suppress(Exception):  # it expires anyway
            self.redis.delete(self.key)

    def waveforms(self, channels: Iterable[tuple[str, int]] | None) -> None:
        with self._lock:
            self._waveforms = sorted((str(a), int(c)) for a, c in channels or ())
        self._dirty.set()

    def spectra(self, spectra: Iterable[tuple[str, int, str, int]]) -> None:
        with self._lock:
            self._spectra = sorted((str(a), int(c), str(w), int(n)) for a, c, w, n in spectra)
        self._dirty.set()

    def frfs(self, frfs: Iterable[Any]) -> None:
        """The live FRFs this process's viewers look at: ((ref module, ref channel),
        ((module, channel), ...), lines) each."""
        with self._lock:
            self._frfs = sorted(_frf_key(k) for k in frfs)
        self._dirty.set()

    def viewers(self, count: int) -> None:
        with self._lock:
            self._count = int(count)
        self._dirty.set()

    def _loop(self) -> None:
        while not self._stop:
            changed = self._dirty.wait(RENEW_S)
            self._dirty.clear()
            if self._stop:
                return
            try:
                self.write(announce=changed)
            except Exception as exc:
                report(log, "reporting the watched channels to Redis", exc)
                runtime.sleep(0.5)

    def write(self, announce: bool = True) -> None:
        with self._lock:
            body = codec.dumps(
                {
                    "waveforms": self._waveforms,
                    "spectra": self._spectra,
                    "frfs": self._frfs,
                    "viewers": self._count,
                }
            )
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.key, body, px=int(TTL_S * 1000))
        if announce:
            pipe.publish(keys.WATCH_CHANGED, self.key)
        pipe.execute()


class WatchUnion:
    """The engine's end: the union of every live web process's choices, applied."""

    def __init__(
        self,
        redis: Any,
        apply_waveforms: Callable[[frozenset[tuple[str, int]]], None],
        apply_spectra: Callable[[frozenset[tuple[str, int, str, int]]], None],
        on_count: Callable[[int], None],
        apply_frfs: Callable[[frozenset[Any]], None] | None = None,
    ) -> None:
        self.redis = redis
        self._apply_frfs = apply_frfs
        self._apply_waveforms = apply_waveforms
        self._apply_spectra = apply_spectra
        self._on_count = on_count
        self._current: tuple[Any, Any, int, Any] | None = None
        self._stop = False

    def start(self) -> None:
        self.refresh()
        runtime.spawn(self._loop, name="watch union")

    def stop(self) -> None:
        self._stop = True

    def _loop(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.WATCH_CHANGED)
        while not self._stop:
            try:
                pubsub.get_message(timeout=RENEW_S / 2)
                while pubsub.get_message(timeout=0) is not None:
                    pass  # several announcements: one refresh
                self.refresh()
            except Exception as exc:
                report(log, "reading the watched channels from Redis", exc)
                runtime.sleep(0.5)

    def refresh(self) -> None:
        waveforms: set[tuple[str, int]] = set()
        spectra: set[tuple[str, int, str, int]] = set()
        frfs: set[Any] = set()
        count = 0
        names = list(self.redis.scan_iter(match=keys.WATCH + "*", count=1000))
        bodies = self.redis.mget(names) if names else []
        for body in bodies:
            if body is None:  # expired between the scan and the read
                continue
            data = codec.loads(body)
            waveforms.update((str(a), int(c)) for a, c in data.get("waveforms", ()))
            spectra.update(
                (str(a), int(c), str(w), int(n)) for a, c, w, n in data.get("spectra", ())
            )
            frfs.update(_frf_key(k) for k in data.get("frfs", ()))
            count += int(data.get("viewers", 0))
        current = (frozenset(waveforms), frozenset(spectra), count, frozenset(frfs))
        if current == self._current:
            return
        before = self._current
        self._current = current
        if before is None or before[0] != current[0]:
            self._apply_waveforms(current[0])
        if before is None or before[1] != current[1]:
            self._apply_spectra(current[1])
        if before is None or before[2] != count:
            self._on_count(count)
        if self._apply_frfs is not None and (before is None or before[3] != current[3]):
            self._apply_frfs(current[3])


def _frf_key(key: Any) -> Any:
    """A live FRF's key as tuples again (JSON made lists of them)."""
    (ra, rc), responses, lines = key
    return ((str(ra), int(rc)), tuple((str(a), int(c)) for a, c in responses), int(lines))
