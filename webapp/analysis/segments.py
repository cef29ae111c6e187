"""A run of segments (consecutive captures cut from one monitored measurement, linked through
``window.segment`` in their capture.json) read as one span.

Segments share their edges to the sample, so sample ``i`` of the span is sample
``i - offset_k`` of segment ``k``; :class:`SegmentRun` checks that every channel's segments do
follow each other without a gap or an overlap and says where they do not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from webapp.analysis.reader import Capture


def segment_run(folder: Path) -> list[Path]:
    """The capture folders of the run ``folder`` belongs to, first to last, following
    ``window.segment.previous`` and ``next`` (segments are folders beside each other)."""

    def link(f: Path, key: str) -> Path | None:
        try:
            meta = json.loads((f / "capture.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        segment = (meta.get("window") or {}).get("segment") or {}
        other = segment.get(key)
        return f.parent / str(other) if other and (f.parent / str(other)).is_dir() else None

    run = [Path(folder)]
    while (before := link(run[0], "previous")) is not None and before not in run:
        run.insert(0, before)
    while (after := link(run[-1], "next")) is not None and after not in run:
        run.append(after)
    return run


class SegmentRun:
    """Every segment of a run, opened; channels by the first segment's keys."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self.parts: list[Capture] = []
        try:
            for f in folders:
                self.parts.append(Capture.open(f))
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, folder: str | Path) -> SegmentRun:
        return cls(segment_run(Path(folder)))

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.parts[0].channels] if self.parts else []

    def length(self, key: str) -> int:
        return sum(p.channel(key).length for p in self.parts)

    def start_ticks(self, key: str) -> int:
        return self.parts[0].channel(key).start_ticks

    def discontinuities(self) -> list[str]:
        """Where a channel's next segment does not start at the sample after its last one."""
        out = []
        for key in self.keys:
            for a, b in zip(self.parts, self.parts[1:], strict=False):
                ca, cb = a.channel(key), b.channel(key)
                if cb.start_ticks != ca.end_ticks:
                    delta = (cb.start_ticks - ca.end_ticks) / ca.ticks_per_sample
                    what = "gap" if delta > 0 else "overlap"
                    out.append(f"{key}: {what} of {abs(delta):g} samples between {a.id} and {b.id}")
        return out

    def read(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Calibrated samples [start, stop) of the span (see :meth:`Capture.read`)."""
        total = self.length(key)
        stop = total if stop is None else min(stop, total)
        pieces: list[np.ndarray] = []
        offset = 0
        for p in self.parts:
            n = p.channel(key).length
            lo, hi = max(start - offset, 0), min(stop - offset, n)
            if hi > lo:
                pieces.append(p.read(key, lo, hi))
            offset += n
        return np.concatenate(pieces) if pieces else np.empty(0)

    def describe(self) -> dict[str, Any]:
        return {
            "segments": [p.id for p in self.parts],
            "channels": {k: self.length(k) for k in self.keys},
            "discontinuities": self.discontinuities(),
        }

    def close(self) -> None:
        for p in self.parts:
            p.close()

    def __enter__(self) -> SegmentRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
