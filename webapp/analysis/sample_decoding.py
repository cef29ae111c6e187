"""Decoding calibrated samples straight from the memory-mapped stream files: strided numpy views
over runs of equally spaced blocks, a per-thread scratch buffer, and the release of file pages
already read. A base class of :class:`webapp.analysis.reader.Capture`."""

from __future__ import annotations

import mmap
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from webapp.analysis.indexing import IndexPass
from webapp.analysis.model import Channel, Segment, StreamFile

BATCH_ROWS = 64
"""Blocks decoded per numpy call: 64 × 4096 int32 (1 MiB) stay in the CPU cache between passes."""


class SampleDecoding:
    """Decoding steps of :class:`~webapp.analysis.reader.Capture` (which holds the state declared
    here)."""

    _files: list[StreamFile]
    _maps: dict[int, tuple[mmap.mmap, np.ndarray]]
    _local: threading.local
    _lock: threading.Lock
    _index: IndexPass | None

    def channel(self, key: str) -> Channel:
        raise NotImplementedError

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
