"""HDF5 export (h5py): ``/module<n>/channel<c>`` float32 datasets with their attributes, and
``channel<c>_quality`` and ``channel<c>_gaps`` datasets; streamed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from webapp.analysis.export_common import (
    CHUNK,
    ExportResult,
    Progress,
    Selection,
    channel_attrs,
    sync_attrs,
    test_attrs,
)
from webapp.analysis.model import TICKS_PER_SECOND, Channel, iso_time
from webapp.analysis.reader import Capture

QUALITY_DTYPE = np.dtype(
    [
        ("sample", "<i8"),
        ("time_s", "<f8"),
        ("validity", "<u2"),
        ("overload", "?"),
        ("invalid", "?"),
        ("overrun", "?"),
    ]
)


GAP_DTYPE = np.dtype([("sample", "<i8"), ("time_s", "<f8"), ("missing", "<i8")])


def write_hdf5(
    cap: Capture, sel: Selection, path: Path, progress: Progress | None = None
) -> ExportResult:
    import h5py

    result = ExportResult()
    ref = cap.start_ticks
    datasets = {}
    with h5py.File(path, "w") as h5:
        h5.attrs.update(
            {
                "capture_id": cap.id,
                "name": cap.name,
                "start_ticks": np.uint64(ref),
                "start_time": iso_time(ref),
                "selection_start_time": iso_time(sel.start),
                "selection_end_time": iso_time(sel.end),
                "trimmed": sel.trim,
                "layout": "module<n>/channel<c>: float32 values in the channel's unit; NaN = "
                "sample lost (see channel<c>_gaps); channel<c>_quality: validity changes",
                "ticks": "2^-32 s since 1970-01-01T00:00:00Z",
            }
        )
        h5.attrs.update(sync_attrs(cap))
        h5.attrs.update(test_attrs(cap))
        if cap.meta:
            h5.attrs["capture_json"] = json.dumps(cap.meta)
            for key in ("outcome", "reason", "created", "streaming", "bandwidth"):
                if cap.meta.get(key) is not None:
                    h5.attrs[key] = str(cap.meta[key])
        for key in sel.keys:
            ch = cap.channel(key)
            lo, hi = sel.range(cap, key)
            grp = h5.require_group(f"module{ch.module}")
            mod = cap.modules.get(ch.module)
            if mod is not None and "name" not in grp.attrs:
                grp.attrs.update({k: v for k, v in mod.to_dict().items() if v is not None})
            n = hi - lo
            ds = grp.create_dataset(
                f"channel{ch.channel}",
                shape=(n,),
                dtype="<f4",
                chunks=(min(n, 1 << 16),) if n else None,
            )
            ds.attrs.update(channel_attrs(cap, ch, lo, ref))
            _quality_datasets(grp, ch, lo, hi, ref)
            datasets[key] = (ds, lo)
        total = sum(ds.shape[0] for ds, _lo in datasets.values()) or 1
        for window in cap.iter_windows(
            sel.keys, CHUNK, sel.trim, sel.start, sel.end, dtype=np.float32
        ):
            for key, (i0, values) in window.parts.items():
                ds, lo = datasets[key]
                ds[i0 - lo : i0 - lo + len(values)] = values
                result.filled += int(np.count_nonzero(np.isnan(values)))
                result.samples += len(values)
            if progress:
                progress(result.samples / total)
    result.paths.append(path)
    return result


def _quality_datasets(grp: Any, ch: Channel, lo: int, hi: int, ref: int) -> None:
    tps = ch.ticks_per_sample
    rows = []
    state = ch.flags_at(lo)
    if state:
        rows.append((0, state))
    for q in ch.quality:
        if lo < q.pos < hi:
            rows.append((q.pos - lo, q.validity))
    quality = np.zeros(len(rows), QUALITY_DTYPE)
    for i, (pos, validity) in enumerate(rows):
        ticks = ch.start_ticks + (lo + pos) * tps
        quality[i] = (
            pos,
            (ticks - ref) / TICKS_PER_SECOND,
            validity,
            validity & 2,
            validity & 8,
            validity & 16,
        )
    ds = grp.create_dataset(f"channel{ch.channel}_quality", data=quality)
    ds.attrs["meaning"] = (
        "validity flags from sample on (until the next row): 0x02 overload (clipped), "
        "0x08 invalid, 0x10 overrun (data lost just before)"
    )
    gaps = [g for g in ch.gaps if g.pos + g.missing > lo and g.pos < hi]
    gap_rows = np.zeros(len(gaps), GAP_DTYPE)
    for i, g in enumerate(gaps):
        a = max(g.pos, lo)
        b = min(g.pos + g.missing, hi)
        gap_rows[i] = (a - lo, (ch.start_ticks + a * tps - ref) / TICKS_PER_SECOND, b - a)
    grp.create_dataset(f"channel{ch.channel}_gaps", data=gap_rows)
