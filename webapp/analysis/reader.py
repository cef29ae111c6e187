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
import json
import mmap
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from webapp import runtime
from webapp.analysis.channels import build_channels
from webapp.analysis.index import FileIndex
from webapp.analysis.indexing import IndexPass
from webapp.analysis.model import (
    CaptureModule,
    Channel,
    Problem,
    Segment,
    StreamFile,
    Window,
)
from webapp.capture.labels import test_of, title_of
from webapp.capture.writer import read_as_interrupted

BATCH_ROWS = 64
"""Blocks decoded per numpy call: 64 × 4096 int32 (1 MiB) stay in the CPU cache between passes."""


SCAN_WORKERS = 2
"""Files indexed at once: each waits mostly for the disk (reads release the GIL), and several
sequential streams in flight keep the disk busier than one."""
SCAN_CHUNK = 4 << 20
"""Read size of each concurrent index pass (the kernel's read-ahead streams the file anyway)."""


def decode_workers() -> int:
    """Threads that decode a window's channels side by side (numpy's shifts and products run
    without the GIL). One under eventlet, whose monkey-patched threads would be green and run
    one after another on the hub's OS thread."""
    if runtime.eventlet_active():
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def scan_workers() -> int:
    """Threads that index files side by side; one under eventlet (see ``decode_workers``)."""
    return 1 if runtime.eventlet_active() else SCAN_WORKERS


_FILE_NAME = re.compile(r"^(?P<name>.*)\.(?P<module>\d+)(?:\.ch(?P<channel>\d+))?\.stream$")


class CaptureError(ValueError):
    """The input is not a capture the reader can open (nothing to read, bad capture.json)."""


class Capture:
    """One capture: its files, modules and channels, and calibrated reads of any span."""

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

    # --- opening ------------------------------------------------------------------------

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
            match = _FILE_NAME.match(self._files[0].path.name)
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

    def _load_meta(self, folder: Path) -> dict[str, Any] | None:
        path = folder / "capture.json"
        if not path.exists():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self._problems.append(Problem("error", "capture.json", f"unreadable: {exc}"))
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("modules", []), list):
            self._problems.append(Problem("error", "capture.json", "not a capture description"))
            return None
        return read_as_interrupted(meta, folder)

    def _open_folder(self) -> None:
        assert self.folder is not None
        self.meta = self._load_meta(self.folder)
        if self.meta is None:
            streams = sorted(self.folder.glob("*.stream"))
            if not streams:
                raise CaptureError(f"{self.folder} holds neither capture.json nor .stream files")
            self._problems.append(
                Problem("warning", "capture.json", "missing: modules and channels are inferred")
            )
            self._add_loose_files(streams)
            return
        listed: set[Path] = set()
        for mod in self.meta.get("modules", []):
            number = int(mod.get("number", len(self._modules) + 1))
            self._modules[number] = _module_from_json(number, mod)
            for entry in mod.get("files", []):
                path = self.folder / str(entry.get("file", ""))
                listed.add(path.resolve())
                if not path.is_file():
                    self._problems.append(
                        Problem("error", path.name, f"listed for module {number} but missing")
                    )
                    continue
                self._files.append(self._listed_file(path, number, entry))
        unlisted = [p for p in sorted(self.folder.glob("*.stream")) if p.resolve() not in listed]
        for path in unlisted:
            # An interrupted capture may have files capture.json never named: read them too.
            self._problems.append(
                Problem("warning", path.name, "in the folder but not in capture.json; read")
            )
        self._add_loose_files(unlisted)
        if not self._files and not self._problems:
            raise CaptureError(f"{self.folder}/capture.json lists no stream files")

    def _open_files(self, paths: list[Path]) -> None:
        folders = {p.resolve().parent for p in paths}
        meta = self._load_meta(next(iter(folders))) if len(folders) == 1 else None
        wanted = {p.resolve() for p in paths}
        if meta is not None:
            self.folder = next(iter(folders))
            self.meta = meta
            for mod in meta.get("modules", []):
                number = int(mod.get("number", len(self._modules) + 1))
                entries = [
                    e
                    for e in mod.get("files", [])
                    if (self.folder / str(e.get("file", ""))).resolve() in wanted
                ]
                if not entries:
                    continue
                self._modules[number] = _module_from_json(number, mod)
                for entry in entries:
                    path = self.folder / str(entry["file"])
                    wanted.discard(path.resolve())
                    self._files.append(self._listed_file(path, number, entry))
        rest = [p for p in paths if p.resolve() in wanted]
        if rest:
            if meta is None:
                self._problems.append(
                    Problem("info", "capture.json", "not found: modules and channels are inferred")
                )
            self._add_loose_files(rest)

    def _add_loose_files(self, paths: list[Path]) -> None:
        next_number = max(self._modules, default=0) + 1
        for path in paths:
            if path.is_dir():
                raise CaptureError(f"{path} is a folder; give one capture folder or .stream files")
            match = _FILE_NAME.match(path.name)
            if match:
                number = int(match.group("module"))
                channels = [int(match.group("channel"))] if match.group("channel") else None
            else:
                number, channels = next_number, None
            next_number = max(next_number, number + 1)
            self._modules.setdefault(number, CaptureModule(number, name=f"module {number}"))
            self._files.append(self._stream_file(path, number, channels))

    def _listed_file(self, path: Path, module: int, entry: dict[str, Any]) -> StreamFile:
        """A stream file as capture.json lists it (channels, size, checksum)."""
        channels = entry.get("channels")
        return self._stream_file(
            path,
            module,
            [int(c) for c in channels] if channels else None,
            _int_or_none(entry.get("bytes")),
            entry.get("sha256") or None,
        )

    def _stream_file(
        self,
        path: Path,
        module: int,
        channels: list[int] | None,
        expected_bytes: int | None = None,
        expected_sha256: str | None = None,
    ) -> StreamFile:
        """A stream file, its index to come (``_build_channels``)."""
        return StreamFile(
            path, module, channels, FileIndex(path, 0), expected_bytes, expected_sha256
        )

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
        return _span(chans, trim, self.start_ticks)

    def range_of(self, key: str, start_ticks: int, end_ticks: int) -> tuple[int, int]:
        """Sample indices [i0, i1) of a channel inside [start, end), clipped to the channel."""
        return _range_of(self.channel(key), start_ticks, end_ticks)

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
                    i0, i1 = _range_of(ch, max(a, lo), b)
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
        t0, t1 = _span(chans, trim, self.start_ticks if self.indexed else 0)
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

    # --- decoding -----------------------------------------------------------------------

    def _segments_in(self, ch: Channel, start: int, stop: int) -> Iterator[Segment]:
        segs = ch.segments
        if ch.ordered:
            ends = _segment_ends(ch)
            first = int(np.searchsorted(ends, start, side="right"))
            for seg in segs[first:]:
                if seg.pos >= stop:
                    break
                yield seg
        else:
            for seg in segs:
                if seg.pos < stop and seg.end > start:
                    yield seg

    def _scratch(self, size: int) -> np.ndarray:
        """A per-thread int32 work buffer, reused so decoding allocates nothing per call."""
        buf = getattr(self._local, "scratch", None)
        if buf is None or len(buf) < size:
            buf = np.empty(max(size, BATCH_ROWS * 4096), dtype=np.int32)
            self._local.scratch = buf
        return buf[:size]

    def _bytes(self, fnum: int) -> np.ndarray:
        entry = self._maps.get(fnum)
        if entry is None:
            with self._lock:
                entry = self._maps.get(fnum)
                if entry is None:
                    with open(self._files[fnum].path, "rb") as f:
                        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    entry = (mm, np.frombuffer(mm, dtype=np.uint8))
                    self._maps[fnum] = entry
        return entry[1]

    def _decode(self, seg: Segment, s0: int, s1: int, out: np.ndarray) -> None:
        """Samples [s0, s1) of a segment (relative to its first sample) into ``out``."""
        buf = self._bytes(seg.file)
        n = seg.count
        r = s0 // n
        r_end = -(-s1 // n)
        tmp = self._scratch(min(BATCH_ROWS, r_end - r) * n)
        single = out.dtype == np.float32
        factor = np.float32(seg.factor) if single else seg.factor
        while r < r_end:
            rb = min(r_end, r + BATCH_ROWS)
            rows = rb - r
            # Each value is read as the little-endian int32 that ends with its three bytes; the
            # byte before it (the previous value's top byte, or the block header) lands in the
            # low byte and the arithmetic shift drops it while sign-extending.
            words = np.ndarray(
                (rows, n),
                dtype="<i4",
                buffer=buf,
                offset=seg.voff + r * seg.stride - 1,
                strides=(seg.stride, 3),
            )
            ints = tmp[: rows * n].reshape(rows, n)
            np.right_shift(words, 8, out=ints)
            lo = max(s0, r * n) - r * n
            hi = min(s1, rb * n) - r * n
            dst = out[max(s0, r * n) - s0 : min(s1, rb * n) - s0]
            if single:
                # float32 output: the int24 value is exact in float32; one float32 product.
                dst[:] = ints.reshape(-1)[lo:hi]
                dst *= factor
            else:
                np.multiply(ints.reshape(-1)[lo:hi], factor, out=dst, casting="unsafe")
            if seg.offset:
                dst += seg.offset
            r = rb

    def release(self, keys: Iterable[str], before_ticks: int) -> None:
        """Unmap the file pages every one of these channels has been read past.

        A front-to-back pass calls this after each window so the process's resident memory stays
        bounded however large the files are (the pages stay in the kernel's cache)."""
        self._release([self.channel(k) for k in keys], before_ticks)

    def _release(self, chans: Iterable[Channel], before_ticks: int) -> None:
        upto: dict[int, int] = {}
        for ch in chans:
            pos = max(0, min(ch.length, ch.index_at(before_ticks)))
            off = _byte_offset(ch, pos)
            upto[ch.file] = min(upto.get(ch.file, off), off)
        for fnum, off in upto.items():
            if self._index is not None:
                self._index.consumed(fnum, off)
            entry = self._maps.get(fnum)
            if entry is None or not hasattr(mmap, "MADV_DONTNEED"):
                continue
            length = (off // mmap.PAGESIZE) * mmap.PAGESIZE
            if length > 0:
                entry[0].madvise(mmap.MADV_DONTNEED, 0, length)


class StreamingReadError(CaptureError):
    """A front-to-back read begun while the index was still running (``open(...,
    background=True)``) delivered windows that the complete index contradicts."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"{why}: windows already delivered would differ; open the capture without "
            "background indexing to read it"
        )


@dataclass
class _Delivered:
    """What a front-to-back read fixed when it began (checked as the index grows)."""

    keys: list[str]
    starts: dict[str, int]
    start: int
    everything: bool


def _span(chans: Iterable[Channel], trim: bool, default: int) -> tuple[int, int]:
    chans = [c for c in chans if c.length]
    if not chans:
        return (default, default)
    if trim:
        start = max(c.start_ticks for c in chans)
        end = min(c.end_ticks for c in chans)
        return (start, max(start, end))
    return (min(c.start_ticks for c in chans), max(c.end_ticks for c in chans))


def _range_of(ch: Channel, start_ticks: int, end_ticks: int) -> tuple[int, int]:
    i0 = min(max(ch.index_at(start_ticks), 0), ch.length)
    i1 = min(max(ch.index_at(end_ticks), i0), ch.length)
    return i0, i1


def _segment_ends(ch: Channel) -> np.ndarray:
    if len(ch.ends) != len(ch.segments):
        ch.ends = np.array([s.end for s in ch.segments], dtype=np.int64)
    return ch.ends


def _byte_offset(ch: Channel, pos: int) -> int:
    """File offset of the first byte a read from sample ``pos`` on would touch."""
    if not ch.segments:
        return 0
    if ch.ordered:
        i = int(np.searchsorted(_segment_ends(ch), pos, side="right"))
        if i >= len(ch.segments):
            seg = ch.segments[-1]
            return seg.voff + seg.rows * seg.stride
        seg = ch.segments[i]
        row = max(0, pos - seg.pos) // seg.count
        return max(0, seg.voff + row * seg.stride - 1)
    return min(s.voff for s in ch.segments) - 1


def _module_from_json(number: int, mod: dict[str, Any]) -> CaptureModule:
    return CaptureModule(
        number=number,
        name=str(mod.get("name", f"module {number}")),
        type=str(mod.get("type", "")),
        serial=int(mod.get("serial", 0) or 0),
        address=str(mod.get("address", "")),
        role=str(mod.get("role", "")),
        firmware=str(mod.get("firmware", "")),
        hardware=str(mod.get("hardware", "")),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


__all__ = [
    "Capture",
    "CaptureError",
    "CaptureModule",
    "Channel",
    "Problem",
    "Segment",
    "StreamFile",
    "StreamingReadError",
    "Window",
]
