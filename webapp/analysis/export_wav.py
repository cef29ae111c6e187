"""WAV export (soundfile): float32, one file per module (its channels interleaved) or per
channel; RF64 past 4 GiB; gaps written as 0."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from webapp.analysis.export_common import (
    ExportError,
    ExportResult,
    Progress,
    Selection,
    aligned_blocks,
    grid,
    safe_name,
)
from webapp.analysis.reader import Capture
from webapp.capture.labels import dof
from webapp.openapi import units


def check_wav(cap: Capture, sel: Selection, per: str) -> None:
    """ExportError unless the files are per module or per channel and each module's channels
    share one sample grid."""
    if per not in ("module", "channel"):
        raise ExportError("WAV files are made per module or per channel")
    if per == "module":
        for number in sorted({cap.channel(k).module for k in sel.keys}):
            grid(cap, [k for k in sel.keys if cap.channel(k).module == number], "a WAV file")


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
        paths = [target / f"{safe_name(cap.name)}.{name}.wav" for name, _ in groups]
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
            for _f0, block, filled in aligned_blocks(cap, sel, keys, np.float32):
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
    tps, phase = grid(cap, keys, "a WAV file")
    t0 = sel.start + (phase - sel.start) % tps
    return max(0, -(-(sel.end - t0) // tps))


def _wav_channel_text(cap: Capture, keys: Sequence[str]) -> str:
    """The WAV file's comment: each channel in file order with its name and point."""
    parts = []
    for i, key in enumerate(keys, start=1):
        ch = cap.channel(key)
        where = dof(ch.labels)
        unit = units.unit_label(ch.unit) or "-"
        parts.append(f"{i}: {ch.name} ({key}{', ' + where if where else ''}, {unit})")
    return "; ".join(parts)
