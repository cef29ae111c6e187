"""Turn requests (HTTP bodies, Socket.IO control events) into orchestrator calls.

Everything a request says is checked here, field by field, and the orchestrator's own
``CaptureSettings.validate()`` runs before anything is sent to a module, so a bad request gets a
4xx naming the field and nothing starts.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

from webapp.openapi.model import PTP_DOMAIN_MAX, PTP_DOMAIN_MIN
from webapp.web.rig import RigError, RigStore, check_address
from webapp.web.setups import SetupError, SetupStore, check_setup
from webapp.web.state import LiveState

log = logging.getLogger(__name__)

_START_KEYS = {
    "modules",
    "name",
    "duration_s",
    "ptp_domain",
    "ptp_timeout_s",
    "setup",
    "on_stream_drop",
    "disk_margin_s",
}


class RequestError(Exception):
    """A request that cannot be carried out; ``status`` is the HTTP status to answer with."""

    def __init__(self, field: str | None, message: str, status: int = 400):
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.field:
            out["field"] = self.field
        return out


def _number(value: Any, field: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(field, f"{field} must be a number" + (" or null" if allow_none else ""))
    return float(value)


class Control:
    def __init__(self, orchestrator: Any, rig: RigStore, setups: SetupStore, state: LiveState):
        self.orchestrator = orchestrator
        self.rig = rig
        self.setups = setups
        self.state = state

    # --- settings ----------------------------------------------------------------------------

    def settings_from(self, body: Any) -> Any:
        """CaptureSettings from the rig, the stored setup and the request's overrides."""
        from webapp.capture.settings import STREAM_DROP_CHOICES, CaptureSettings, SettingsError

        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise RequestError(None, "the request body must be a JSON object")
        unknown = set(body) - _START_KEYS
        if unknown:
            raise RequestError(sorted(unknown)[0], f"unknown field {sorted(unknown)[0]!r}")

        modules = body.get("modules")
        if modules is None:
            modules = self.rig.ordered_addresses()
        elif not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise RequestError("modules", "modules must be a list of module addresses")
        try:
            modules = [check_address(m) for m in modules]
        except RigError as exc:
            raise RequestError("modules", exc.message) from None
        if not modules:
            raise RequestError("modules", "no modules: add modules to the rig or list them")
        if len(set(modules)) != len(modules):
            raise RequestError("modules", "a module is listed twice")

        name = body.get("name", "Capture")
        if not isinstance(name, str) or not name.strip():
            raise RequestError("name", "name must be a non-empty text")

        duration = _number(body.get("duration_s"), "duration_s", allow_none=True)
        if duration is not None and not duration > 0:
            raise RequestError(
                "duration_s", "duration_s must be positive, or null to run until stopped"
            )

        domain = body.get("ptp_domain", self.rig.domain)
        if isinstance(domain, bool) or not isinstance(domain, int):
            raise RequestError("ptp_domain", "ptp_domain must be an integer")
        if not PTP_DOMAIN_MIN <= domain <= PTP_DOMAIN_MAX:
            raise RequestError(
                "ptp_domain", f"ptp_domain must be {PTP_DOMAIN_MIN}..{PTP_DOMAIN_MAX}, not {domain}"
            )

        setup = self.setups.current()
        if body.get("setup") is not None:
            try:
                override = check_setup(body["setup"], partial=True)
            except SetupError as exc:
                raise RequestError(f"setup.{exc.field}", exc.message) from None
            setup.update({k: v for k, v in override.items() if k != "channels"})
            setup["channels"].update(override.get("channels", {}))

        kwargs: dict[str, Any] = {
            "modules": modules,
            "name": name.strip(),
            "duration_s": duration,
            "ptp_domain": domain,
            "bandwidth": setup["bandwidth"],
            "channels": {
                a: [self._channel_settings(row) for row in setup["channels"][a]]
                for a in modules
                if setup["channels"].get(a)
            },
            "multi_socket": setup["multi_socket"],
        }
        if body.get("ptp_timeout_s") is not None:
            timeout = _number(body["ptp_timeout_s"], "ptp_timeout_s")
            if not timeout or timeout <= 0:
                raise RequestError("ptp_timeout_s", "ptp_timeout_s must be positive")
            kwargs["ptp_timeout_s"] = timeout
        drop = body.get("on_stream_drop", "reconnect")
        if drop not in STREAM_DROP_CHOICES:
            raise RequestError("on_stream_drop", "on_stream_drop must be 'reconnect' or 'fail'")
        margin = _number(body.get("disk_margin_s", 30.0), "disk_margin_s")
        if margin is None or not margin >= 0:  # finite: the body check refused inf and NaN
            raise RequestError("disk_margin_s", "disk_margin_s must be 0 or more seconds")
        known = {f.name for f in fields(CaptureSettings)}
        for key, value in (("on_stream_drop", drop), ("disk_margin_s", margin)):
            if key in known:  # the capture settings take them where the orchestrator uses them
                kwargs[key] = value
        try:
            settings = CaptureSettings(**kwargs)
            settings.validate()
        except SettingsError as exc:
            raise RequestError(
                getattr(exc, "field", None), getattr(exc, "message", str(exc))
            ) from None
        return settings

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

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from webapp.capture.settings import SettingsError
        from webapp.openapi.client import ModuleError

        try:
            return fn(*args)
        except ModuleError as exc:  # a module refused or did not answer: nothing was started
            raise RequestError("modules", str(exc), 502) from None
        except SettingsError as exc:
            raise RequestError(
                getattr(exc, "field", None), getattr(exc, "message", str(exc))
            ) from None
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
        except RequestError as exc:
            return {"ok": False, "status": exc.status, **exc.to_json()}
        return {"ok": False, "status": 400, "error": f"unknown action {action!r}"}
