"""UFF export (pyuff): one binary dataset 58 (function type 1, time response) per channel; in
memory, bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from webapp.analysis.export_common import (
    ExportError,
    ExportResult,
    Progress,
    Selection,
    check_in_memory,
)
from webapp.analysis.integrity import sync_report
from webapp.analysis.model import TICKS_PER_SECOND, Channel, iso_time
from webapp.analysis.reader import Capture
from webapp.capture.labels import uff_dof

UFF_MAX_SAMPLES = 50_000_000
"""pyuff packs binary values one by one (about 2 M/s) and replaces NaN by 0."""


def check_uff(cap: Capture, sel: Selection) -> None:
    """ExportError when the selection does not fit in memory or is too long for pyuff."""
    check_in_memory(cap, sel, "UFF")
    samples = sum(hi - lo for lo, hi in (sel.range(cap, k) for k in sel.keys))
    if samples > UFF_MAX_SAMPLES:
        raise ExportError(
            f"UFF export is limited to {UFF_MAX_SAMPLES:,} samples (this selection has "
            f"{samples:,}): use hdf5, or cut a span with --start/--duration or --channels"
        )


_UFF_UNITS = {
    "Pa": (15, -2, 1),
    "m/s^2": (12, 1, 0),
    "m/s²": (12, 1, 0),
    "g": (12, 0, 0),
    "m/s": (11, 1, 0),
    "m": (8, 1, 0),
    "N": (13, 0, 1),
}


def write_uff(
    cap: Capture, sel: Selection, path: Path, progress: Progress | None = None
) -> ExportResult:
    import pyuff

    check_uff(cap, sel)
    result = ExportResult()
    ref = cap.start_ticks
    if path.exists():
        path.unlink()
    uff = pyuff.UFF(str(path))
    sync = sync_report(cap)
    until = sync.get("synchronous_until_s")
    in_sync = (
        "sample-synchronous"
        if sync.get("sample_synchronous")
        else f"NOT synchronous from {until:.3f} s"
        if until is not None
        else "NOT sample-synchronous"
    )
    for i, key in enumerate(sel.keys):
        ch = cap.channel(key)
        lo, hi = sel.range(cap, key)
        data = cap.read(key, lo, hi, np.float64)
        if len(data) < 2:
            result.notes.append(f"{key}: fewer than 2 samples, not written (UFF 58 needs 2)")
            continue
        result.filled += int(np.count_nonzero(np.isnan(data)))
        result.samples += len(data)
        start = ch.start_ticks + lo * ch.ticks_per_sample
        spec, len_exp, force_exp = _UFF_UNITS.get(ch.unit, (0, 0, 0))
        component, node, direction = uff_dof(ch.labels)
        mod = cap.modules.get(ch.module)
        unlocked = "".join(
            f"; PTP lost {span['from_s']:.3f}-"
            + (f"{span['to_s']:.3f} s" if span["to_s"] is not None else "end")
            for span in sync.get("ptp_unlocked") or []
            if span["module"] == ch.module
        )
        dset = pyuff.prepare_58(
            binary=1,
            id1=f"{cap.title} {key}"[:80],
            id2=f"{ch.name}; {ch.range}; transducer {_transducer_text(ch)}"[:80],
            id3=f"start {iso_time(start)}; {in_sync}"[:80],
            id4=f"module {ch.module} {mod.name if mod else ''} {mod.type if mod else ''}"[:80],
            id5=f"signal {ch.signal_id}; {ch.sample_rate} S/s{unlocked}; NaN = lost"[:80],
            func_type=1,
            rsp_node=node or ch.channel,
            rsp_dir=direction,
            ref_node=0,
            ref_dir=0,
            rsp_ent_name=(component or f"M{ch.module}")[:10],
            abscissa_spacing=1,
            abscissa_spec_data_type=17,
            abscissa_axis_units_lab="s",
            ordinate_spec_data_type=spec,
            ordinate_len_unit_exp=len_exp,
            ordinate_force_unit_exp=force_exp,
            ordinate_axis_units_lab=ch.unit or "NONE",
            orddenom_spec_data_type=0,
            z_axis_spec_data_type=0,
            data=data,
            x=(start - ref) / TICKS_PER_SECOND + np.arange(len(data)) / ch.sample_rate,
        )
        uff.write_sets(dset, mode="add")
        if progress:
            progress((i + 1) / len(sel.keys))
    result.paths.append(path)
    return result


def _transducer_text(ch: Channel) -> str:
    t = ch.transducer or {}
    ttype = t.get("type") if isinstance(t.get("type"), dict) else {}
    number = (ttype or {}).get("number", "None")
    if number in ("None", "", None):
        return "none"
    return (
        f"{number} s/n {t.get('serialNumber', 0)} {t.get('sensitivity', '')} V/{t.get('unit', '')}"
    )
