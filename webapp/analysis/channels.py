"""Channels from the files' indexes: every signal mapped back to its module and physical
channel, placed on its sample grid from its blocks' header times, with its gaps, overlaps,
off-grid blocks, data-quality changes and calibration; and the problems found on the way."""

from __future__ import annotations

from typing import Any

import numpy as np

from webapp.analysis.index import signal_ids
from webapp.analysis.model import (
    FULL_SCALE,
    Channel,
    Gap,
    Problem,
    QualityChange,
    Segment,
    StreamFile,
    iso_time,
)
from webapp.capture.labels import LABEL_FIELDS
from webapp.openapi.stream import DataType, ticks_per_sample


def build_channels(
    files: list[StreamFile], meta: dict[str, Any] | None
) -> tuple[list[Channel], list[Problem]]:
    """The channels of these files (each with its ``index``), sorted by module and channel,
    and the problems found in the indexes."""
    builder = _ChannelBuilder(meta)
    builder.add_files(files)
    builder.channels.sort(key=lambda c: (c.module, c.channel, c.signal_id))
    return builder.channels, builder.problems


class _ChannelBuilder:
    def __init__(self, meta: dict[str, Any] | None) -> None:
        self.meta = meta
        self.channels: list[Channel] = []
        self.problems: list[Problem] = []

    def add_files(self, files: list[StreamFile]) -> None:
        for fnum, sf in enumerate(files):
            idx = sf.index
            where = sf.path.name
            if idx.truncated_bytes:
                what = "an incomplete message"
                info = idx.truncated_message
                if info and "signal_id" in info:
                    what = (
                        f"an incomplete SignalData message (signal {info['signal_id']}, "
                        f"{info['values']} values at {iso_time(info['time'])}, "
                        f"{info['length'] - idx.truncated_bytes} of {info['length']} bytes missing)"
                    )
                self.problems.append(
                    Problem(
                        "error",
                        where,
                        f"ends in {what}: the last {idx.truncated_bytes} bytes "
                        f"(from byte {idx.end}) are unreadable",
                    )
                )
            for err in idx.framing_errors:
                self.problems.append(
                    Problem(
                        "error",
                        where,
                        f"framing lost at byte {err.offset}: {err.skipped} bytes skipped "
                        f"({err.message})",
                    )
                )
            mod_meta = self._module_meta(sf.module)
            sids = signal_ids(idx.sid)
            for sid in sorted(set(sids) | set(idx.interpretations)):
                channel = self._channel_number(sf, sid, mod_meta, where)
                self._add_channel(fnum, sf, sid, channel, mod_meta)

    def _label(self, module: int, channel: int) -> dict[str, str]:
        """The channel's labels from capture.json's ``channels`` (empty fields when none)."""
        for entry in (self.meta or {}).get("channels") or []:
            if (
                isinstance(entry, dict)
                and entry.get("module") == module
                and entry.get("channel") == channel
            ):
                return {k: str(entry.get(k) or "") for k in LABEL_FIELDS}
        return {k: "" for k in LABEL_FIELDS}

    def _module_meta(self, number: int) -> dict[str, Any] | None:
        if not self.meta:
            return None
        for mod in self.meta.get("modules", []):
            if int(mod.get("number", -1)) == number:
                return mod
        return None

    def _channel_number(
        self, sf: StreamFile, sid: int, mod_meta: dict[str, Any] | None, where: str
    ) -> int:
        ids_in_file = set(sf.index.interpretations) | (set(signal_ids(sf.index.sid)))
        if sf.channels and len(sf.channels) == 1 and len(ids_in_file) == 1:
            return sf.channels[0]  # multi-socket: one channel per file, whatever its ID
        if mod_meta and mod_meta.get("signals"):
            for entry in mod_meta["signals"]:
                if int(entry.get("signal_id", -1)) == sid:
                    return int(entry["channel"])
        if sf.channels:
            ordered = sorted(sf.channels)
            if 1 <= sid <= len(ordered):
                return ordered[sid - 1]
        self.problems.append(
            Problem(
                "warning" if self.meta else "info",
                where,
                f"signal {sid} has no channel mapping; taken as channel {sid}",
            )
        )
        return sid

    def _add_channel(
        self,
        fnum: int,
        sf: StreamFile,
        sid: int,
        channel: int,
        mod_meta: dict[str, Any] | None,
    ) -> None:
        idx = sf.index
        where = f"{sf.path.name} signal {sid}"
        interp = idx.interpretations.get(sid)
        if interp is None:
            self.problems.append(
                Problem("error", where, "data without an Interpretation message: not readable")
            )
            return
        if interp.data_type != DataType.INT24:
            self.problems.append(
                Problem("error", where, f"data type {interp.data_type} is not Int24: not read")
            )
            return
        if not interp.sample_rate or (1 << 32) % interp.sample_rate:
            self.problems.append(
                Problem("error", where, f"sample period {interp.period} is not a LAN-XI rate")
            )
            return
        rate = int(interp.sample_rate)
        tps = ticks_per_sample(rate)
        sel = np.flatnonzero(idx.sid == sid)
        versions = [(0, interp)] + [
            (c.block, c.interpretation) for c in idx.changes if c.signal_id == sid
        ]
        for block, later in versions[1:]:
            if later.sample_rate != rate or later.data_type != DataType.INT24:
                cut = int(np.searchsorted(sel, block))
                self.problems.append(
                    Problem(
                        "error",
                        where,
                        f"sample rate or data type changes mid-stream; {len(sel) - cut} blocks "
                        "after the change are not read",
                    )
                )
                sel = sel[:cut]
                versions = [v for v in versions if v[0] < block]
                break
            self.problems.append(
                Problem("warning", where, "Interpretation changed mid-stream (new scale/offset)")
            )
        times = idx.time[sel]
        counts = idx.count[sel]
        voffs = idx.voff[sel]
        start = int(times.min()) if len(sel) else 0
        rel = (times - np.uint64(start)).view(np.int64) if len(sel) else np.zeros(0, np.int64)
        pos, rem = np.divmod(rel, tps)
        misaligned = int(np.count_nonzero(rem))
        if misaligned:
            pos = pos + (2 * rem >= tps)
            self.problems.append(
                Problem(
                    "warning",
                    where,
                    f"{misaligned} blocks are not on the sample grid; placed at the nearest sample",
                )
            )
        version = np.zeros(len(sel), np.int64)
        for v, (block, _interp) in enumerate(versions[1:], start=1):
            version[sel >= block] = v
        calib = [
            (i.scale_factor / FULL_SCALE, i.offset) for _, i in versions
        ]  # per version: (factor, offset)
        segments = _segments(pos, counts, voffs, version, calib, fnum)
        gaps, overlap, length, present = _coverage(pos, counts, start, tps)
        ordered = all(a.end <= b.pos for a, b in zip(segments, segments[1:], strict=False))
        quality = []
        for ticks, qsid, validity, _next in idx.qualities:
            if qsid == sid:
                qpos = max(0, -((start - ticks) // tps)) if len(sel) else 0
                quality.append(QualityChange(qpos, ticks, validity))
        setup = _setup_entry(mod_meta, channel)
        transducer = None
        if setup and isinstance(setup.get("transducer"), dict):
            transducer = setup["transducer"]
        detected = (mod_meta or {}).get("transducers") or []
        if 1 <= channel <= len(detected) and isinstance(detected[channel - 1], dict):
            transducer = {**(transducer or {}), "detected": detected[channel - 1]}
        label = self._label(sf.module, channel)
        key = f"m{sf.module}-ch{channel}"
        while key in {c.key for c in self.channels}:
            key += "'"
            self.problems.append(Problem("warning", where, f"channel {channel} appears twice"))
        ch = Channel(
            key=key,
            module=sf.module,
            channel=channel,
            signal_id=sid,
            file=fnum,
            name=label.get("name") or str((setup or {}).get("name") or f"Channel {channel}"),
            unit=interp.unit,
            sample_rate=rate,
            scale_factor=interp.scale_factor,
            offset=interp.offset,
            start_ticks=start,
            length=length,
            present=present,
            segments=segments,
            ordered=ordered,
            gaps=gaps,
            quality=quality,
            overlap=overlap,
            misaligned=misaligned,
            blocks=len(sel),
            setup=setup,
            transducer=transducer,
            range=str((setup or {}).get("range", "")),
            labels=label,
        )
        if overlap:
            self.problems.append(
                Problem("error", where, f"{overlap} samples overlap earlier ones (time went back)")
            )
        if not len(sel):
            self.problems.append(Problem("warning", where, "announced but carries no samples"))
        self.channels.append(ch)


def _segments(
    pos: np.ndarray,
    counts: np.ndarray,
    voffs: np.ndarray,
    version: np.ndarray,
    calib: list[tuple[float, float]],
    fnum: int,
) -> list[Segment]:
    """Group blocks (file order) into runs that one strided view can read."""
    n = len(pos)
    out: list[Segment] = []
    if not n:
        return out

    def emit(a: int, b: int, stride: int) -> None:  # blocks a..b-1
        factor, offset = calib[int(version[a])]
        out.append(
            Segment(int(pos[a]), b - a, int(counts[a]), int(voffs[a]), stride, factor, offset, fnum)
        )

    if n == 1:
        emit(0, 1, 0)
        return out
    cont = (
        (pos[1:] == pos[:-1] + counts[:-1])
        & (counts[1:] == counts[:-1])
        & (version[1:] == version[:-1])
    )
    d = np.diff(voffs)
    key = np.where(cont, d, -1)
    # (np.r_ would do, at ten times the cost: this runs for every channel on every rebuild)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    ends = np.append(starts[1:], len(key))
    i = 0  # first block not yet in a segment
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):  # pairs a..b-1
        if key[a] < 0:
            continue
        first = max(a, i)
        if first >= b:
            continue
        for j in range(i, first):
            emit(j, j + 1, 0)
        emit(first, b + 1, int(key[a]))
        i = b + 1
    for j in range(i, n):
        emit(j, j + 1, 0)
    return out


def _coverage(
    pos: np.ndarray, counts: np.ndarray, start: int, tps: int
) -> tuple[list[Gap], int, int, int]:
    """Gaps, overlapping samples, length and samples present, from block positions."""
    if not len(pos):
        return [], 0, 0, 0
    order = np.argsort(pos, kind="stable")
    p = pos[order]
    c = counts[order]
    ends = p + c
    prev_end = np.concatenate((p[:1], np.maximum.accumulate(ends)[:-1]))
    overlap = int(np.clip(prev_end - p, 0, c).sum())
    gap_at = np.flatnonzero(p > prev_end)
    gaps = [
        Gap(int(prev_end[i]), int(p[i] - prev_end[i]), start + int(prev_end[i]) * tps)
        for i in gap_at.tolist()
    ]
    length = int(ends.max())
    present = int(c.sum()) - overlap
    return gaps, overlap, length, present


def _setup_entry(mod_meta: dict[str, Any] | None, channel: int) -> dict[str, Any] | None:
    if not mod_meta:
        return None
    setup = mod_meta.get("setup") or {}
    for entry in setup.get("channels", []) if isinstance(setup, dict) else []:
        if isinstance(entry, dict) and int(entry.get("channel", -1)) == channel:
            return entry
    return None
