"""What every export format shares: the selection (channels and span), the result, the error,
blocks aligned on one sample grid (WAV, CSV), the in-memory limit (MAT, UFF) and the capture,
sync and channel attributes written next to the data."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from webapp.analysis.integrity import sync_report
from webapp.analysis.model import TICKS_PER_SECOND, Channel, iso_time
from webapp.analysis.quality import describe_span
from webapp.analysis.reader import Capture
from webapp.capture.labels import dof
from webapp.openapi import units

CHUNK = 1 << 18


Progress = Callable[[float], None]


class ExportError(ValueError):
    """The export cannot be made as asked (too large for the format, mixed rates, ...)."""


@dataclass
class ExportResult:
    paths: list[Path] = field(default_factory=list)
    samples: int = 0
    filled: int = 0
    """Samples written in place of missing ones (gaps, or channels shorter than the file)."""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"wrote {p}" for p in self.paths]
        lines.append(f"{self.samples:,} samples")
        if self.filled:
            lines.append(f"{self.filled:,} samples stand in for missing data (see the report)")
        lines.extend(self.notes)
        return "\n".join(lines)


@dataclass
class Selection:
    """What to export: channels and the span (in ticks) they are cut to."""

    keys: list[str]
    start: int
    end: int
    trim: bool

    def range(self, cap: Capture, key: str) -> tuple[int, int]:
        return cap.range_of(key, self.start, self.end)


def grid(cap: Capture, keys: Sequence[str], what: str) -> tuple[int, int]:
    """(ticks per sample, offset) shared by channels written side by side, or an error."""
    chans = [cap.channel(k) for k in keys]
    rates = {c.sample_rate for c in chans}
    if len(rates) > 1:
        raise ExportError(
            f"{what} needs one sample rate, these channels have {sorted(rates)}: "
            "export them separately (--channels) or use hdf5"
        )
    tps = chans[0].ticks_per_sample
    phases = {c.start_ticks % tps for c in chans}
    if len(phases) > 1:
        raise ExportError(f"{what} needs channels on one sample grid; these are not")
    return tps, phases.pop()


def aligned_blocks(
    cap: Capture, sel: Selection, keys: Sequence[str], dtype: Any, chunk: int = CHUNK
) -> Iterator[tuple[int, np.ndarray, int]]:
    """(first frame, frames × channels block, samples filled) over the selection."""
    tps, phase = grid(cap, keys, "writing channels side by side")
    t0 = sel.start + (phase - sel.start) % tps  # first instant on the channels' grid
    frames = -(-(sel.end - t0) // tps)
    chans = [cap.channel(k) for k in keys]
    offsets = [(c.start_ticks - t0) // tps for c in chans]
    limits = [sel.range(cap, c.key) for c in chans]
    for f0 in range(0, frames, chunk):
        f1 = min(frames, f0 + chunk)
        block = np.empty((f1 - f0, len(chans)), dtype=dtype)
        filled = 0
        for j, (c, off, (lo, hi)) in enumerate(zip(chans, offsets, limits, strict=True)):
            a, b = f0 - off, f1 - off
            col = cap.read(c.key, a, b, dtype)
            # Outside the selection (a channel that starts late or ends early) is missing too.
            if a < lo:
                col[: min(lo - a, len(col))] = np.nan
            if b > hi:
                col[max(0, hi - a) :] = np.nan
            filled += int(np.count_nonzero(np.isnan(col)))
            block[:, j] = col
        yield f0, block, filled
        cap.release(keys, t0 + f1 * tps)


IN_MEMORY_MAX_BYTES = 2 << 30
"""MAT and UFF writers hold whole channels (as float64) in memory; the v5 MAT format also
cannot hold a variable larger than 2 GiB."""


def check_in_memory(cap: Capture, sel: Selection, fmt: str) -> None:
    total = 0
    for key in sel.keys:
        lo, hi = sel.range(cap, key)
        if (hi - lo) * 8 > IN_MEMORY_MAX_BYTES:
            raise ExportError(
                f"{key} has {hi - lo:,} samples: too large for {fmt} "
                f"(at most {IN_MEMORY_MAX_BYTES // 8:,} per channel); use hdf5, or cut a span "
                "with --start/--duration"
            )
        total += (hi - lo) * 8
    if total > 2 * IN_MEMORY_MAX_BYTES:
        raise ExportError(
            f"{total / 1e9:.1f} GB of samples: too large for {fmt}; use hdf5, or export fewer "
            "channels (--channels) or a shorter span (--start/--duration)"
        )


def channel_attrs(cap: Capture, ch: Channel, lo: int, ref: int) -> dict[str, Any]:
    start = ch.start_ticks + lo * ch.ticks_per_sample
    mod = cap.modules.get(ch.module)
    transducer = ch.transducer or {}
    ttype = transducer.get("type") if isinstance(transducer.get("type"), dict) else {}
    attrs: dict[str, Any] = {
        "unit": ch.unit,
        "sample_rate": ch.sample_rate,
        "start_time": iso_time(start),
        "start_ticks": np.uint64(start),
        "start_offset_s": (start - ref) / TICKS_PER_SECOND,
        "module": ch.module,
        "channel": ch.channel,
        "signal_id": ch.signal_id,
        "name": ch.name,
        "scale_factor": ch.scale_factor,
        "offset": ch.offset,
        "range": ch.range,
        "transducer": json.dumps(transducer),
        "transducer_type": str((ttype or {}).get("number", "None")),
        "transducer_serial": int(transducer.get("serialNumber", 0) or 0),
        "transducer_sensitivity": float(transducer.get("sensitivity", 1.0) or 1.0),
        "transducer_unit": str(transducer.get("unit", ch.unit)),
        **{k: ch.labels.get(k, "") for k in ("point", "direction", "group", "note")},
        "dof": dof(ch.labels),
    }
    ref = units.reference(ch.unit)
    attrs.update(
        {
            "quantity": ref.quantity,
            "db_reference": ref.value,
            "db_reference_label": ref.db_label,
            "full_scale": units.full_scale_of(ch.scale_factor) if ch.scale_factor else 0.0,
        }
    )
    if mod is not None:
        attrs.update(
            {
                "module_name": mod.name,
                "module_type": mod.type,
                "module_serial": mod.serial,
                "module_address": mod.address,
                "module_role": mod.role,
            }
        )
    return attrs


def sync_attrs(cap: Capture) -> dict[str, Any]:
    """What an export says about sync: the report's verdict, its sentence and the spans in
    which a module was not locked onto PTP (JSON: module, from_s, to_s, from, to, status)."""
    sync = sync_report(cap)
    spans = sync.get("ptp_unlocked") or []
    return {
        "sample_synchronous": bool(sync.get("sample_synchronous")),
        "sync_statement": str(sync.get("statement", "")),
        "ptp_unlocked": json.dumps(spans),
        "ptp_unlocked_text": "; ".join(describe_span(span) for span in spans) or "none",
    }


def test_attrs(cap: Capture) -> dict[str, Any]:
    """The capture's title and test metadata as export attributes (tags as a JSON list here;
    MAT also has them as a cell array)."""
    test = cap.test
    return {
        "title": cap.title,
        "test_object": test["object"],
        "test_operator": test["operator"],
        "test_notes": test["notes"],
        "test_tags": json.dumps(test["tags"], ensure_ascii=False),
    }


def safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._- " else "_" for c in name).strip()
    return keep or "capture"
