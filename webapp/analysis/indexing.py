"""The index pass over all of a capture's files, done by a few threads, usable while it runs.

Two orders of reading:

* ``lockstep=False`` (``Capture.open``): each thread takes on a file and indexes it front to
  back, then the next file nobody has, as the disk streams best; nothing is used before the
  whole pass ends.
* ``lockstep=True`` (``Capture.open(..., background=True)``): the threads read a chunk at a
  time of whichever file is least far along, so all files move forward together in stream
  time; ``snapshots`` give what is indexed so far and a reader decodes the first windows while
  the rest of the files are still being read. One disk pass instead of two (the decoder finds
  the pages the index pass has just read in the kernel's cache), and the decoding overlaps the
  reading.

In lockstep the pass keeps at most ``lead`` bytes per file ahead of what the reader reports as
consumed (``consumed``), so that on a capture larger than memory the pages are still cached when
the decoder gets to them. If every unfinished file is held back while the reader still waits for
more, the limit is lifted rather than deadlock.

Without threads (one worker, e.g. under eventlet where threads would be green), the calling
thread does the reading itself, inside ``wait_more`` and ``finish``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from webapp.analysis.index import FileIndex, FileScan

LEAD_BYTES = 256 << 20
"""How far (per file) the lockstep index pass may run ahead of the decoding."""
MIN_PROGRESS = 4 << 20
"""Bytes the pass must have moved on before ``wait_more`` returns (unless it is finished)."""


class IndexPass:
    def __init__(
        self,
        paths: Sequence[Path],
        workers: int,
        chunk: int,
        lockstep: bool = False,
        lead: int | None = None,
    ) -> None:
        self.scans = [FileScan(p, chunk) for p in paths]
        self.lockstep = lockstep
        self.lead = LEAD_BYTES if lead is None else lead
        self._consumed = [0] * len(self.scans)
        self._stalled_at = -1
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._stop = False
        self._threads: list[threading.Thread] = []
        # ``workers`` of 1 means no threads to spare: the caller reads (see above).
        threads = min(workers, len(self.scans)) if workers > 1 else 0
        self._busy: set[int] = set()
        """Files a thread is reading a chunk of right now."""
        self._claimed: set[int] = set()
        """Files a thread has taken on (front to back, when not in lockstep)."""
        for w in range(threads):
            t = threading.Thread(target=self._work, name=f"index-{w}", daemon=True)
            self._threads.append(t)
            t.start()

    @property
    def threaded(self) -> bool:
        return bool(self._threads)

    @property
    def done(self) -> bool:
        return all(s.done for s in self.scans)

    @property
    def scanned(self) -> int:
        return sum(s.scanned for s in self.scans)

    # --- the reading threads ------------------------------------------------------------

    def _next(self, current: int | None) -> int | None:
        """The file to read a chunk of next (-1: wait, None: nothing left for this thread).

        Not in lockstep, a thread keeps to its file (``current``) and then takes on the next
        file nobody has; in lockstep, any thread reads the least far along file nobody is
        reading and that is not too far ahead of the reader."""
        todo = [i for i, s in enumerate(self.scans) if not s.done]
        if not self.lockstep:
            if current is not None and current in todo:
                return current
            unclaimed = [i for i in todo if i not in self._claimed]
            if not unclaimed:
                return None
            self._claimed.add(unclaimed[0])
            return unclaimed[0]
        if not todo:
            return None
        free = [i for i in todo if i not in self._busy and not self._is_held(i)]
        if not free:
            return -1
        return min(free, key=lambda i: self.scans[i].scanned / max(1, self.scans[i].size))

    def _is_held(self, i: int) -> bool:
        return self.scans[i].scanned - self._consumed[i] > self.lead

    def _work(self) -> None:
        current: int | None = None
        try:
            while True:
                with self._cond:
                    while True:
                        if self._stop:
                            return
                        pick = self._next(current)
                        if pick != -1:
                            break
                        self._cond.notify_all()
                        self._cond.wait()
                    if pick is None:
                        return
                    self._busy.add(pick)
                current = pick
                try:
                    self.scans[pick].step()
                finally:
                    with self._cond:
                        self._busy.discard(pick)
                        self._cond.notify_all()
        except BaseException as exc:  # handed to the thread that waits for the pass
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    # --- the consumer -------------------------------------------------------------------

    def wait_started(self) -> None:
        """Until every file has had its first chunk read (its signals announced)."""
        if not self._threads:
            for s in self.scans:
                if not s.scanned and not s.done:
                    s.step()
            return
        with self._cond:
            while not all(s.scanned or s.done for s in self.scans):
                self._check()
                self._cond.wait()
            self._check()

    def wait_more(self) -> None:
        """Until the pass has moved on by a good part of what it had read (or is finished)."""
        before = self.scanned
        target = before + max(MIN_PROGRESS, before // 8)
        if not self._threads:
            for s in sorted(self.scans, key=lambda s: s.scanned / max(1, s.size)):
                while not s.done and self.scanned < target:
                    s.step()
            return
        with self._cond:
            while self.scanned < target and not self.done:
                self._check()
                todo = [i for i, s in enumerate(self.scans) if not s.done]
                # Held back: not being read now, and too far ahead of the reader.
                if todo and all(i not in self._busy and self._is_held(i) for i in todo):
                    if self.scanned != self._stalled_at:
                        self._stalled_at = self.scanned  # the reader may have enough: let it see
                        return
                    self.lead = 1 << 62  # it asks again: it needs more than the lead allows
                    self._cond.notify_all()
                self._cond.wait()
            self._check()

    def consumed(self, file: int, offset: int) -> None:
        """The reader is done with ``file`` before ``offset``."""
        if offset > self._consumed[file]:
            with self._cond:
                self._consumed[file] = offset
                self._cond.notify_all()

    def snapshots(self) -> list[FileIndex]:
        return [s.snapshot() for s in self.scans]

    def finish(self) -> list[FileIndex]:
        """Every file's complete index (waits for the pass; raises what it ran into)."""
        if self._threads:
            with self._cond:
                self.lead = 1 << 62
                self._cond.notify_all()
                while not self.done:
                    self._check()
                    self._cond.wait()
                self._check()
            for t in self._threads:
                t.join()
        else:
            for s in self.scans:
                s.run()
        return [s.index for s in self.scans]

    def cancel(self) -> None:
        """Stop reading (the capture is being closed before its index was needed)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        for s in self.scans:
            s.close()

    def stop(self) -> None:
        """``cancel`` without waiting for the threads (from a finaliser)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
