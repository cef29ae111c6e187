"""A finished (or crashed) capture as calibrated per-channel signals.

``Capture.open(folder)`` indexes every stream file of a capture (``index.scan_file``), maps each
signal back to its module and physical channel through ``capture.json``, and places every block
on its channel's sample grid from its header time. Nothing is decoded until asked for:
``read``/``iter_windows`` gather the 24-bit values of the requested span straight from the
memory-mapped files through strided numpy views (one view covers a whole run of equally spaced
blocks), so a capture of any size streams through bounded memory and no Python object is ever
made per sample or per block.

Conventions (documented in docs/analysis.md):

* Sample ``i`` of a channel is at ``start_ticks + i · 2^32 / fs`` (2^-32 s ticks since 1970 UTC);
  ``start_ticks`` is the header time of the channel's first block.
* Samples lost in a gap (an overrun) read as NaN (``fill``) so that positions stay true to time;
  every gap is listed in ``Channel.gaps`` and the Overrun flag in ``Channel.quality``.
* A block whose time is not on the grid (not a whole number of samples after the first) is
  placed at the nearest sample and counted in ``Channel.misaligned``.
* Blocks that overlap earlier ones (time going backwards) overwrite them in file order and are
  counted in ``Channel.overlap``.
"""

from __future__ import annotations

import contextlib
import mmap
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from webapp import runtime
from webapp.analysis.capture_errors import CaptureError
from webapp.analysis.capture_files import STREAM_FILE_NAME, CaptureFiles
from webapp.analysis.channels import build_channels
from webapp.analysis.index import FileIndex
from webapp.analysis.indexing import IndexPass
from webapp.analysis.model import CaptureModule, Channel, Problem, Segment, StreamFile, Window
from webapp.analysis.sample_decoding import SampleDecoding
from webapp.analysis.window_reads import WindowReads, range_in, span_of
from webapp.capture.labels import test_of, title_of

SCAN_WORKERS = 2
"""Files indexed at once: each waits mostly for the disk (reads release the GIL), and several
sequential streams in flight keep the disk busier than one."""
SCAN_CHUNK = 4 << 20
"""Read size of each concurrent index pass (the kernel's read-ahead streams the file anyway)."""


def scan_workers() -> int:
    """Threads that index files side by side; one under eventlet (see
    :func:`webapp.analysis.window_reads.decode_workers`)."""
    return 1 if runtime.eventlet_active() else SCAN_WORKERS


class Capture(SampleDecoding, WindowReads, CaptureFiles):
    """One capture: its files, modules and channels, and calibrated reads of any span.

    Opening is in :mod:`~webapp.analysis.capture_files`, decoding in
    :mod:`~webapp.analysis.sample_decoding`, windowed reads in :mod:`~webapp.analysis.window_reads`."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.meta: dict[str, Any] | None = None
        self._files: list[StreamFile] = []
        self._modules: dict[int, CaptureModule] = {}
        self._channels: list[Channel] = []
        self._problems: list[Problem] = []
        self._maps: dict[int, tuple[mmap.mmap, np.ndarray]] = {}
        self._by_key: dict[str, Channel] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._builds = 0
        """How many times the channels were built (more than once while indexing goes on)."""
        self._index: IndexPass | None = None
        """The index pass while it is still running (``open(..., background=True)``)."""
        self._open_problems: list[Problem] = []

    @classmethod
    def open(cls, source: str | Path | Sequence[str | Path], background: bool = False) -> Capture:
        """A capture folder, its capture.json, or one or more .stream files.

        Every file is indexed before this returns, unless ``background``: then it returns once
        every file's signals are announced, and the index pass goes on in background threads
        while ``iter_windows`` already delivers the first windows (one front-to-back pass over
        the disk, decoding overlapped with reading). Anything else asked of the capture first
        waits for the whole index. Without threads to spare (under eventlet) it makes no
        difference.
        """
        cap = cls()
        paths = [Path(source)] if isinstance(source, str | Path) else [Path(p) for p in source]
        if not paths:
            raise CaptureError("nothing to read: give a capture folder or .stream files")
        for p in paths:
            if not p.exists():
                raise CaptureError(f"{p} does not exist")
        if len(paths) == 1 and paths[0].is_dir():
            cap.folder = paths[0]
            cap._open_folder()
        elif len(paths) == 1 and paths[0].name == "capture.json":
            cap.folder = paths[0].parent
            cap._open_folder()
        else:
            cap._open_files(paths)
        cap._start_index(background)
        return cap

    def _start_index(self, background: bool) -> None:
        self._open_problems = list(self._problems)
        workers = scan_workers()
        self._index = IndexPass(
            [sf.path for sf in self._files], workers, SCAN_CHUNK, lockstep=background
        )
        try:
            if background and self._index.threaded:
                self._index.wait_started()
                self._build_channels(self._index.snapshots())
            else:
                self._complete()
        except BaseException:
            self._index.cancel()
            raise

    def _complete(self) -> None:
        """Wait for the index pass if it is still running, and build the final channels."""
        index, self._index = self._index, None
        if index is not None:
            self._build_channels(index.finish())

    @property
    def indexed(self) -> bool:
        """Whether every file is indexed (always, unless opened with ``background``)."""
        return self._index is None

    @property
    def channels(self) -> list[Channel]:
        self._complete()
        return self._channels

    @property
    def problems(self) -> list[Problem]:
        self._complete()
        return self._problems

    @property
    def files(self) -> list[StreamFile]:
        self._complete()
        return self._files

    @property
    def modules(self) -> dict[int, CaptureModule]:
        self._complete()
        return self._modules

    @property
    def name(self) -> str:
        if self.meta and self.meta.get("name"):
            return str(self.meta["name"])
        if self._files:
            match = STREAM_FILE_NAME.match(self._files[0].path.name)
            return match.group("name") if match else self._files[0].path.stem
        return "capture"

    @property
    def title(self) -> str:
        """The name History shows (capture.json ``title``; the recorded name when not set)."""
        return title_of(self.meta, self.name)

    @property
    def test(self) -> dict[str, Any]:
        """Test metadata (object, operator, notes, tags; empty when capture.json has none)."""
        return test_of(self.meta)

    @property
    def id(self) -> str:
        if self.meta and self.meta.get("id"):
            return str(self.meta["id"])
        return self.folder.name if self.folder else self.name

    # --- channels -----------------------------------------------------------------------

    def _build_channels(self, indexes: list[FileIndex]) -> None:
        """Channels from the files' indexes: complete ones, or (while the index pass runs)
        what is indexed so far; built afresh each time."""
        self._builds += 1
        for sf, idx in zip(self._files, indexes, strict=True):
            sf.index = idx
        self._channels, problems = build_channels(self._files, self.meta)
        self._problems = self._open_problems + problems
        for mod in self._modules.values():
            mod.channels = [c.key for c in self._channels if c.module == mod.number]
        self._by_key = {c.key: c for c in self._channels}

    # --- access -------------------------------------------------------------------------

    def channel(self, key: str) -> Channel:
        self._complete()
        return self._channel(key)

    def _channel(self, key: str) -> Channel:
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"no channel {key!r}; channels: {', '.join(self._by_key)}") from None

    @property
    def start_ticks(self) -> int:
        """The capture's reference instant: capture.json's start_ticks, else the first sample."""
        if self.meta and isinstance(self.meta.get("start_ticks"), int):
            return int(self.meta["start_ticks"])
        starts = [c.start_ticks for c in self.channels if c.length]
        return min(starts) if starts else 0

    def span(self, trim: bool = False, keys: Iterable[str] | None = None) -> tuple[int, int]:
        """(start, end) ticks: all samples of the channels, or (trim) their common span."""
        self._complete()
        chans = [self._channel(k) for k in keys] if keys is not None else self._channels
        return span_of(chans, trim, self.start_ticks)

    def range_of(self, key: str, start_ticks: int, end_ticks: int) -> tuple[int, int]:
        """Sample indices [i0, i1) of a channel inside [start, end), clipped to the channel."""
        return range_in(self.channel(key), start_ticks, end_ticks)

    def read(
        self,
        key: str | Channel,
        start: int = 0,
        stop: int | None = None,
        dtype: Any = np.float64,
        fill: float = np.nan,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Calibrated samples [start, stop) of a channel; indices outside it and gaps -> fill.

        ``key`` may be a Channel itself (as a read while indexing in the background has it)."""
        ch = self.channel(key) if isinstance(key, str) else key
        stop = ch.length if stop is None else stop
        n = max(0, stop - start)
        if out is None:
            out = np.empty(n, dtype=dtype)
        elif len(out) != n:
            raise ValueError(f"out holds {len(out)} values, the span {n}")
        if not n:
            return out
        if not ch.ordered:
            out.fill(fill)
        filled = start
        for seg in self._segments_in(ch, start, stop):
            s0 = max(start, seg.pos)
            s1 = min(stop, seg.end)
            if ch.ordered and s0 > filled:
                out[filled - start : s0 - start] = fill
            self._decode(seg, s0 - seg.pos, s1 - seg.pos, out[s0 - start : s1 - start])
            filled = max(filled, s1)
        if ch.ordered and filled < stop:
            out[filled - start :] = fill
        return out

    def iter_channel(
        self,
        key: str,
        chunk: int = 1 << 20,
        start: int = 0,
        stop: int | None = None,
        dtype: Any = np.float64,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(first index, values) chunks of one channel; each array is new (safe to keep)."""
        ch = self.channel(key)
        stop = ch.length if stop is None else stop
        for a in range(start, stop, chunk):
            yield a, self.read(key, a, min(stop, a + chunk), dtype)

    def arrays(
        self, trim: bool = False, dtype: Any = np.float64, keys: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Whole channels in memory (small captures): key -> values over the span."""
        keys = list(keys) if keys is not None else [c.key for c in self.channels]
        t0, t1 = self.span(trim, keys)
        out = {}
        for key in keys:
            i0, i1 = self.range_of(key, t0, t1)
            out[key] = self.read(key, i0, i1, dtype)
        return out

    def close(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            index.cancel()
        maps, self._maps = self._maps, {}
        while maps:
            _fnum, (mm, view) = maps.popitem()
            del view
            # An array still using the mapping keeps it alive; it goes with that array.
            with contextlib.suppress(BufferError):
                mm.close()

    def __del__(self) -> None:
        # Dropped without close while indexing in the background: the threads, which may be
        # waiting for a reader that is gone, must end.
        index = getattr(self, "_index", None)
        if index is not None:
            index.stop()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "Capture",
    "CaptureModule",
    "Channel",
    "Problem",
    "Segment",
    "StreamFile",
    "Window",
]
