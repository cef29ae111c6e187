"""HTTP API of the transducer database and the calibration check (docs/api.md), and its page.

Translation only: the rules are :mod:`webapp.calibration` (the same the ``calibrate`` command
uses). Reading is viewer-level; changing the database and running a check (it drives a
module) are operator-level, and every change is written to the audit log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template

from webapp.calibration.check import run_check
from webapp.calibration.database import TransducerDatabase
from webapp.calibration.measure import (
    DEFAULT_TOLERANCE_DB,
    STANDARD_REFERENCES,
    CalibrationError,
    check_tolerance,
)
from webapp.calibration.records import detection_subscriber
from webapp.capture.schemas import FieldError
from webapp.engine.control import RequestError
from webapp.openapi.client import ModuleError
from webapp.web import bodies
from webapp.web.access.audit import audit
from webapp.web.access.guards import require_role
from webapp.web.access.identity import current_user

bp = Blueprint("transducers", __name__)

DB_KEY = "transducers"


def database() -> TransducerDatabase:
    """The dashboard's database (one per app, in its data dir)."""
    return _database_of(current_app.extensions["lanxi"])


def _database_of(dash: Any) -> TransducerDatabase:
    db = dash.extras.get(DB_KEY)
    if db is None:
        db = dash.extras[DB_KEY] = TransducerDatabase(dash.data_dir)
    return db


def watch_detections(dash: Any) -> None:
    """TEDS transducers found by the orchestrator's detections go into the database."""
    dash.bus.subscribe(detection_subscriber(_database_of(dash)))


def _body() -> dict[str, Any]:
    try:
        return bodies.http_object()
    except bodies.BodyError as exc:
        raise RequestError(exc.field, exc.message, exc.status) from None


def _user() -> str:
    return current_user() or "local"


def _error(status: int, message: str, field: str | None = None) -> Any:
    out: dict[str, Any] = {"error": message}
    if field:
        out["field"] = field
    return jsonify(out), status


@bp.errorhandler(RequestError)
def _request_error(exc: RequestError) -> Any:
    return jsonify(exc.to_json()), exc.status


@bp.errorhandler(FieldError)
def _field_error(exc: FieldError) -> Any:
    return _error(400, exc.message, exc.field)


@bp.errorhandler(KeyError)
def _unknown(exc: KeyError) -> Any:
    return _error(404, f"transducer {exc.args[0]} is not in the database")


# --- page ----------------------------------------------------------------------------------


@bp.get("/transducers")
@require_role("viewer")
def page() -> Any:
    from webapp.web.pages import PAGES

    return render_template("transducers.html", page="transducers", title="Transducers", pages=PAGES)


# --- database ------------------------------------------------------------------------------


@bp.get("/api/transducers")
@require_role("viewer")
def list_transducers() -> Any:
    view = database().view()
    view["references"] = list(STANDARD_REFERENCES)
    view["tolerance_db"] = DEFAULT_TOLERANCE_DB
    return jsonify(view)


@bp.get("/api/transducers/<transducer>")
@require_role("viewer")
def get_transducer(transducer: str) -> Any:
    return jsonify(database().get(transducer).to_json())


@bp.post("/api/transducers")
@require_role("operator")
def add_transducer() -> Any:
    entry = database().put(_body(), _user())
    audit("transducer-add", transducer=entry.id, sensitivity=entry.sensitivity)
    return jsonify(entry.to_json()), 201


@bp.put("/api/transducers/<transducer>")
@require_role("operator")
def change_transducer(transducer: str) -> Any:
    entry = database().put(_body(), _user(), replace_id=transducer)
    audit("transducer-change", transducer=entry.id, sensitivity=entry.sensitivity)
    return jsonify(entry.to_json())


@bp.delete("/api/transducers/<transducer>")
@require_role("operator")
def remove_transducer(transducer: str) -> Any:
    database().remove(transducer)
    audit("transducer-remove", transducer=transducer)
    return jsonify(database().view())


@bp.post("/api/transducers/import")
@require_role("operator")
def import_csv() -> Any:
    text = _body().get("csv")
    if not isinstance(text, str):
        raise FieldError("csv", "csv must be the file's text")
    entries = database().import_csv(text, _user())
    audit("transducer-import", count=len(entries))
    return jsonify({"imported": [e.id for e in entries], **database().view()})


@bp.post("/api/transducers/<transducer>/accept-teds")
@require_role("operator")
def accept_teds(transducer: str) -> Any:
    entry = database().accept_teds(transducer, _user())
    audit("transducer-accept-teds", transducer=entry.id, sensitivity=entry.sensitivity)
    return jsonify(entry.to_json())


# --- calibration ---------------------------------------------------------------------------


@bp.post("/api/calibration/check")
@require_role("operator")
def calibration_check() -> Any:
    body = _body()
    dash = current_app.extensions["lanxi"]
    address = body.get("address")
    in_rig = [m["address"] for m in dash.rig.view()["modules"]]
    if address not in in_rig:
        raise FieldError("address", "address must be a module of the rig")
    channel = body.get("channel")
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 1:
        raise FieldError("channel", "channel must be a channel number from 1")
    if dash.orchestrator.busy or dash.orchestrator.armed:
        return _error(409, "a capture or monitoring is running: stop it for a calibration check")
    try:
        tolerance = check_tolerance(body.get("tolerance_db", DEFAULT_TOLERANCE_DB))
        check = run_check(
            database(),
            address,
            channel,
            str(body.get("reference") or ""),
            transducer=body.get("transducer") or None,
            tolerance_db=tolerance,
            seconds=float(body.get("seconds", 1.0)),
        )
    except CalibrationError as exc:
        return _error(422, str(exc))
    except ModuleError as exc:
        return _error(502, str(exc))
    except (TypeError, ValueError):
        raise FieldError("seconds", "seconds must be a number") from None
    return jsonify(check.to_json())


@bp.post("/api/transducers/<transducer>/calibrations")
@require_role("operator")
def store_calibration(transducer: str) -> Any:
    body = _body()
    deviation = body.get("deviation_db")
    passed = body.get("passed")
    entry = database().record_calibration(
        transducer,
        sensitivity=body.get("sensitivity"),  # type: ignore[arg-type]  # checked there
        user=_user(),
        reference=str(body.get("reference") or ""),
        deviation_db=float(deviation) if isinstance(deviation, (int, float)) else None,
        passed=passed if isinstance(passed, bool) else None,
        due=body.get("due"),
    )
    audit(
        "calibration-store",
        transducer=entry.id,
        sensitivity=entry.sensitivity,
        reference=body.get("reference"),
        deviation_db=deviation,
    )
    return jsonify(entry.to_json()), 201
