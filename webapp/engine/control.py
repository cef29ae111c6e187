"""Turn requests (HTTP bodies, Socket.IO control events) into orchestrator calls.

A request is checked by its model in :mod:`webapp.engine.schemas`, and the capture settings it
makes by ``CaptureSettings.validate()`` before anything is sent to a module, so a bad request
gets a 4xx naming the field and nothing starts.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from webapp.capture.labels import has_label, label_row, merge_test, name_from_template, names_in
from webapp.capture.schemas import FieldError
from webapp.capture.store import CAPTURES_DIR
from webapp.capture.waveform_streams import CLIENT_KEYS
from webapp.engine import schemas
from webapp.engine.rig import RigStore
from webapp.engine.setups import SetupStore
from webapp.engine.state import LiveState

log = logging.getLogger(__name__)


class RequestError(FieldError):
    """A request that cannot be carried out; ``status`` is the HTTP status to answer with."""

    def __init__(self, field: str | None, message: str, status: int = 400):
        super().__init__(field, message)
        self.status = status

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.field:
            out["field"] = self.field
        return out


def _no_server_files(generators: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Refuse a streamed waveform read from a file on the server: a request from a browser
    must not make the dashboard open paths of its choosing. Files are streamed from the
    ``capture`` command (``--generator-waveform``), run by whoever owns them."""
    for address, outputs in generators.items():
        for j, output in enumerate(outputs):
            for item in output.get("inputs", []) or []:
                if isinstance(item, dict) and any(k in item for k in CLIENT_KEYS):
                    raise RequestError(
                        f"generators.{address}[{j}]",
                        f"{address} output {output.get('number')}: a streamed waveform file can "
                        "only be played from the capture command (--generator-waveform), not "
                        "from the dashboard",
                    )
    return generators


class Control:
    def __init__(self, orchestrator: Any, rig: RigStore, setups: SetupStore, state: LiveState):
        self.orchestrator = orchestrator
        self.rig = rig
        self.setups = setups
        self.state = state

    # --- settings ----------------------------------------------------------------------------

    def settings_from(self, body: Any) -> Any:
        """CaptureSettings from the rig, the stored setup and the request's overrides; the
        request is a :class:`webapp.engine.schemas.StartRequest`, the result checks itself with
        the capture settings' model (one set of rules for HTTP, Socket.IO and the CLI)."""
        from webapp.capture.settings import CaptureSettings

        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise RequestError(None, "the request body must be a JSON object")
        try:
            req = schemas.check(schemas.StartRequest, body)
        except FieldError as exc:
            raise RequestError(exc.field, exc.message) from None

        modules = req.modules if req.modules is not None else self.rig.ordered_addresses()
        if not modules:
            raise RequestError("modules", "no modules: add modules to the rig or list them")

        setup = self.setups.current()
        if req.setup is not None:
            override = schemas.setup_json(req.setup, partial=True)
            setup.update({k: v for k, v in override.items() if k != "channels"})
            setup["channels"].update(override.get("channels", {}))

        test = merge_test(setup.get("test"), req.test)
        settings = CaptureSettings(
            modules=modules,
            name=self._name(req, setup, test),
            duration_s=req.duration_s,
            ptp_domain=req.ptp_domain if req.ptp_domain is not None else self.rig.domain,
            bandwidth=setup["bandwidth"],
            channels={
                a: [self._channel_settings(row) for row in setup["channels"][a]]
                for a in modules
                if setup["channels"].get(a)
            },
            multi_socket=setup["multi_socket"],
            on_stream_drop=req.on_stream_drop,
            disk_margin_s=req.disk_margin_s,
            labels={
                a: [label_row(row) for row in setup["channels"][a] if has_label(row)]
                for a in modules
                if setup["channels"].get(a)
            },
            test=test,
            generators=_no_server_files(
                {
                    a: [o.model_dump(exclude_unset=True) for o in outputs]
                    for a, outputs in req.generators.items()
                }
            ),
        )
        if req.ptp_timeout_s is not None:
            settings.ptp_timeout_s = req.ptp_timeout_s
        try:
            settings.validate()
        except FieldError as exc:
            raise RequestError(exc.field, exc.message) from None
        return settings

    def _name(self, req: Any, setup: dict[str, Any], test: dict[str, Any]) -> str:
        """The request's name, or (none given) the one the setup's file-name template makes."""
        template = (setup.get("test") or {}).get("name_template") or ""
        if "name" in req.model_fields_set or not template:
            return str(req.name)
        folder = self.setups.path.parent / CAPTURES_DIR
        try:
            taken = names_in(os.listdir(folder))
        except OSError:
            taken = set()
        try:
            return name_from_template(template, test, str(req.name), taken)
        except ValueError as exc:
            raise RequestError("setup.test.name_template", str(exc)) from None

    @staticmethod
    def _channel_settings(row: dict[str, Any]) -> Any:
        from webapp.capture.settings import ChannelSettings

        kwargs: dict[str, Any] = {"channel": row["channel"], "enabled": row["enabled"]}
        for key in ("range", "filter", "ccld", "polvolt"):
            if row.get(key) is not None:
                kwargs[key] = row[key]
        manual = row.get("transducer")
        if manual:
            kwargs["transducer"] = {
                "sensitivity": float(manual["sensitivity"]),
                "unit": manual.get("unit", "V"),
                "serialNumber": int(manual.get("serial", 0)),
                "type": manual.get("type") or None,
            }
        return ChannelSettings(**kwargs)

    # --- actions -----------------------------------------------------------------------------

    def arm(self, body: Any) -> dict[str, Any]:
        settings = self.settings_from(body)
        if self.orchestrator.armed:
            raise RequestError(None, "already armed; disarm first to arm another rig", 409)
        self._call("arm", self.orchestrator.arm, settings)
        return {"ok": True, "phase": str(self.orchestrator.phase)}

    def start(self, body: Any) -> dict[str, Any]:
        settings = self.settings_from(body)
        capture_id = self._call("start", self.orchestrator.start, settings)
        return {"ok": True, "capture_id": capture_id, "phase": str(self.orchestrator.phase)}

    def plan_from(self, body: Any) -> Any:
        """A recording plan from a request (the rules are RecordPlan's and TriggerSpec's, the
        same for HTTP, Socket.IO and the terminal)."""
        from webapp.capture.settings import SettingsError
        from webapp.capture.trigger import RecordPlan, TriggerSpec

        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise RequestError(None, "the request body must be a JSON object")
        try:
            req = schemas.check(schemas.RecordRequest, body)
            setup = self.setups.current()
            plan = RecordPlan(
                name=self._name(req, setup, merge_test(setup.get("test"), req.test)),
                mode=req.mode,
                duration_s=req.duration_s,
                trigger=TriggerSpec.from_json(req.trigger) if req.trigger is not None else None,
                pre_trigger_s=req.pre_trigger_s,
                events=req.events,
                hold_off_s=req.hold_off_s,
                segment_s=req.segment_s,
                start_at=req.start_at,
                test=merge_test(setup.get("test"), req.test) if req.test is not None else None,
            )
            plan.validate()
        except (FieldError, SettingsError) as exc:
            raise RequestError(exc.field, exc.message) from None
        return plan

    def monitor(self, body: Any) -> dict[str, Any]:
        """Start the measurement and show it live (arming first when idle); with a plan
        (``record`` in the body), record by it at once."""
        body = body if isinstance(body, dict) else {}
        plan = self.plan_from(body["record"]) if body.get("record") else None
        settings = (
            None
            if self.orchestrator.armed
            else self.settings_from({k: v for k, v in body.items() if k != "record"})
        )
        measurement = self._call("monitor", self.orchestrator.monitor, settings, plan)
        return {"ok": True, "measurement": measurement, "phase": str(self.orchestrator.phase)}

    def record(self, body: Any) -> dict[str, Any]:
        plan = self.plan_from(body)
        self._call("record", self.orchestrator.record_window, plan)
        return {"ok": True, "phase": str(self.orchestrator.phase)}

    def stop_recording(self) -> dict[str, Any]:
        self._call("stop recording", self.orchestrator.stop_window)
        return {"ok": True}

    def trigger_now(self) -> dict[str, Any]:
        self._call("trigger", self.orchestrator.trigger_now)
        return {"ok": True}

    def stop(self) -> dict[str, Any]:
        self._call("stop", self.orchestrator.stop)
        return {"ok": True, "phase": str(self.orchestrator.phase)}

    def disarm(self) -> dict[str, Any]:
        if self.orchestrator.busy and not self.orchestrator.armed:
            raise RequestError(None, "a capture is running; stop it first", 409)
        self._call("disarm", self.orchestrator.disarm)
        return {"ok": True, "phase": str(self.orchestrator.phase)}

    def detect(self) -> dict[str, Any]:
        """Re-run TEDS detection. Detection happens while arming (the modules must be opened
        and created for it), so on an idle rig this arms it with the current setup."""
        if self.orchestrator.armed:
            raise RequestError(
                None, "the rig is armed with the detection it made; disarm to detect again", 409
            )
        return self.arm({})

    def return_to_idle(self, address: str) -> dict[str, Any]:
        """Bring a rig module that another program left open back to Idle (see
        ``Orchestrator.return_to_idle``); its facts are read again afterwards either way."""
        if address not in self.rig.ordered_addresses():
            raise RequestError("address", f"{address} is not in the rig", 404)
        try:
            sent = self._call(
                "return the module to Idle", self.orchestrator.return_to_idle, address
            )
        finally:
            self.rig.probe(address)
        return {"address": address, "sent": sent, "rig": self.rig.view()}

    # --- generator outputs by hand (webapp/capture/outputs.py) --------------------------------

    def start_outputs(self, body: Any) -> dict[str, Any]:
        """Start generator outputs by hand: checked by the one generator model, then the rig."""
        try:
            req = schemas.check(schemas.GeneratorStart, body if body is not None else {})
        except FieldError as exc:
            raise RequestError(exc.field, exc.message) from None
        rig = self.rig.ordered_addresses()
        settings = getattr(self.orchestrator, "settings", None)
        armed = list(settings.modules) if self.orchestrator.armed and settings else []
        for address in req.generators:
            if address not in rig and address not in armed:
                raise RequestError(f"generators.{address}", f"{address} is not in the rig")
        generators = _no_server_files(
            {
                a: [o.model_dump(exclude_unset=True) for o in outputs]
                for a, outputs in req.generators.items()
            }
        )
        self._call("start the generator outputs", self.orchestrator.start_outputs, generators, rig)
        return {"ok": True, "generator": self.state.get("generator")}

    def stop_outputs(self, body: Any) -> dict[str, Any]:
        try:
            req = schemas.check(schemas.GeneratorStop, body if body is not None else {})
        except FieldError as exc:
            raise RequestError(exc.field, exc.message) from None
        rig = self.rig.ordered_addresses()
        self._call("stop the generator outputs", self.orchestrator.stop_outputs, req.outputs, rig)
        return {"ok": True, "generator": self.state.get("generator")}

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from webapp.capture.settings import SettingsError
        from webapp.openapi.client import ModuleError

        try:
            return fn(*args)
        except ModuleError as exc:  # a module refused or did not answer: nothing was started
            raise RequestError("modules", str(exc), 502) from None
        except SettingsError as exc:
            raise RequestError(exc.field, exc.message) from None
        except RuntimeError as exc:  # the orchestrator refuses a step its state does not allow
            raise RequestError(None, f"cannot {what}: {exc}", 409) from None

    def socket_action(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        try:
            if action == "arm":
                return self.arm(data)
            if action == "start":
                return self.start(data)
            if action == "stop":
                return self.stop()
            if action == "disarm":
                return self.disarm()
            if action == "monitor":
                return self.monitor(data)
            if action == "record":
                return self.record(data)
            if action == "stop-recording":
                return self.stop_recording()
            if action == "trigger":
                return self.trigger_now()
            if action == "generator-start":
                return self.start_outputs(data)
            if action == "generator-stop":
                return self.stop_outputs(data)
        except RequestError as exc:
            return {"ok": False, "status": exc.status, **exc.to_json()}
        return {"ok": False, "status": 400, "error": f"unknown action {action!r}"}
