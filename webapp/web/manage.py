"""What the web layer adds to managing captures and the channel table: the request rules
(webapp/engine/schemas.py), the checks that need the rig or the orchestrator, the audit entries.

* :func:`edit` — ``PATCH /api/captures/<id>``: title and test metadata of an ended capture;
* :func:`delete` — ``DELETE /api/captures/<id>``: only with ``{"id": "<id>", "confirm": true}``,
  only for a capture that is not being recorded; the files are removed off the hub;
* :func:`import_table` — ``PUT /api/setup/channels.csv``: a channel table's labels into the
  stored setup, each row checked against the rig (row and column named when refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.capture import manage
from webapp.capture.channeltable import TableError, TableRow, parse_csv
from webapp.capture.labels import LABEL_FIELDS
from webapp.capture.schemas import address_key
from webapp.capture.store import CaptureRunning
from webapp.engine import schemas
from webapp.engine.control import RequestError
from webapp.web import history
from webapp.web.access.audit import audit


def _folder(data_dir: Path, capture_id: str) -> Path:
    folder = history.capture_folder(data_dir, capture_id)
    if folder is None:
        raise RequestError("id", f"no capture {capture_id!r}", 404)
    return folder


def _not_current(orchestrator: Any, capture_id: str) -> None:
    """The orchestrator's own word, before capture.json's: this capture is being recorded."""
    if capture_id == getattr(orchestrator, "current_capture_id", None) and getattr(
        orchestrator, "recording", False
    ):
        raise RequestError("id", f"{capture_id} is being recorded; stop it first", 409)


def edit(data_dir: Path, orchestrator: Any, capture_id: str, body: Any) -> dict[str, Any]:
    req = schemas.check(schemas.CaptureEdit, body)
    folder = _folder(data_dir, capture_id)
    _not_current(orchestrator, capture_id)
    try:
        runtime.offload(manage.edit_capture, folder, req.title, req.test)
    except CaptureRunning as exc:
        raise RequestError("id", f"{capture_id}: {exc}; change it once it has ended", 409) from None
    except (OSError, ValueError) as exc:
        raise RequestError(
            "id", f"{capture_id}: capture.json cannot be changed: {exc}", 422
        ) from None
    changed = sorted(req.model_fields_set)
    audit("capture-edited", capture_id=capture_id, changed=changed)
    detail = history.capture_detail(data_dir, capture_id)
    assert detail is not None
    return detail["summary"]


def delete(data_dir: Path, orchestrator: Any, capture_id: str, body: Any) -> dict[str, Any]:
    """The confirmed deletion of one capture: the body names it again (``id``) and says
    ``confirm: true``, so no request that merely reaches the URL deletes anything."""
    req = schemas.check(schemas.CaptureDelete, body)
    if req.id != capture_id:
        raise RequestError("id", f"the body names {req.id!r}, not the capture {capture_id!r}")
    if not req.confirm:
        raise RequestError("confirm", 'nothing deleted: confirm with "confirm": true')
    folder = _folder(data_dir, capture_id)
    _not_current(orchestrator, capture_id)
    try:
        trash, held = manage.take_away(folder)
    except CaptureRunning as exc:
        raise RequestError("id", f"{capture_id}: {exc}", 409) from None
    except OSError as exc:
        raise RequestError("id", f"{capture_id} could not be deleted: {exc}", 500) from None
    forget_capture(folder)
    try:
        runtime.offload(manage.remove_trash, trash)
    except OSError as exc:  # gone from History already; the leftovers go at the next start
        audit("capture-deleted", capture_id=capture_id, **held, leftover=str(exc))
        return {"deleted": capture_id, **held, "leftover": str(exc)}
    audit("capture-deleted", capture_id=capture_id, **held)
    return {"deleted": capture_id, **held}


def forget_capture(folder: Path) -> None:
    """Drop what the analysis pages hold open of a capture folder."""
    try:
        from webapp.web.analysis_api import forget
    except ModuleNotFoundError:
        return
    forget(folder)


# --- the channel table -------------------------------------------------------------------------


def import_table(setups: Any, rig_modules: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """Merge a channel table's labels into the stored setup: each listed channel takes the
    row's labels, the other channels keep theirs. Nothing changes when a row is refused."""
    rows = parse_csv(text)
    by_key = {address_key(m["address"]): m for m in rig_modules}
    setup = setups.for_rig(rig_modules)
    change: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        module = by_key.get(address_key(row.module))
        if module is None:
            known = ", ".join(m["address"] for m in rig_modules) or "none"
            raise TableError(
                row.row, "module", f"{row.module} is not in the rig (its modules: {known})"
            )
        address = module["address"]
        channels = change.setdefault(address, [dict(r) for r in setup["channels"].get(address, [])])
        _set_row(channels, row, (module.get("info") or {}).get("input_channels"))
    setups.update({"channels": change})
    return {"rows": len(rows), "modules": sorted(change)}


def _set_row(channels: list[dict[str, Any]], row: TableRow, count: int | None) -> None:
    if count and row.channel > count:
        raise TableError(
            row.row, "channel", f"{row.module} has {count} input channels, not {row.channel}"
        )
    target = next((r for r in channels if r["channel"] == row.channel), None)
    if target is None:
        from webapp.engine.setups import default_channel

        target = default_channel(row.channel)
        channels.append(target)
        channels.sort(key=lambda r: r["channel"])
    target.update({k: row.label[k] for k in LABEL_FIELDS})
