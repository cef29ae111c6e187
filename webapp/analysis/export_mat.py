"""MAT export (scipy.io): one struct per channel (``m<n>_ch<c>``) and ``capture``; in memory,
bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from webapp.analysis.export_common import (
    ExportResult,
    Progress,
    Selection,
    channel_attrs,
    check_in_memory,
    sync_attrs,
    test_attrs,
)
from webapp.analysis.model import Channel, iso_time
from webapp.analysis.reader import Capture


def write_mat(
    cap: Capture, sel: Selection, path: Path, progress: Progress | None = None
) -> ExportResult:
    import scipy.io

    check_in_memory(cap, sel, "MAT")
    result = ExportResult()
    ref = cap.start_ticks
    variables: dict[str, Any] = {
        "capture": {
            "id": cap.id,
            "name": cap.name,
            "start_time": iso_time(ref),
            "start_ticks": str(ref),
            "channels": np.array(
                [_mat_name(cap.channel(k)) for k in sel.keys], dtype=object
            ).reshape(-1, 1),
            **sync_attrs(cap),
            **test_attrs(cap),
            "tags": np.array(cap.test["tags"], dtype=object).reshape(-1, 1),
        }
    }
    for i, key in enumerate(sel.keys):
        ch = cap.channel(key)
        lo, hi = sel.range(cap, key)
        data = cap.read(key, lo, hi, np.float64)
        result.filled += int(np.count_nonzero(np.isnan(data)))
        result.samples += len(data)
        attrs = channel_attrs(cap, ch, lo, ref)
        attrs["start_ticks"] = str(int(attrs["start_ticks"]))
        quality = [(q.pos - lo, q.validity) for q in ch.quality if lo <= q.pos < hi]
        variables[_mat_name(ch)] = {
            "data": data.reshape(-1, 1),
            "fs": float(ch.sample_rate),
            **{k: v for k, v in attrs.items() if k != "sample_rate"},
            "quality": np.array(quality, dtype=np.float64).reshape(-1, 2),
            "gaps": np.array(
                [(g.pos - lo, g.missing) for g in ch.gaps if lo <= g.pos < hi], dtype=np.float64
            ).reshape(-1, 2),
        }
        if progress:
            progress((i + 1) / len(sel.keys))
    scipy.io.savemat(path, variables, do_compression=False, oned_as="column")
    result.paths.append(path)
    return result


def _mat_name(ch: Channel) -> str:
    return f"m{ch.module}_ch{ch.channel}"
