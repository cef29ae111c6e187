"""The capture page and its JSON: integrity report, plot data, quality timeline, exports.

Routes (all need the viewer role):

* ``GET /captures/<id>`` — the page (templates/capture.html, static/capture.js);
* ``GET /api/captures/<id>/analysis/report[?checksums=0]`` — the integrity report;
* ``GET /api/captures/<id>/analysis/channels`` — channels, modules and the capture's span;
* ``GET /api/captures/<id>/analysis/data?channel=&start=&end=&points=`` — a window of one
  channel (seconds from the capture start), min/max-decimated to ``points`` or full resolution;
* ``GET /api/captures/<id>/analysis/spectrum?channel=&start=&end=&nfft=&window=&average=`` —
  averaged (or peak-held) spectrum up to the bandwidth;
* ``GET /api/captures/<id>/analysis/bands?channel=&start=&end=&fraction=`` — 1/1- or
  1/3-octave band levels of the window (Z, with the A and C corrections) and its LAeq, LCeq,
  LZeq;
* ``GET /api/captures/<id>/analysis/quality`` — flags and gaps per channel over time;
* ``GET /api/captures/<id>/analysis/export?format=&trim=&per=&channels=&start=&duration=`` —
  the export as a download (several files come as one zip).

The capture folder is found only through ``history.capture_folder`` (the id must literally be
an entry of the captures folder). Opened captures are cached, keyed by the size and time of
their files, so a capture still being written is re-read when it grows. Reading, hashing and
exporting are blocking work and go through ``runtime.offload`` (a native thread under
eventlet) so the server keeps serving meanwhile.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template, request, send_file

from webapp import runtime
from webapp.analysis import views
from webapp.analysis.capture_errors import CaptureError
from webapp.analysis.export import FORMATS, check, estimate_bytes, export, select
from webapp.analysis.export_common import ExportError, Selection
from webapp.analysis.integrity import build_report
from webapp.analysis.reader import Capture
from webapp.capture.store import folder_signature
from webapp.web import history
from webapp.web.access.guards import require_role

bp = Blueprint("analysis", __name__)

CACHE_SIZE = 4
EXPORT_DIR = ".exports"
"""Inside the capture folder; hidden, so neither the file list nor the reader sees it."""


class _Entry:
    def __init__(self, cap: Capture, signature: tuple[Any, ...]) -> None:
        self.cap = cap
        self.signature = signature
        self.overview = views.OverviewCache(cap)
        self.reports: dict[tuple[bool, bool], dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.export_lock = threading.Lock()


class _Captures:
    """A few opened captures, most recently used last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, _Entry] = OrderedDict()

    def get(self, folder: Path) -> _Entry:
        signature = folder_signature(folder)
        with self._lock:
            entry = self._entries.get(folder)
            if entry is not None and entry.signature == signature:
                self._entries.move_to_end(folder)
                return entry
        cap = Capture.open(folder)
        entry = _Entry(cap, signature)
        with self._lock:
            old = self._entries.pop(folder, None)
            self._entries[folder] = entry
            while len(self._entries) > CACHE_SIZE:
                _, evicted = self._entries.popitem(last=False)
                evicted.cap.close()
        if old is not None:
            old.cap.close()
        return entry

    def forget(self, folder: Path) -> None:
        with self._lock:
            entry = self._entries.pop(folder, None)
        if entry is not None:
            entry.cap.close()


_CAPTURES = _Captures()


def forget(folder: Path) -> None:
    """Close a capture the pages hold open (it is being deleted)."""
    _CAPTURES.forget(folder)


def _folder(capture_id: str) -> Path:
    folder = history.capture_folder(Path(current_app.config["LANXI_DATA_DIR"]), capture_id)
    if folder is None:
        abort(404)
    return folder


def _entry(capture_id: str) -> _Entry:
    folder = _folder(capture_id)
    try:
        return runtime.offload(_CAPTURES.get, folder)
    except CaptureError as exc:
        abort(_error(422, str(exc)))


def _error(status: int, message: str, field: str | None = None) -> Any:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


def _float_arg(name: str) -> float | None:
    text = request.args.get(name)
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        abort(_error(400, f"{name} must be a number", name))
    if value != value or value in (float("inf"), float("-inf")):
        abort(_error(400, f"{name} must be a finite number", name))
    return value


def _int_arg(name: str, default: int) -> int:
    text = request.args.get(name)
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        abort(_error(400, f"{name} must be an integer", name))


def _channel_arg(cap: Capture) -> str:
    key = request.args.get("channel") or (cap.channels[0].key if cap.channels else "")
    try:
        cap.channel(key)
    except KeyError:
        abort(_error(404, f"no channel {key!r}", "channel"))
    return key


# --- page -----------------------------------------------------------------------------------


@bp.get("/captures/<capture_id>")
@require_role("viewer")
def page(capture_id: str) -> Any:
    _folder(capture_id)
    from webapp.web.pages import PAGES

    return render_template(
        "capture.html",
        page="history",
        title=f"Capture {capture_id}",
        pages=PAGES,
        capture_id=capture_id,
    )


# --- JSON -----------------------------------------------------------------------------------


@bp.get("/api/captures/<capture_id>/analysis/report")
@require_role("viewer")
def report(capture_id: str) -> Any:
    entry = _entry(capture_id)
    checksums = request.args.get("checksums", "1") not in ("0", "false", "no")
    levels = request.args.get("levels", "0") not in ("0", "false", "no")

    def build() -> dict[str, Any]:
        with entry.lock:
            key = (checksums, levels)
            if key not in entry.reports:
                entry.reports[key] = build_report(entry.cap, checksums=checksums, levels=levels)
            return entry.reports[key]

    return jsonify(runtime.offload(build))


@bp.get("/api/captures/<capture_id>/analysis/channels")
@require_role("viewer")
def channels(capture_id: str) -> Any:
    cap = _entry(capture_id).cap
    ref = cap.start_ticks
    start, end = cap.span()
    c_start, c_end = cap.span(trim=True)
    return jsonify(
        {
            "id": cap.id,
            "name": cap.name,
            "title": cap.title,
            "test": cap.test,
            "start_ticks": ref,
            "span": [(start - ref) / 2**32, (end - ref) / 2**32],
            "common_span": [(c_start - ref) / 2**32, (c_end - ref) / 2**32],
            "modules": [m.to_dict() | {"channels": m.channels} for m in cap.modules.values()],
            "channels": [
                ch.metadata()
                | {
                    "start_s": (ch.start_ticks - ref) / 2**32,
                    "end_s": (ch.end_ticks - ref) / 2**32,
                    "lost": sum(g.missing for g in ch.gaps),
                }
                for ch in cap.channels
            ],
            "formats": list(FORMATS),
            "problems": [p.to_dict() for p in cap.problems],
        }
    )


@bp.get("/api/captures/<capture_id>/analysis/data")
@require_role("viewer")
def data(capture_id: str) -> Any:
    entry = _entry(capture_id)
    key = _channel_arg(entry.cap)
    start, end = _float_arg("start"), _float_arg("end")
    points = _int_arg("points", 2000)
    return jsonify(
        runtime.offload(views.time_data, entry.cap, key, start, end, points, entry.overview)
    )


@bp.get("/api/captures/<capture_id>/analysis/spectrum")
@require_role("viewer")
def spectrum(capture_id: str) -> Any:
    entry = _entry(capture_id)
    key = _channel_arg(entry.cap)
    start, end = _float_arg("start"), _float_arg("end")
    nfft = _int_arg("nfft", 8192)
    window = request.args.get("window", "hann")
    average = request.args.get("average", "linear")
    try:
        return jsonify(
            runtime.offload(views.spectrum, entry.cap, key, start, end, nfft, window, average)
        )
    except ValueError as exc:
        return _error(400, str(exc), str(exc).split(" ", 1)[0])


@bp.get("/api/captures/<capture_id>/analysis/bands")
@require_role("viewer")
def bands(capture_id: str) -> Any:
    from webapp.analysis.bands import window_bands

    entry = _entry(capture_id)
    key = _channel_arg(entry.cap)
    start, end = _float_arg("start"), _float_arg("end")
    fraction = _int_arg("fraction", 3)
    try:
        return jsonify(runtime.offload(window_bands, entry.cap, key, start, end, fraction))
    except ValueError as exc:
        return _error(400, str(exc), "fraction")


def _frf_args(cap: Capture) -> tuple[str, list[str], float | None, float | None, int]:
    reference = request.args.get("reference", "")
    responses = request.args.getlist("response")
    for field, key in [("reference", reference)] + [("response", k) for k in responses]:
        try:
            cap.channel(key)
        except KeyError:
            abort(_error(404, f"no channel {key!r}", field))
    return reference, responses, _float_arg("start"), _float_arg("end"), _int_arg("nfft", 4096)


def _frf(capture_id: str) -> tuple[Capture, Any, dict[str, Any]]:
    from webapp.analysis import frf as capture_frf

    cap = _entry(capture_id).cap
    reference, responses, start, end, nfft = _frf_args(cap)
    try:
        result, facts = runtime.offload(
            capture_frf.compute, cap, reference, responses, start, end, nfft
        )
    except ValueError as exc:
        abort(_error(400, str(exc), "nfft" if str(exc).startswith("nfft") else "response"))
    return cap, result, facts


@bp.get("/api/captures/<capture_id>/analysis/frf")
@require_role("viewer")
def frf(capture_id: str) -> Any:
    """H1, H2 and coherence of responses against a reference channel (magnitude dB re 1,
    phase in degrees)."""
    from webapp.analysis import frf as capture_frf

    _cap, result, facts = _frf(capture_id)
    return jsonify(capture_frf.as_json(result, facts))


@bp.get("/api/captures/<capture_id>/analysis/frf.uff")
@require_role("viewer")
def frf_uff(capture_id: str) -> Any:
    """The same FRF as UFF dataset 58 function records (H1 and coherence per response)."""
    from webapp.analysis import frf as capture_frf

    cap, result, facts = _frf(capture_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frf.uff"
        runtime.offload(capture_frf.uff58, path, result, facts, cap.name)
        payload = runtime.offload(path.read_bytes)
    name = f"{cap.name} FRF.uff"
    return send_file(io.BytesIO(payload), as_attachment=True, download_name=name, max_age=0)


@bp.get("/api/captures/<capture_id>/analysis/quality")
@require_role("viewer")
def quality(capture_id: str) -> Any:
    return jsonify(views.quality_timeline(_entry(capture_id).cap))


@bp.get("/api/captures/<capture_id>/analysis/export")
@require_role("viewer")
def download(capture_id: str) -> Any:
    folder = _folder(capture_id)
    entry = _entry(capture_id)
    cap = entry.cap
    fmt, per, sel = _export_args(cap)
    params = f"{fmt}|{per}|{sel.trim}|{','.join(sel.keys)}|{sel.start}|{sel.end}|{entry.signature}"
    tag = hashlib.sha256(params.encode()).hexdigest()[:16]
    outdir = folder / EXPORT_DIR
    try:
        path = runtime.offload(_export_file, cap, outdir, tag, fmt, per, sel, entry.export_lock)
    except ExportError as exc:
        return _error(422, str(exc))
    response = send_file(
        path, as_attachment=True, download_name=path.name.split("~", 1)[1], max_age=0
    )
    token = request.args.get("token", "")
    if re.fullmatch(r"[A-Za-z0-9]{1,32}", token):
        # The page that asked for the file learns that it has arrived (a plain download link
        # has no other way to tell): it watches for this cookie.
        response.set_cookie(f"lanxi_download_{token}", "1", max_age=600, samesite="Strict")
    return response


@bp.get("/api/captures/<capture_id>/analysis/export/estimate")
@require_role("viewer")
def estimate(capture_id: str) -> Any:
    """Size of an export, or (422) why the format cannot take it, before anything is written."""
    cap = _entry(capture_id).cap
    fmt, per, sel = _export_args(cap)
    try:
        check(cap, sel, fmt, per)
    except ExportError as exc:
        return _error(422, str(exc))
    return jsonify({"format": fmt, "bytes": estimate_bytes(cap, sel, fmt)})


def _export_args(cap: Capture) -> tuple[str, str, Selection]:
    fmt = request.args.get("format", "")
    if fmt not in FORMATS:
        abort(_error(400, f"format must be one of {', '.join(FORMATS)}", "format"))
    per = request.args.get("per", "module")
    if per not in ("module", "channel"):
        abort(_error(400, "per must be module or channel", "per"))
    trim = request.args.get("trim", "0") in ("1", "true", "yes", "on")
    keys = [k for k in (request.args.get("channels") or "").split(",") if k] or None
    for key in keys or []:
        try:
            cap.channel(key)
        except KeyError:
            abort(_error(404, f"no channel {key!r}", "channels"))
    start, duration = _float_arg("start"), _float_arg("duration")
    try:
        return fmt, per, select(cap, keys, trim, start, duration)
    except ExportError as exc:
        abort(_error(422, str(exc)))


def _export_file(
    cap: Capture, outdir: Path, tag: str, fmt: str, per: str, sel: Selection, lock: threading.Lock
) -> Path:
    """The export as one file (cached under its parameters; several files are zipped)."""
    with lock:
        outdir.mkdir(exist_ok=True)
        for existing in outdir.glob(f"{tag}~*"):
            return existing
        # Older exports of this capture are dropped: one cached export per capture.
        for old in outdir.iterdir():
            if old.is_file():
                old.unlink()
            else:
                shutil.rmtree(old, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=".work-", dir=outdir))
        try:
            result = export(
                cap,
                fmt,
                work,
                keys=sel.keys,
                trim=sel.trim,
                start_s=(sel.start - cap.start_ticks) / 2**32,
                duration_s=(sel.end - sel.start) / 2**32,
                per=per,
            )
            if len(result.paths) == 1:
                final = outdir / f"{tag}~{result.paths[0].name}"
                os.replace(result.paths[0], final)
            else:
                final = outdir / f"{tag}~{_zip_name(cap, fmt)}"
                partial = work / "export.zip"
                with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                    for p in result.paths:
                        z.write(p, p.name)
                os.replace(partial, final)
            return final
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _zip_name(cap: Capture, fmt: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in cap.name) or "capture"
    return f"{safe}.{fmt}.zip"
