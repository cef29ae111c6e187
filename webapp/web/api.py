"""The JSON HTTP API the pages use and a script can use (documented in docs/api.md)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file

from webapp.capture.channeltable import write_csv
from webapp.capture.schemas import FieldError
from webapp.engine import schemas
from webapp.engine.control import RequestError
from webapp.web import bodies, history, manage
from webapp.web.access.guards import require_role

bp = Blueprint("api", __name__, url_prefix="/api")


def dash() -> Any:
    return current_app.extensions["lanxi"]


def _body() -> dict[str, Any]:
    """The request's JSON object (empty body: ``{}``), checked by :mod:`webapp.web.bodies`."""
    try:
        return bodies.http_object()
    except bodies.BodyError as exc:
        raise RequestError(exc.field, exc.message, exc.status) from None


_object_body = _body


@bp.errorhandler(RequestError)
def _request_error(exc: RequestError) -> Any:
    return jsonify(exc.to_json()), exc.status


@bp.errorhandler(FieldError)
def _field_error(exc: FieldError) -> Any:
    """A body its model refused (webapp/engine/schemas.py), a rig or setup change refused."""
    out = {"error": exc.message}
    if exc.field:
        out["field"] = exc.field
    return jsonify(out), 400


@bp.errorhandler(404)
def _not_found(_: Any) -> Any:
    return jsonify(error="not found"), 404


@bp.errorhandler(405)
def _not_allowed(_: Any) -> Any:
    return jsonify(error="method not allowed"), 405


# --- state ---------------------------------------------------------------------------------


@bp.get("/state")
@require_role("viewer")
def get_state() -> Any:
    return jsonify(dash().snapshot())


# --- rig -----------------------------------------------------------------------------------


@bp.get("/rig")
@require_role("viewer")
def get_rig() -> Any:
    return jsonify(dash().rig.view())


@bp.post("/rig/modules")
@require_role("admin")
def add_module() -> Any:
    address = schemas.check(schemas.RigModule, _object_body()).address
    # A module of this dashboard's own emulator stays marked as such when added back.
    emulated = dash().faults.emulates(address)
    dash().rig.add(address, emulated=emulated)
    return jsonify(dash().rig.view()), 201


@bp.post("/rig/discover")
@require_role("admin")
def discover_modules() -> Any:
    from webapp.web.discovery import DiscoveryError, find_modules

    in_rig = {m["address"] for m in dash().rig.view()["modules"]}
    try:
        found = find_modules(in_rig, current_app.config.get("LANXI_MDNS_INTERFACE"))
    except DiscoveryError as exc:
        return jsonify(error=f"finding modules failed: {exc}"), 502
    return jsonify(modules=found)


@bp.delete("/rig/modules/<path:address>")
@require_role("admin")
def remove_module(address: str) -> Any:
    dash().rig.remove(address)
    return jsonify(dash().rig.view())


@bp.post("/rig/modules/<path:address>/return-to-idle")
@require_role("operator")
def return_to_idle(address: str) -> Any:
    return jsonify(dash().control.return_to_idle(address))


@bp.put("/rig")
@require_role("operator")
def configure_rig() -> Any:
    body = schemas.check(schemas.RigConfig, _object_body())
    dash().rig.configure(master=body.master, ptp_domain=body.ptp_domain)
    return jsonify(dash().rig.view())


@bp.post("/rig/refresh")
@require_role("operator")
def refresh_rig() -> Any:
    dash().rig.probe_all()
    return jsonify(dash().rig.view()), 202


# --- setup ---------------------------------------------------------------------------------


@bp.get("/setup")
@require_role("viewer")
def get_setup() -> Any:
    return jsonify(dash().setup_view())


@bp.put("/setup")
@require_role("operator")
def put_setup() -> Any:
    dash().setups.update(_body())
    dash().publish_setup()
    return jsonify(dash().setup_view())


@bp.get("/setup/channels.csv")
@require_role("viewer")
def get_channel_table() -> Any:
    text = write_csv(dash().setups.for_rig(dash().rig.view()["modules"])["channels"])
    return _download(text, "text/csv", "channels.csv")


@bp.put("/setup/channels.csv")
@require_role("operator")
def put_channel_table() -> Any:
    """The table as ``text/csv``, or JSON ``{"csv": "..."}``."""
    if request.mimetype == "text/csv":
        text = request.get_data(as_text=True)
    else:
        text = schemas.check(schemas.ChannelTableImport, _body()).csv
    result = manage.import_table(dash().setups, dash().rig.view()["modules"], text)
    dash().publish_setup()
    return jsonify(imported=result, **dash().setup_view())


@bp.get("/setup/file")
@require_role("viewer")
def get_setup_file() -> Any:
    """The current setup as a JSON file; ``PUT /api/setup`` takes it back."""
    body = json.dumps(dash().setups.current(), indent=2, ensure_ascii=False) + "\n"
    return _download(body, "application/json", "setup.json")


def _download(body: str, mimetype: str, filename: str) -> Response:
    """``body`` as a file the browser saves under ``filename``."""
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/setup/detect")
@require_role("operator")
def detect() -> Any:
    return jsonify(dash().control.detect()), 202


@bp.get("/setups")
@require_role("viewer")
def list_setups() -> Any:
    return jsonify(setups=dash().setups.names())


@bp.post("/setups")
@require_role("operator")
def save_setup() -> Any:
    saved = dash().setups.save_as(schemas.check(schemas.SetupSave, _body()).name)
    dash().publish_setup()
    return jsonify(name=saved, setups=dash().setups.names()), 201


@bp.post("/setups/<name>/load")
@require_role("operator")
def load_setup(name: str) -> Any:
    dash().setups.load(name)
    dash().publish_setup()
    return jsonify(dash().setup_view())


@bp.delete("/setups/<name>")
@require_role("operator")
def delete_setup(name: str) -> Any:
    dash().setups.delete(name)
    dash().publish_setup()
    return jsonify(setups=dash().setups.names())


# --- capture control -----------------------------------------------------------------------


@bp.post("/capture/arm")
@require_role("operator")
def arm() -> Any:
    return jsonify(dash().control.arm(_body())), 202


@bp.post("/capture/start")
@require_role("operator")
def start() -> Any:
    return jsonify(dash().control.start(_body())), 202


@bp.post("/capture/stop")
@require_role("operator")
def stop() -> Any:
    return jsonify(dash().control.stop()), 202


@bp.get("/generator")
@require_role("viewer")
def generator_state() -> Any:
    return jsonify({"generator": dash().state.get("generator")})


@bp.post("/generator/start")
@require_role("operator")
def generator_start() -> Any:
    return jsonify(dash().control.start_outputs(_body()))


@bp.post("/generator/stop")
@require_role("operator")
def generator_stop() -> Any:
    return jsonify(dash().control.stop_outputs(_body()))


@bp.post("/capture/monitor")
@require_role("operator")
def monitor() -> Any:
    return jsonify(dash().control.monitor(_body())), 202


@bp.post("/capture/record")
@require_role("operator")
def record() -> Any:
    return jsonify(dash().control.record(_body())), 202


@bp.post("/capture/stop-recording")
@require_role("operator")
def stop_recording() -> Any:
    return jsonify(dash().control.stop_recording()), 202


@bp.post("/capture/trigger")
@require_role("operator")
def trigger_now() -> Any:
    return jsonify(dash().control.trigger_now()), 202


@bp.post("/capture/disarm")
@require_role("operator")
def disarm() -> Any:
    return jsonify(dash().control.disarm()), 202


# --- history -------------------------------------------------------------------------------


@bp.get("/captures")
@require_role("viewer")
def list_captures() -> Any:
    """``?q=`` words to search for, ``?tag=`` (repeatable) tags a capture must have."""
    query, tags = request.args.get("q", ""), request.args.getlist("tag")
    found = history.list_captures(dash().data_dir)
    return jsonify(captures=[c for c in found if history.matches(c, query, tags)])


@bp.patch("/captures/<capture_id>")
@require_role("operator")
def edit_capture(capture_id: str) -> Any:
    return jsonify(manage.edit(dash().data_dir, dash().orchestrator, capture_id, _body()))


@bp.delete("/captures/<capture_id>")
@require_role("operator")
def delete_capture(capture_id: str) -> Any:
    return jsonify(manage.delete(dash().data_dir, dash().orchestrator, capture_id, _body()))


@bp.get("/captures/<capture_id>")
@require_role("viewer")
def get_capture(capture_id: str) -> Any:
    detail = history.capture_detail(dash().data_dir, capture_id)
    if detail is None:
        return jsonify(error=f"no capture {capture_id!r}", field="id"), 404
    return jsonify(detail)


@bp.get("/captures/<capture_id>/files/<name>")
@require_role("viewer")
def download(capture_id: str, name: str) -> Any:
    path = history.capture_file(dash().data_dir, capture_id, name)
    if path is None:
        abort(404)
    return send_file(path, as_attachment=True, download_name=name, max_age=0)


# --- emulated modules ----------------------------------------------------------------------


@bp.get("/emulator/faults")
@require_role("viewer")
def list_faults() -> Any:
    return jsonify(dash().faults.view())


@bp.post("/emulator/faults")
@require_role("operator")
def inject_fault() -> Any:
    return jsonify(dash().faults.inject(_body())), 201


@bp.delete("/emulator/faults")
@require_role("operator")
def clear_faults() -> Any:
    return jsonify(dash().faults.clear(schemas.check(schemas.FaultClear, _body()).module))
