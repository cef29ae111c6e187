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

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from webapp.analysis.integrity import sync_report
from webapp.analysis.model import TICKS_PER_SECOND, Channel, iso_time
from webapp.analysis.quality import describe_span
from webapp.analysis.reader import Capture
from webapp.capture.labels import dof, uff_dof
from webapp.openapi import units

FORMATS = ("wav", "hdf5", "mat", "csv", "uff")
EXTENSIONS = {"wav": ".wav", "hdf5": ".h5", "mat": ".mat", "csv": ".csv", "uff": ".uff"}
CSV_MAX_VALUES = 10_000_000
"""CSV is for short captures: beyond this, text files are slower to write than to be useful."""
IN_MEMORY_MAX_BYTES = 2 << 30
"""MAT and UFF writers hold whole channels (as float64) in memory; the v5 MAT format also
cannot hold a variable larger than 2 GiB."""
UFF_MAX_SAMPLES = 50_000_000
"""pyuff packs binary values one by one (about 2 M/s) and replaces NaN by 0."""
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
        if per not in ("module", "channel"):
            raise ExportError("WAV files are made per module or per channel")
        if per == "module":
            for number in sorted({cap.channel(k).module for k in sel.keys}):
                _grid(cap, [k for k in sel.keys if cap.channel(k).module == number], "a WAV file")
    elif fmt == "csv":
        tps, phase = _grid(cap, sel.keys, "CSV")
        t0 = sel.start + (phase - sel.start) % tps
        values = -(-(sel.end - t0) // tps) * (len(sel.keys) + 1)
        if values > CSV_MAX_VALUES:
            raise ExportError(
                f"CSV is for short captures: this selection has {values:,} values "
                f"(limit {CSV_MAX_VALUES:,}). Use --format hdf5 or wav, or cut a span with "
                "--start/--duration or fewer channels with --channels"
            )
    elif fmt in ("mat", "uff"):
        _check_in_memory(cap, sel, fmt.upper())
        samples = sum(hi - lo for lo, hi in (sel.range(cap, k) for k in sel.keys))
        if fmt == "uff" and samples > UFF_MAX_SAMPLES:
            raise ExportError(
                f"UFF export is limited to {UFF_MAX_SAMPLES:,} samples (this selection has "
                f"{samples:,}): use hdf5, or cut a span with --start/--duration or --channels"
            )


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
        path = target / f"{_safe(cap.name)}{EXTENSIONS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = {"hdf5": write_hdf5, "mat": write_mat, "csv": write_csv, "uff": write_uff}[fmt]
    return writer(cap, sel, path, progress)


# --- aligned blocks (WAV, CSV) ----------------------------------------------------------------


def _grid(cap: Capture, keys: Sequence[str], what: str) -> tuple[int, int]:
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


def _aligned_blocks(
    cap: Capture, sel: Selection, keys: Sequence[str], dtype: Any, chunk: int = CHUNK
) -> Iterator[tuple[int, np.ndarray, int]]:
    """(first frame, frames × channels block, samples filled) over the selection."""
    tps, phase = _grid(cap, keys, "writing channels side by side")
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


# --- WAV --------------------------------------------------------------------------------------


def write_wav(
    cap: Capture, sel: Selection, target: Path, per: str, progress: Progress | None = None
) -> ExportResult:
    import soundfile

    groups: list[tuple[str, list[str]]] = []
    if per == "module":
        for number in sorted({cap.channel(k).module for k in sel.keys}):
            keys = [k for k in sel.keys if cap.channel(k).module == number]
            groups.append((f"m{number}", keys))
    else:
        groups = [(k, [k]) for k in sel.keys]
    if target.suffix.lower() == ".wav":
        if len(groups) > 1:
            raise ExportError(f"{len(groups)} WAV files to write: give a folder, not {target}")
        paths = [target]
    else:
        paths = [target / f"{_safe(cap.name)}.{name}.wav" for name, _ in groups]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    total = sum(_frames(cap, sel, keys) * len(keys) for _, keys in groups) or 1
    done = 0
    for path, (_name, keys) in zip(paths, groups, strict=True):
        rate = cap.channel(keys[0]).sample_rate
        frames = _frames(cap, sel, keys)
        big = frames * len(keys) * 4 + 1024 >= 1 << 32
        with soundfile.SoundFile(
            path,
            "w",
            samplerate=rate,
            channels=len(keys),
            subtype="FLOAT",
            format="RF64" if big else "WAV",
        ) as wav:
            wav.title = cap.title[:250]
            wav.comment = _wav_channel_text(cap, keys)[:4000]
            for _f0, block, filled in _aligned_blocks(cap, sel, keys, np.float32):
                np.nan_to_num(block, copy=False, nan=0.0)
                wav.write(block)
                result.filled += filled
                result.samples += block.size
                done += block.size
                if progress:
                    progress(done / total)
        if big:
            result.notes.append(f"{path.name} is RF64 (WAV cannot exceed 4 GiB)")
        result.paths.append(path)
    result.notes.append(
        "WAV channel order: " + "; ".join(f"{n}: {', '.join(k)}" for n, k in groups)
    )
    return result


def _frames(cap: Capture, sel: Selection, keys: Sequence[str]) -> int:
    tps, phase = _grid(cap, keys, "a WAV file")
    t0 = sel.start + (phase - sel.start) % tps
    return max(0, -(-(sel.end - t0) // tps))


# --- HDF5 -------------------------------------------------------------------------------------

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
        h5.attrs.update(_sync_attrs(cap))
        h5.attrs.update(_test_attrs(cap))
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
            ds.attrs.update(_channel_attrs(cap, ch, lo, ref))
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


def _channel_attrs(cap: Capture, ch: Channel, lo: int, ref: int) -> dict[str, Any]:
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


# --- MAT --------------------------------------------------------------------------------------


def _check_in_memory(cap: Capture, sel: Selection, fmt: str) -> None:
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


def write_mat(
    cap: Capture, sel: Selection, path: Path, progress: Progress | None = None
) -> ExportResult:
    import scipy.io

    check(cap, sel, "mat")
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
            **_sync_attrs(cap),
            **_test_attrs(cap),
            "tags": np.array(cap.test["tags"], dtype=object).reshape(-1, 1),
        }
    }
    for i, key in enumerate(sel.keys):
        ch = cap.channel(key)
        lo, hi = sel.range(cap, key)
        data = cap.read(key, lo, hi, np.float64)
        result.filled += int(np.count_nonzero(np.isnan(data)))
        result.samples += len(data)
        attrs = _channel_attrs(cap, ch, lo, ref)
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


# --- CSV --------------------------------------------------------------------------------------


def write_csv(
    cap: Capture, sel: Selection, path: Path, progress: Progress | None = None
) -> ExportResult:
    check(cap, sel, "csv")
    tps, phase = _grid(cap, sel.keys, "CSV")
    t0 = sel.start + (phase - sel.start) % tps
    frames = -(-(sel.end - t0) // tps)
    result = ExportResult()
    ref = cap.start_ticks
    heads = ["time_s"] + [
        f"{k} [{cap.channel(k).unit}]" if cap.channel(k).unit else k for k in sel.keys
    ]
    with open(path, "w", encoding="utf-8", newline="") as f:
        sync = _sync_attrs(cap)["sync_statement"]
        f.write(f"# capture {cap.id}, time 0 = {iso_time(ref)}, sync: {sync}\n")
        f.write(",".join(heads) + "\n")
        for f0, block, filled in _aligned_blocks(cap, sel, sel.keys, np.float64):
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


# --- UFF 58 -----------------------------------------------------------------------------------

# UFF specific data types and unit exponents (length, force, temperature) of common units.
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

    check(cap, sel, "uff")
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


def _sync_attrs(cap: Capture) -> dict[str, Any]:
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


def _test_attrs(cap: Capture) -> dict[str, Any]:
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


def _wav_channel_text(cap: Capture, keys: Sequence[str]) -> str:
    """The WAV file's comment: each channel in file order with its name and point."""
    parts = []
    for i, key in enumerate(keys, start=1):
        ch = cap.channel(key)
        where = dof(ch.labels)
        unit = units.unit_label(ch.unit) or "-"
        parts.append(f"{i}: {ch.name} ({key}{', ' + where if where else ''}, {unit})")
    return "; ".join(parts)


def _transducer_text(ch: Channel) -> str:
    t = ch.transducer or {}
    ttype = t.get("type") if isinstance(t.get("type"), dict) else {}
    number = (ttype or {}).get("number", "None")
    if number in ("None", "", None):
        return "none"
    return (
        f"{number} s/n {t.get('serialNumber', 0)} {t.get('sensitivity', '')} V/{t.get('unit', '')}"
    )


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._- " else "_" for c in name).strip()
    return keep or "capture"


def estimate_bytes(cap: Capture, sel: Selection, fmt: str) -> int:
    """Rough output size, for a user interface to warn before starting."""
    samples = sum(max(0, hi - lo) for lo, hi in (sel.range(cap, k) for k in sel.keys))
    per = {"wav": 4, "hdf5": 4, "mat": 8, "csv": 14, "uff": 8}[fmt]
    return int(math.ceil(samples * per))
