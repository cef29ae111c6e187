"""The integrity report of a capture: is every sample there, in sync, and the files untouched?

``build_report(capture)`` returns a JSON-ready dict (the dashboard serves it as is) and
``format_report`` turns it into the text ``lanxi-dashboard inspect`` prints. It states:

* per file: size and SHA-256 against ``capture.json``, messages, bytes lost to a truncated final
  message or to lost framing;
* per module and channel: first-sample time, sample counts, samples lost in gaps, how far each
  signal runs past the common end (modules do not stop on the same sample), data-quality flags
  and how many samples they cover;
* the common span: the first instant every channel has a sample for, the last one, and whether
  the modules are sample-synchronous (identical first-sample times, or at least on one grid,
  and no module out of PTP lock while recording: each such span is an error, and the capture is
  not sample-synchronous from the first one on);
* faults recorded by the orchestrator (channel faults, errors, warnings) and every problem found,
  each with a severity. The verdict is ``ok``, ``warnings`` or ``errors``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from webapp.analysis.model import TICKS_PER_SECOND, Channel, Problem, iso_time
from webapp.analysis.quality import loss_problems, ptp_losses, sync_statement
from webapp.analysis.reader import Capture
from webapp.capture.store import sha256_of
from webapp.openapi import units
from webapp.openapi.model import scale_factor as setup_scale_factor
from webapp.openapi.stream import Validity, validity_names


def build_report(cap: Capture, checksums: bool = True, levels: bool = False) -> dict[str, Any]:
    # Levels first: their pass over the samples can then overlap a background index pass.
    channel_level = channel_levels(cap) if levels else None
    problems: list[Problem] = list(cap.problems)
    meta = cap.meta or {}
    ref = cap.start_ticks
    files = [_file_entry(cap, i, checksums, problems) for i in range(len(cap.files))]
    sync = _sync(cap, problems)
    channels = [_channel_entry(cap, ch, sync, ref, problems) for ch in cap.channels]
    if channel_level is not None:
        for entry, level in zip(channels, channel_level, strict=True):
            entry["level"] = level
    modules = _modules(cap, sync)
    faults = _faults(meta, problems)
    outcome = meta.get("outcome")
    if outcome == "running":
        problems.append(
            Problem(
                "warning",
                "capture.json",
                "outcome is still 'running': the capture did not finish normally",
            )
        )
    elif outcome == "interrupted":
        got = "; ".join(
            f"{f['file']} {f['bytes']:,} bytes, {f['samples']:,} samples ({f['seconds']:.3f} s)"
            for f in files
        )
        problems.append(
            Problem(
                "warning",
                "capture",
                "interrupted: the recording process ended without closing the capture"
                + (f"; on disk: {got}" if got else ""),
            )
        )
    elif outcome == "failed":
        problems.append(
            Problem("error", "capture", f"failed: {meta.get('reason') or 'no reason recorded'}")
        )
    elif outcome == "stopped":
        problems.append(Problem("info", "capture", "stopped early by a user"))
    if meta and isinstance(meta.get("sample_rate"), int):
        for ch in cap.channels:
            if ch.sample_rate != meta["sample_rate"]:
                problems.append(
                    Problem(
                        "warning",
                        ch.key,
                        f"streams at {ch.sample_rate} S/s, capture.json says {meta['sample_rate']}",
                    )
                )
    severities = {p.severity for p in problems}
    verdict = "errors" if "error" in severities else "warnings" if "warning" in severities else "ok"
    return {
        "capture": {
            "id": cap.id,
            "name": cap.name,
            "folder": str(cap.folder) if cap.folder else None,
            "format": meta.get("format"),
            "outcome": outcome,
            "reason": meta.get("reason", ""),
            "created": meta.get("created"),
            "start_ticks": ref,
            "start_time": iso_time(ref),
            "sample_rate": meta.get("sample_rate"),
            "bandwidth": meta.get("bandwidth"),
            "streaming": meta.get("streaming"),
            "requested_duration_s": meta.get("requested_duration_s"),
            "recorded_s": meta.get("recorded_s"),
        },
        "files": files,
        "modules": modules,
        "sync": sync,
        "channels": channels,
        "faults": faults,
        "problems": [p.to_dict() for p in problems],
        "verdict": verdict,
    }


def _file_entry(cap: Capture, i: int, checksums: bool, problems: list[Problem]) -> dict[str, Any]:
    sf = cap.files[i]
    idx = sf.index
    entry: dict[str, Any] = {
        "file": sf.path.name,
        "module": sf.module,
        "channels": sf.channels,
        "bytes": idx.size,
        "expected_bytes": sf.expected_bytes,
        "readable_bytes": idx.end - sum(e.skipped for e in idx.framing_errors),
        "truncated_bytes": idx.truncated_bytes,
        "framing_errors": [
            {"offset": e.offset, "skipped": e.skipped, "message": e.message}
            for e in idx.framing_errors
        ],
        "messages": idx.messages,
        "blocks": idx.blocks,
        "message_types": {str(int(k)): v for k, v in sorted(idx.types.items())},
        "samples": max((ch.present for ch in cap.channels if ch.file == i), default=0),
        "seconds": max(
            (ch.present / ch.sample_rate for ch in cap.channels if ch.file == i and ch.sample_rate),
            default=0.0,
        ),
        "sha256": None,
        "expected_sha256": sf.expected_sha256,
        "checksum": "skipped",
    }
    # Size and checksum are recorded when the file is closed; a capture that is still running
    # (or crashed) lists its files with neither.
    closed = bool(sf.expected_sha256)
    if closed and sf.expected_bytes is not None and sf.expected_bytes != idx.size:
        problems.append(
            Problem(
                "error",
                sf.path.name,
                f"is {idx.size} bytes, capture.json recorded {sf.expected_bytes}",
            )
        )
    if checksums:
        digest = sha256_of(sf.path).hexdigest()
        entry["sha256"] = digest
        if sf.expected_sha256 is None:
            entry["checksum"] = "not recorded"
        elif digest == sf.expected_sha256.lower():
            entry["checksum"] = "ok"
        else:
            entry["checksum"] = "mismatch"
            problems.append(
                Problem("error", sf.path.name, "SHA-256 differs from capture.json: file changed")
            )
    return entry


def sync_report(cap: Capture) -> dict[str, Any]:
    """The ``sync`` part of :func:`build_report` alone (what an export states about sync)."""
    return _sync(cap, [])


def _sync(cap: Capture, problems: list[Problem]) -> dict[str, Any]:
    chans = [c for c in cap.channels if c.length]
    if not chans:
        problems.append(Problem("error", "capture", "no samples in any file"))
        return {
            "synchronous": False,
            "sample_synchronous": False,
            "synchronous_until_s": None,
            "statement": "no samples in any file",
            "ptp_unlocked": ptp_losses(cap.meta, cap.start_ticks),
            "on_grid": False,
            "common_start_ticks": None,
        }
    start, end = cap.span(trim=True)
    first = min(c.start_ticks for c in chans)
    firsts = {}
    for c in chans:
        firsts[c.module] = min(firsts.get(c.module, c.start_ticks), c.start_ticks)
    tps = max(c.ticks_per_sample for c in chans)
    same_start = len(set(firsts.values())) == 1 and len({c.start_ticks for c in chans}) == 1
    on_grid = all((c.start_ticks - first) % c.ticks_per_sample == 0 for c in chans)
    rates = {c.sample_rate for c in chans}
    # A module whose PTP lock was lost while recording no longer samples on the master's
    # clock: from the first such span on, the capture is not sample-synchronous.
    losses = ptp_losses(cap.meta, cap.start_ticks)
    problems.extend(loss_problems(losses))
    synchronous = same_start and not losses
    if not same_start:
        spread = (max(firsts.values()) - min(firsts.values())) / tps
        if on_grid:
            problems.append(
                Problem(
                    "warning",
                    "sync",
                    f"channels start up to {spread:g} samples apart, on one sample grid: "
                    "trimming to the common span aligns them",
                )
            )
        else:
            problems.append(
                Problem(
                    "error",
                    "sync",
                    "first-sample times are not on one sample grid: modules are not "
                    "sample-synchronous",
                )
            )
    for mod in (cap.meta or {}).get("modules", []):
        recorded = mod.get("first_ticks") if isinstance(mod, dict) else None
        number = mod.get("number") if isinstance(mod, dict) else None
        if isinstance(recorded, int) and number in firsts and firsts[number] != recorded:
            problems.append(
                Problem(
                    "warning",
                    f"module {number}",
                    f"first sample at {iso_time(firsts[number])} in the file, capture.json "
                    f"first_ticks says {iso_time(recorded)}",
                )
            )
    if cap.meta and isinstance(cap.meta.get("start_ticks"), int):
        recorded = int(cap.meta["start_ticks"])
        if recorded != first:
            problems.append(
                Problem(
                    "warning",
                    "sync",
                    f"first sample at {iso_time(first)}, capture.json start_ticks says "
                    f"{iso_time(recorded)} ({(first - recorded) / tps:+g} samples)",
                )
            )
    common = {
        "synchronous": synchronous,
        "sample_synchronous": on_grid and not losses,
        "synchronous_until_s": losses[0]["from_s"] if losses else None,
        "statement": sync_statement(losses, same_start, on_grid),
        "ptp_unlocked": losses,
        "on_grid": on_grid,
        "sample_rates": sorted(rates),
        "first_sample_ticks": first,
        "common_start_ticks": start,
        "common_start_time": iso_time(start),
        "common_end_ticks": end,
        "common_end_time": iso_time(end),
        "common_duration_s": (end - start) / TICKS_PER_SECOND,
        "common_samples": {str(r): (end - start) * r // TICKS_PER_SECOND for r in sorted(rates)},
        "module_first_sample_ticks": {str(k): v for k, v in sorted(firsts.items())},
    }
    if end <= start:
        problems.append(Problem("error", "sync", "the channels share no common span"))
    return common


def _channel_entry(
    cap: Capture, ch: Channel, sync: dict[str, Any], ref: int, problems: list[Problem]
) -> dict[str, Any]:
    tps = ch.ticks_per_sample
    lost = sum(g.missing for g in ch.gaps)
    for gap in ch.gaps:
        problems.append(
            Problem(
                "error",
                ch.key,
                f"{gap.missing} samples missing at {(gap.ticks - ref) / TICKS_PER_SECOND:.6f} s "
                f"(sample {gap.pos})",
            )
        )
    flagged = _flag_samples(ch)
    for name in ("overload", "invalid"):
        if flagged.get(name):
            problems.append(
                Problem(
                    "warning",
                    ch.key,
                    f"{name} flagged on {flagged[name]} samples "
                    f"({flagged[name] / ch.sample_rate:.3f} s)",
                )
            )
    overruns = sum(1 for q in ch.quality if q.validity & Validity.OVERRUN)
    if overruns and not ch.gaps:
        problems.append(
            Problem("warning", ch.key, f"{overruns} Overrun flags (data loss reported by module)")
        )
    entry: dict[str, Any] = {
        **ch.metadata(),
        "offset_s": (ch.start_ticks - ref) / TICKS_PER_SECOND,
        "blocks": ch.blocks,
        "lost": lost,
        "gaps": [
            {
                "pos": g.pos,
                "missing": g.missing,
                "time_s": (g.ticks - ref) / TICKS_PER_SECOND,
            }
            for g in ch.gaps
        ],
        "quality": [
            {
                "pos": q.pos,
                "time_s": (q.ticks - ref) / TICKS_PER_SECOND,
                "validity": q.validity,
                "flags": q.flags,
            }
            for q in ch.quality
        ],
        "flagged_samples": flagged,
        "overruns": overruns,
        "misaligned_blocks": ch.misaligned,
        "overlap": ch.overlap,
        "transducer_label": _transducer_label(ch.transducer),
    }
    if sync.get("common_start_ticks") is not None and ch.length:
        entry["before_common_start"] = (sync["common_start_ticks"] - ch.start_ticks) // tps
        entry["past_common_end"] = (ch.end_ticks - sync["common_end_ticks"]) // tps
    _check_calibration(ch, problems)
    return entry


def _check_calibration(ch: Channel, problems: list[Problem]) -> None:
    """The module's scale factor against the applied setup (range × headroom / sensitivity)."""
    setup = ch.setup or {}
    transducer = setup.get("transducer") if isinstance(setup.get("transducer"), dict) else {}
    try:
        sensitivity = float((transducer or {}).get("sensitivity", 1.0))
        expected = setup_scale_factor(str(setup["range"]), sensitivity)
    except (KeyError, TypeError, ValueError):
        return
    if abs(expected - ch.scale_factor) > 1e-6 * abs(expected):
        problems.append(
            Problem(
                "warning",
                ch.key,
                f"scale factor {ch.scale_factor:.6g} differs from the setup's {expected:.6g} "
                f"({setup.get('range')}, sensitivity {sensitivity:g})",
            )
        )
    unit = (transducer or {}).get("unit")
    if unit and unit != ch.unit:
        problems.append(
            Problem("warning", ch.key, f"unit {ch.unit!r} differs from the setup's {unit!r}")
        )


def _flag_samples(ch: Channel) -> dict[str, int]:
    """Samples covered by each validity flag (flags hold from one change to the next)."""
    totals = {name: 0 for name in ("overload", "invalid", "overrun", "settling", "unknown")}
    changes = sorted(ch.quality, key=lambda q: q.pos)
    if not changes:
        return {}
    for q, nxt in zip(changes, changes[1:] + [None], strict=True):
        end = nxt.pos if nxt is not None else ch.length
        span = max(0, min(end, ch.length) - q.pos)
        for name in validity_names(q.validity):
            totals[name] += span
    return {k: v for k, v in totals.items() if v}


def _transducer_label(transducer: dict[str, Any] | None) -> str:
    if not transducer:
        return ""
    t = transducer.get("type") if isinstance(transducer.get("type"), dict) else {}
    number = str((t or {}).get("number", "None"))
    if number in ("None", ""):
        return ""
    serial = transducer.get("serialNumber", 0)
    sensitivity = units.sensitivity_text(transducer.get("sensitivity"), transducer.get("unit"))
    return f"{number} s/n {serial}, {sensitivity}"


def _modules(cap: Capture, sync: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    common = sync.get("common_start_ticks")
    for number, mod in sorted(cap.modules.items()):
        chans = [c for c in cap.channels if c.module == number and c.length]
        first = min((c.start_ticks for c in chans), default=None)
        tps = max((c.ticks_per_sample for c in chans), default=1)
        out.append(
            {
                **mod.to_dict(),
                "files": [sf.path.name for sf in cap.files if sf.module == number],
                "channels": mod.channels,
                "first_sample_ticks": first,
                "first_sample_time": iso_time(first) if first is not None else None,
                "samples_before_common_start": (common - first) // tps
                if first is not None and common is not None
                else None,
                "samples": {c.key: c.length for c in chans},
                "present": {c.key: c.present for c in chans},
            }
        )
    return out


def _faults(meta: dict[str, Any], problems: list[Problem]) -> list[dict[str, Any]]:
    out = []
    for ev in meta.get("events", []) if isinstance(meta.get("events"), list) else []:
        if not isinstance(ev, dict):
            continue
        kind = ev.get("kind")
        when = _event_time(ev.get("t"))
        if kind == "channel-fault":
            current = [k for k in ("anol", "cmol", "cf") if ev.get(k) not in (None, "none", "")]
            if current:
                out.append(
                    {
                        "kind": kind,
                        "time": when,
                        "module": ev.get("module"),
                        "channel": ev.get("channel"),
                        "detail": ", ".join(f"{k}={ev.get(k)}" for k in current),
                    }
                )
        elif kind in ("error", "warning"):
            out.append(
                {
                    "kind": kind,
                    "time": when,
                    "module": ev.get("module"),
                    "detail": ev.get("message", ""),
                }
            )
        elif kind == "data-quality" and ev.get("validity"):
            out.append(
                {
                    "kind": kind,
                    "time": when,
                    "module": ev.get("module"),
                    "channel": ev.get("channel"),
                    "detail": ", ".join(ev.get("flags") or validity_names(int(ev["validity"]))),
                }
            )
    channel_faults = [f for f in out if f["kind"] == "channel-fault"]
    if channel_faults:
        problems.append(
            Problem(
                "warning",
                "faults",
                f"{len(channel_faults)} channel fault reports during the capture",
            )
        )
    errors = [f for f in out if f["kind"] == "error"]
    for f in errors:
        problems.append(Problem("error", str(f.get("module") or "capture"), str(f["detail"])))
    return out


def _event_time(t: Any) -> str | None:
    try:
        return datetime.fromtimestamp(float(t), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def channel_levels(cap: Capture) -> list[dict[str, Any]]:
    """RMS and peak of every channel over all its samples (one pass over the files), as
    :func:`webapp.openapi.units.readout`: dB re the unit's ISO 1683 reference, dBFS re the
    range's full scale."""
    acc: dict[str, list[Any]] = {}
    for window in cap.iter_windows(dtype=np.float64):
        for key, (_i0, values) in window.parts.items():
            good = values[~np.isnan(values)]
            if good.size:
                a = acc.setdefault(key, [0.0, 0, 0.0])
                a[0] += float(np.dot(good, good))
                a[1] += good.size
                a[2] = max(a[2], float(np.abs(good).max()))
    out = []
    for ch in cap.channels:
        sq, n, peak = acc.get(ch.key, (0.0, 0, 0.0))
        rms = (sq / n) ** 0.5 if n else None
        full = units.full_scale_of(ch.scale_factor) if ch.scale_factor else None
        out.append(units.readout(rms, peak if n else None, ch.unit, full))
    return out


# --- text -----------------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    c = report["capture"]
    lines = [f"Capture {c['id']}" + (f"  ({c['folder']})" if c.get("folder") else "")]
    if c.get("outcome"):
        reason = f": {c['reason']}" if c.get("reason") else ""
        lines.append(f"  outcome      {c['outcome']}{reason}")
    lines.append(f"  start        {c['start_time']}  (ticks {c['start_ticks']})")
    if c.get("sample_rate"):
        lines.append(
            f"  sampling     {c['sample_rate']} S/s ({c.get('bandwidth')}), {c.get('streaming')}"
        )
    lines.append("")
    lines.append("Files")
    for f in report["files"]:
        size = f"{f['bytes']:,} bytes"
        if f["expected_bytes"] is not None and f["expected_bytes"] != f["bytes"]:
            size += f" (capture.json: {f['expected_bytes']:,})"
        extra = []
        if f["truncated_bytes"]:
            extra.append(f"last {f['truncated_bytes']:,} bytes incomplete")
        if f["framing_errors"]:
            extra.append(f"{len(f['framing_errors'])} framing errors")
        if f.get("samples"):
            size += f", {f['samples']:,} samples ({f['seconds']:.3f} s)"
        lines.append(
            f"  {f['file']}: module {f['module']}, {size}, {f['messages']:,} messages, "
            f"sha256 {f['checksum']}" + (f"; {'; '.join(extra)}" if extra else "")
        )
    s = report["sync"]
    lines.append("")
    lines.append("Synchronism")
    if s.get("common_start_ticks") is not None:
        lines.append(f"  {s['statement']}")
        for span in s["ptp_unlocked"]:
            lines.append(
                f"    module {span['module']}: {span['from']} .. {span['to'] or 'end'} UTC"
            )
        lines.append(f"  common span  {s['common_start_time']} .. {s['common_end_time']}")
        counts = ", ".join(f"{n:,} samples at {r} S/s" for r, n in s["common_samples"].items())
        lines.append(f"               {s['common_duration_s']:.6f} s = {counts}")
    lines.append("")
    lines.append("Modules")
    for m in report["modules"]:
        first = m["first_sample_time"] or "no samples"
        late = m.get("samples_before_common_start")
        lines.append(
            f"  {m['number']}: {m['name']} {m['type']} {m['role']} {m['address']}".rstrip()
            + f", first sample {first}"
            + (f" ({late} samples before the common start)" if late else "")
        )
    lines.append("")
    lines.append("Channels")
    for ch in report["channels"]:
        head = (
            f"  {ch['key']:<10} signal {ch['signal_id']}, {ch['sample_rate']} S/s, "
            f"{ch['unit'] or '-'}, scale {ch['scale_factor']:.6g}"
        )
        if ch.get("transducer_label"):
            head += f", {ch['transducer_label']}"
        lines.append(head)
        detail = f"    {ch['samples']:,} samples ({ch['duration_s']:.6f} s)"
        if ch["lost"]:
            detail += f", {ch['lost']:,} lost in {len(ch['gaps'])} gaps"
        if ch.get("past_common_end"):
            detail += f", {ch['past_common_end']:,} past the common end"
        if ch.get("before_common_start"):
            detail += f", {ch['before_common_start']:,} before the common start"
        lines.append(detail)
        flags = [f"{k} {v:,} samples" for k, v in ch["flagged_samples"].items() if k != "overrun"]
        if ch["overruns"]:
            flags.append(f"overrun (data loss) reported {ch['overruns']} times")
        if flags:
            lines.append(f"    flags: {', '.join(flags)}")
        level = ch.get("level")
        if level and level.get("rms") is not None:
            lines.append(f"    level: {units.level_text(level)}")
    if report["faults"]:
        lines.append("")
        lines.append("Faults recorded during the capture")
        for f in report["faults"]:
            where = " ".join(
                str(x)
                for x in (f.get("module"), f"ch{f['channel']}" if f.get("channel") else None)
                if x
            )
            lines.append(f"  {f.get('time') or '-'} {f['kind']} {where}: {f['detail']}")
    lines.append("")
    problems = report["problems"]
    if problems:
        lines.append(f"Problems ({len(problems)})")
        for p in problems:
            lines.append(f"  {p['severity']:<7} {p['where']}: {p['message']}")
    else:
        lines.append("Problems: none")
    lines.append(f"Verdict: {report['verdict']}")
    return "\n".join(lines)
