"""Calibrated signals of a capture in the formats other tools read.

| format | library | layout | memory |
|---|---|---|---|
| ``wav``  | soundfile | float32, one file per module (its channels interleaved) or per channel; RF64 past 4 GiB | streamed |
| ``hdf5`` | h5py      | ``/module<n>/channel<c>`` float32 datasets with unit, sample rate, start time, transducer and module attributes; ``channel<c>_quality`` and ``channel<c>_gaps`` datasets | streamed |
| ``mat``  | scipy.io  | one struct per channel (``m<n>_ch<c>``: data, fs, unit, start time, ...) and ``capture`` | in memory, bounded |
| ``csv``  | stdlib    | time column plus one column per channel; gaps are empty cells | short captures only |
| ``uff``  | pyuff     | one binary dataset 58 (function type 1, time response) per channel | in memory, bounded |

Samples lost in gaps are NaN in HDF5 and MAT, empty in CSV, 0 in WAV (audio tools do not
expect NaN) and 0 in UFF (pyuff writes NaN as 0); every export says how many such samples it
wrote, and HDF5/MAT also list the gaps. With ``trim`` every channel is
cut to the span all channels share; without it, WAV and CSV files still span the whole capture
(missing ends padded), so frame *i* is the same instant in every file of one export.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from webapp.analysis.export_common import (
    ExportError,
    ExportResult,
    Progress,
    Selection,
    check_in_memory,
    safe_name,
)
from webapp.analysis.export_csv import check_csv, write_csv
from webapp.analysis.export_hdf5 import write_hdf5
from webapp.analysis.export_mat import write_mat
from webapp.analysis.export_uff import check_uff, write_uff
from webapp.analysis.export_wav import check_wav, write_wav
from webapp.analysis.model import TICKS_PER_SECOND
from webapp.analysis.reader import Capture

FORMATS = ("wav", "hdf5", "mat", "csv", "uff")
EXTENSIONS = {"wav": ".wav", "hdf5": ".h5", "mat": ".mat", "csv": ".csv", "uff": ".uff"}


def select(
    cap: Capture,
    keys: Sequence[str] | None = None,
    trim: bool = False,
    start_s: float | None = None,
    duration_s: float | None = None,
) -> Selection:
    """Channels and span of an export; ``start_s`` counts from the capture's start."""
    keys = list(keys) if keys else [c.key for c in cap.channels if c.length]
    for key in keys:
        cap.channel(key)
    if not keys:
        raise ExportError("the capture has no samples to export")
    # Trimming always means the span every channel of the capture shares, so that exports of
    # different channel subsets line up.
    t0, t1 = cap.span(trim=True) if trim else cap.span(keys=keys)
    if start_s is not None:
        t0 = max(t0, cap.start_ticks + round(start_s * TICKS_PER_SECOND))
    if duration_s is not None:
        t1 = min(t1, t0 + round(duration_s * TICKS_PER_SECOND))
    if t1 <= t0:
        raise ExportError("the selected span holds no samples")
    return Selection(keys, t0, t1, trim)


def check(cap: Capture, sel: Selection, fmt: str, per: str = "module") -> None:
    """Raise ExportError now for an export the format cannot hold (before writing anything)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "wav":
        check_wav(cap, sel, per)
    elif fmt == "csv":
        check_csv(cap, sel)
    elif fmt == "mat":
        check_in_memory(cap, sel, "MAT")
    elif fmt == "uff":
        check_uff(cap, sel)


def export(
    cap: Capture,
    fmt: str,
    out: str | Path | None = None,
    *,
    keys: Sequence[str] | None = None,
    trim: bool = False,
    start_s: float | None = None,
    duration_s: float | None = None,
    per: str = "module",
    progress: Progress | None = None,
) -> ExportResult:
    """Write the capture in ``fmt``; ``out`` is a file or a folder (default: the current one)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    sel = select(cap, keys, trim, start_s, duration_s)
    check(cap, sel, fmt, per)
    target = Path(out) if out is not None else Path.cwd()
    if fmt == "wav":
        return write_wav(cap, sel, target, per, progress)
    path = target
    if target.is_dir() or (out is None) or not target.suffix:
        path = target / f"{safe_name(cap.name)}{EXTENSIONS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = {"hdf5": write_hdf5, "mat": write_mat, "csv": write_csv, "uff": write_uff}[fmt]
    return writer(cap, sel, path, progress)


# --- aligned blocks (WAV, CSV) ----------------------------------------------------------------


# --- WAV --------------------------------------------------------------------------------------


# --- HDF5 -------------------------------------------------------------------------------------


# --- MAT --------------------------------------------------------------------------------------


# --- CSV --------------------------------------------------------------------------------------


# --- UFF 58 -----------------------------------------------------------------------------------

# UFF specific data types and unit exponents (length, force, temperature) of common units.


def estimate_bytes(cap: Capture, sel: Selection, fmt: str) -> int:
    """Rough output size, for a user interface to warn before starting."""
    samples = sum(max(0, hi - lo) for lo, hi in (sel.range(cap, k) for k in sel.keys))
    per = {"wav": 4, "hdf5": 4, "mat": 8, "csv": 14, "uff": 8}[fmt]
    return int(math.ceil(samples * per))
