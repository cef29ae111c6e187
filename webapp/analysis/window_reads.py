"""Front-to-back reads of channels side by side in time windows, also while the index pass still
runs (``Capture.open(..., background=True)``), checked against what the complete index shows.
A base class of :class:`webapp.analysis.reader.Capture`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from webapp import runtime
from webapp.analysis.capture_errors import StreamingReadError
from webapp.analysis.index import FileIndex
from webapp.analysis.indexing import IndexPass
from webapp.analysis.model import Channel, StreamFile, Window


def decode_workers() -> int:
    """Threads that decode a window's channels side by side (numpy's shifts and products run
    without the GIL). One under eventlet, whose monkey-patched threads would be green and run
    one after another on the hub's OS thread."""
    if runtime.eventlet_active():
        return 1
    return max(1, min(2, os.cpu_count() or 1))


class WindowReads:
    """Windowed reads of :class:`~webapp.analysis.reader.Capture` (which holds the state and the
    reads declared here)."""

    _channels: list[Channel]
    _files: list[StreamFile]
    _by_key: dict[str, Channel]
    _builds: int
    _index: IndexPass | None

    @property
    def indexed(self) -> bool:
        raise NotImplementedError

    @property
    def start_ticks(self) -> int:
        raise NotImplementedError

    def _channel(self, key: str) -> Channel:
        raise NotImplementedError

    def _complete(self) -> None:
        raise NotImplementedError

    def _build_channels(self, indexes: list[FileIndex]) -> None:
        raise NotImplementedError

    def read(
        self,
        key: str | Channel,
        start: int = 0,
        stop: int | None = None,
        dtype: Any = np.float64,
        fill: float = np.nan,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        raise NotImplementedError

    def iter_windows(
        self,
        keys: Sequence[str] | None = None,
        chunk: int = 1 << 20,
        trim: bool = False,
        start_ticks: int | None = None,
        end_ticks: int | None = None,
        dtype: Any = np.float64,
        reuse: bool = False,
    ) -> Iterator[Window]:
        """The channels side by side in time windows of at most ``chunk`` samples each.

        Windows follow each other without overlap; a channel contributes only the samples it
        has inside the span (all of them, or the common span with ``trim``). Every file is read
        front to back once, whatever the number of channels. With ``reuse`` the arrays are
        views of buffers that the next window overwrites (a streaming consumer allocates
        nothing per window).

        While the index pass still runs (``open(..., background=True)``), each window waits
        only until every file is indexed past its end; a file whose index has ended ends its
        channels. Should the complete index contradict what was delivered (a signal that
        starts late, blocks that go back in time: a damaged capture), ``StreamingReadError``
        is raised at that point; open the capture without ``background`` to read it.
        """
        everything = keys is None
        keys = list(keys) if keys is not None else [c.key for c in self._channels]
        if not keys:
            return
        self._await_samples(keys)
        chans = [self._channel(k) for k in keys]
        fixed = (start_ticks, end_ticks)
        t0 = self._window_span(chans, trim, fixed)[0]
        delivered = _Delivered(keys, {c.key: c.start_ticks for c in chans}, t0, everything)
        built = self._builds
        step = chunk * min(c.ticks_per_sample for c in chans)
        buffers: dict[str, np.ndarray] = {}
        workers = decode_workers()
        pool = ThreadPoolExecutor(workers) if workers > 1 and len(chans) > 1 else None

        def decode(job: tuple[Channel, int, int, np.ndarray | None]) -> np.ndarray:
            ch, i0, i1, out = job
            return self.read(ch, i0, i1, dtype, out=out)

        try:
            a = t0
            while True:
                if self._index is not None:
                    until = a + step if end_ticks is None else min(a + step, end_ticks)
                    self._follow_index(keys, until)
                if self._builds != built:  # the index grew: the channels are new objects
                    chans = self._recheck(delivered, trim, fixed)
                    built = self._builds
                lo, t1 = self._window_span(chans, trim, fixed)
                if a >= t1:
                    break
                b = min(t1, a + step)
                jobs = []
                for ch in chans:
                    i0, i1 = range_in(ch, max(a, lo), b)
                    if i1 <= i0:
                        continue
                    out = None
                    if reuse:
                        buf = buffers.get(ch.key)
                        if buf is None or len(buf) < i1 - i0:
                            buf = buffers[ch.key] = np.empty(max(i1 - i0, chunk), dtype=dtype)
                        out = buf[: i1 - i0]
                    jobs.append((ch, i0, i1, out))
                # The channels of a window are independent: with a second core two decode at
                # once (numpy's loops and page faults run without the GIL).
                values = pool.map(decode, jobs) if pool else map(decode, jobs)
                parts = {job[0].key: (job[1], v) for job, v in zip(jobs, values, strict=True)}
                yield Window(a, b, parts)
                self._release(chans, b)
                a = b
            if self._index is not None and end_ticks is None:
                # The span ended before the index did (with ``trim``, at a file that ended
                # early): the rest of the index can still contradict what was delivered.
                self._complete()
                self._recheck(delivered, trim, fixed)
        finally:
            if pool is not None:
                pool.shutdown()

    def _window_span(
        self, chans: list[Channel], trim: bool, fixed: tuple[int | None, int | None]
    ) -> tuple[int, int]:
        t0, t1 = span_of(chans, trim, self.start_ticks if self.indexed else 0)
        if fixed[0] is not None:
            t0 = max(t0, fixed[0])
        if fixed[1] is not None:
            t1 = min(t1, fixed[1])
        return t0, t1

    def _grow_index(self) -> None:
        """Let the running index pass move on, and rebuild the channels from what it has."""
        index = self._index
        assert index is not None
        if index.done:
            self._complete()
        else:
            index.wait_more()
            self._build_channels(index.snapshots())

    def _await_samples(self, keys: list[str]) -> None:
        """While indexing in the background: until every one of these channels is known and has
        samples (their start instants fix the windows), or the index is complete."""
        while self._index is not None and not all(
            k in self._by_key and self._channel(k).length for k in keys
        ):
            self._grow_index()

    def _follow_index(self, keys: list[str], until: int) -> None:
        """Until every file still being indexed is indexed past ``until`` for these channels."""
        while self._index is not None:
            pending = {i for i, sf in enumerate(self._files) if not sf.index.complete}
            if not pending:
                self._complete()
                return
            if all(
                self._channel(k).end_ticks >= until
                for k in keys
                if self._channel(k).file in pending
            ):
                return
            self._grow_index()

    def _recheck(
        self, delivered: _Delivered, trim: bool, fixed: tuple[int | None, int | None]
    ) -> list[Channel]:
        """The channels again after the index grew, checked against the windows delivered:
        a damaged capture can contradict them (blocks that go back in time, a signal that
        starts late), which only the complete index shows."""
        known = set(self._by_key)
        gone = [k for k in delivered.keys if k not in known]
        if gone:
            raise StreamingReadError(f"{', '.join(gone)} left the index while it grew")
        chans = [self._channel(k) for k in delivered.keys]
        moved = [c.key for c in chans if c.start_ticks != delivered.starts[c.key] or not c.ordered]
        if moved:
            raise StreamingReadError(f"blocks of {', '.join(moved)} go back in time")
        late = sorted(known - set(delivered.keys)) if delivered.everything else []
        if late:
            raise StreamingReadError(f"{', '.join(late)} only start later in their files")
        if self._window_span(chans, trim, fixed)[0] != delivered.start:
            raise StreamingReadError("the channels' common start moved")
        return chans


@dataclass
class _Delivered:
    """What a front-to-back read fixed when it began (checked as the index grows)."""

    keys: list[str]
    starts: dict[str, int]
    start: int
    everything: bool


# Spans in ticks of channels, and sample ranges inside a span (Capture.span and range_of too).


def span_of(chans: Iterable[Channel], trim: bool, default: int) -> tuple[int, int]:
    chans = [c for c in chans if c.length]
    if not chans:
        return (default, default)
    if trim:
        start = max(c.start_ticks for c in chans)
        end = min(c.end_ticks for c in chans)
        return (start, max(start, end))
    return (min(c.start_ticks for c in chans), max(c.end_ticks for c in chans))


def range_in(ch: Channel, start_ticks: int, end_ticks: int) -> tuple[int, int]:
    i0 = min(max(ch.index_at(start_ticks), 0), ch.length)
    i1 = min(max(ch.index_at(end_ticks), i0), ch.length)
    return i0, i1
