"""CSV export (stdlib): a time column and one column per channel, gaps as empty cells; short
captures only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from webapp.analysis.export_common import (
    ExportError,
    ExportResult,
    Progress,
    Selection,
    aligned_blocks,
    grid,
    sync_attrs,
)
from webapp.analysis.model import TICKS_PER_SECOND, iso_time
from webapp.analysis.reader import Capture

CSV_MAX_VALUES = 10_000_000
"""CSV is for short captures: beyond this, text files are slower to write than to be useful."""


def check_csv(cap: Capture, sel: Selection) -> None:
    """ExportError when the selection is too long for a CSV file, or not on one sample grid."""
    tps, phase = grid(cap, sel.keys, "CSV")
    t0 = sel.start + (phase - sel.start) % tps
    values = -(-(sel.end - t0) // tps) * (len(sel.keys) + 1)
    if values > CSV_MAX_VALUES:
        raise ExportError(
            f"CSV is for short captures: this selection has {values:,} values "
            f"(limit {CSV_MAX_VALUES:,}). Use --format hdf5 or wav, or cut a span with "
            "--start/--duration or fewer channels with --channels"
        )


def write_csv(
    cap: Capture, sel: Selection, path: Path, progress: Progress | None = None
) -> ExportResult:
    check_csv(cap, sel)
    tps, phase = grid(cap, sel.keys, "CSV")
    t0 = sel.start + (phase - sel.start) % tps
    frames = -(-(sel.end - t0) // tps)
    result = ExportResult()
    ref = cap.start_ticks
    heads = ["time_s"] + [
        f"{k} [{cap.channel(k).unit}]" if cap.channel(k).unit else k for k in sel.keys
    ]
    with open(path, "w", encoding="utf-8", newline="") as f:
        sync = sync_attrs(cap)["sync_statement"]
        f.write(f"# capture {cap.id}, time 0 = {iso_time(ref)}, sync: {sync}\n")
        f.write(",".join(heads) + "\n")
        for f0, block, filled in aligned_blocks(cap, sel, sel.keys, np.float64):
            times = (t0 - ref + (f0 + np.arange(len(block))) * tps) / TICKS_PER_SECOND
            text = np.char.mod("%.9g", block)
            text[np.isnan(block)] = ""
            tcol = np.char.mod("%.9f", times)
            f.write("".join(f"{t},{','.join(row)}\n" for t, row in zip(tcol, text, strict=True)))
            result.filled += filled
            result.samples += block.size
            if progress:
                progress((f0 + len(block)) / max(frames, 1))
    result.paths.append(path)
    return result
