"""PTP loss spans as a capture records them, and the quality summary History shows.

* :func:`ptp_losses` reads the spans in which a module was not locked onto PTP from
  ``capture.json`` (``modules[].ptp_unlocked``), in seconds from the capture's first sample;
  :func:`webapp.analysis.integrity.build_report` turns them into its sync verdict, with
  :func:`loss_problems` (one error per span) and :func:`sync_statement` (the sentence).
* :func:`quality_summary` condenses an integrity report into the few counts and flags History
  shows as badges; :func:`summarize_folder` is the one way to get it from a capture folder
  (written into ``capture.json`` when a capture ends, computed again for folders without it).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from webapp.analysis.model import TICKS_PER_SECOND, Problem

SUMMARY_VERSION = 1


def ptp_losses(meta: dict[str, Any] | None, start_ticks: int | None) -> list[dict[str, Any]]:
    """Every recorded span of lost PTP lock, oldest first: ``module`` (number), ``address``,
    ``from_s``/``to_s`` (seconds from ``start_ticks``, the capture's first sample; ``to_s``
    None: until the end), ``from``/``to`` (UTC wall-clock) and ``status`` (the ptpStatus that
    showed the loss)."""
    out: list[dict[str, Any]] = []
    modules = (meta or {}).get("modules")
    for mod in modules if isinstance(modules, list) else []:
        if not isinstance(mod, dict) or not isinstance(mod.get("ptp_unlocked"), list):
            continue
        for span in mod["ptp_unlocked"]:
            if not isinstance(span, dict):
                continue
            start = _seconds(span.get("from_s"), span.get("from"), start_ticks)
            end = _seconds(span.get("to_s"), span.get("to"), start_ticks)
            out.append(
                {
                    "module": mod.get("number"),
                    "address": mod.get("address"),
                    "from_s": start if start is not None else 0.0,
                    "to_s": end,
                    "from": span.get("from"),
                    "to": span.get("to"),
                    "status": span.get("status", ""),
                }
            )
    out.sort(key=lambda s: (s["from_s"], str(s["module"])))
    return out


def _seconds(recorded: Any, wall: Any, start_ticks: int | None) -> float | None:
    """Seconds from the first sample: as recorded, else from the wall-clock time."""
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        return float(recorded)
    if not isinstance(wall, str) or start_ticks is None:
        return None
    try:
        t = datetime.fromisoformat(wall).timestamp()
    except ValueError:
        return None
    return max(0.0, round(t - start_ticks / TICKS_PER_SECOND, 6))


def describe_span(span: dict[str, Any], module: bool = True) -> str:
    """``module 2 not locked onto PTP from 0.612 s to 1.013 s`` (or ``to the end``)."""
    end = f"to {span['to_s']:.3f} s" if span.get("to_s") is not None else "to the end"
    text = f"not locked onto PTP from {span['from_s']:.3f} s {end}"
    return f"module {span['module']} {text}" if module else text


def loss_problems(losses: list[dict[str, Any]]) -> list[Problem]:
    """One error per span of lost PTP lock, naming the module and the span."""
    return [
        Problem(
            "error",
            f"module {span['module']}",
            f"{describe_span(span, module=False)} "
            f"({span['from']} .. {span['to'] or 'the end'} UTC): "
            "its samples are not sample-synchronous with the other modules' from "
            f"{span['from_s']:.3f} s on",
        )
        for span in losses
    ]


def sync_statement(losses: list[dict[str, Any]], same_start: bool, on_grid: bool) -> str:
    """The sentence the report, the capture page and the exports give for synchronism."""
    if losses:
        return f"NOT sample-synchronous from {losses[0]['from_s']:.3f} s: " + "; ".join(
            describe_span(span) for span in losses
        )
    if same_start:
        return "sample-synchronous: every channel's first sample at the same instant"
    if on_grid:
        return "sample-synchronous on one sample grid: channels start at different samples"
    return "NOT sample-synchronous: first samples are not on one sample grid"


def quality_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The counts and flags History shows, from an integrity report (its verdict included)."""
    channels = report.get("channels") or []
    sync = report.get("sync") or {}

    def flagged(name: str) -> dict[str, int]:
        return {
            ch["key"]: int(ch["flagged_samples"][name])
            for ch in channels
            if (ch.get("flagged_samples") or {}).get(name)
        }

    lost = {ch["key"]: int(ch["lost"]) for ch in channels if ch.get("lost")}
    files = report.get("files") or []
    return {
        "version": SUMMARY_VERSION,
        "verdict": report.get("verdict"),
        "sample_synchronous": bool(sync.get("sample_synchronous")),
        "overload": flagged("overload"),
        "invalid": flagged("invalid"),
        "lost_samples": sum(lost.values()),
        "lost": lost,
        "overruns": sum(int(ch.get("overruns") or 0) for ch in channels),
        "ptp_unlocked": [
            {k: s.get(k) for k in ("module", "from_s", "to_s")}
            for s in sync.get("ptp_unlocked") or []
        ],
        "interrupted": (report.get("capture") or {}).get("outcome") == "interrupted",
        "truncated_bytes": sum(int(f.get("truncated_bytes") or 0) for f in files),
        "errors": sum(1 for p in report.get("problems") or [] if p.get("severity") == "error"),
        "warnings": sum(1 for p in report.get("problems") or [] if p.get("severity") == "warning"),
    }


def summarize_folder(folder: Path) -> dict[str, Any]:
    """:func:`quality_summary` of the capture in ``folder`` (its files indexed, not hashed).
    Blocking file work: call it through ``webapp.runtime.offload`` under eventlet."""
    from webapp.analysis.integrity import build_report
    from webapp.analysis.reader import Capture

    with Capture.open(folder) as cap:
        return quality_summary(build_report(cap, checksums=False))
