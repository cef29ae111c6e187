"""The emulated module's clock synchronization: PTP lock over time, syncmode and settime."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from webapp.emulator.resterror import RestError, json_field
from webapp.openapi.model import PTP_DOMAIN_MAX, ModuleState, PtpStatus, as_bool

if TYPE_CHECKING:
    from webapp.emulator.module import ModuleEmulator


class PtpRequests:
    """PTP status and the syncmode requests of :class:`~webapp.emulator.module.ModuleEmulator`."""

    def _compute_ptp(self, mono: float) -> PtpStatus:
        if not self.is_ptp:
            return PtpStatus.LOCKED
        if ("ptp-no-lock", None) in self._faults:
            return PtpStatus.UNLOCKED
        ref = self.network.lock_reference(self)
        if ref is None:
            return PtpStatus.UNLOCKED
        span = self.options.ptp_lock_seconds
        el = mono - ref
        if el >= span:
            return PtpStatus.LOCKED
        if el >= span * 2 / 3:
            return PtpStatus.LOCKING
        if el >= span / 3:
            return PtpStatus.SETTLING
        return PtpStatus.UNLOCKED

    def _next_ptp_deadline(self, mono: float) -> float | None:
        if not self.is_ptp or ("ptp-no-lock", None) in self._faults:
            return None
        ref = self.network.lock_reference(self)
        if ref is None:
            return None
        span = self.options.ptp_lock_seconds
        for step in (span / 3, span * 2 / 3, span):
            if ref + step > mono:
                return ref + step
        return None

    def wake(self) -> None:
        """Something outside the module changed (a PTP master appeared): re-evaluate now."""
        with self.cond:
            self.advance()
            self.cond.notify_all()

    def sync_settings(self) -> dict[str, Any]:
        s = dict(self.sync)
        ptp = s.get("mode") == "ptp"
        out = {
            "mode": s.get("mode", "stand-alone"),
            "domain": s.get("domain", 0),
            "preferredMaster": bool(s.get("preferredMaster", False)) if ptp else False,
            "triggerMaster": bool(s.get("triggerMaster", s.get("preferredMaster", False)))
            if ptp
            else False,
            "usegps": bool(s.get("usegps", False)),
            "switchmethod": s.get("switchmethod", "ptp"),
            "UtcTaiOffset": s.get("UtcTaiOffset", 37),
        }
        if "triggerDomain" in s:
            out["triggerDomain"] = s["triggerDomain"]
        return {"synchronization": out}

    def set_time(self, ms: int) -> None:
        # The emulated clock is the host's UTC clock (already past 2009), so like a real module
        # whose clock is set the request changes nothing; it is only remembered.
        with self.cond:
            self.time_set_ms = ms

    def put_syncmode(self, body: Any) -> list[ModuleEmulator]:
        """Returns the modules to wake (outside this module's lock)."""
        if not isinstance(body, dict):
            raise RestError(400, 'syncmode needs a JSON object {"synchronization": {...}}')
        sync = json_field(body, "synchronization")
        if not isinstance(sync, dict):
            raise RestError(400, "syncmode: the body has no 'synchronization' object")
        with self.cond:
            self._require("PUT /rest/rec/syncmode", ModuleState.IDLE)
            mode = json_field(sync, "mode")
            if mode is None:
                # Only settime/difftime: a time setting, the mode stays.
                if json_field(sync, "settime") is None:
                    raise RestError(400, "syncmode: 'mode' is missing (ptp or stand-alone)")
                return []
            mode = str(mode).strip().lower()
            if mode not in ("ptp", "stand-alone"):
                raise RestError(400, f"syncmode: mode {mode!r} is not 'ptp' or 'stand-alone'")
            new: dict[str, Any] = {"mode": mode}
            for key in ("usegps", "switchmethod", "UtcTaiOffset", "settime", "difftime"):
                value = json_field(sync, key)
                if value is not None:
                    new[key] = as_bool(value) if key == "usegps" else value
            if mode == "ptp":
                if not self.profile.ptp:
                    raise RestError(
                        400,
                        f"PTP synchronization is not supported by module type "
                        f"{self.profile.number}: use mode stand-alone",
                    )
                domain = json_field(sync, "domain")
                try:
                    domain = int(domain)
                except (TypeError, ValueError):
                    raise RestError(400, "syncmode: ptp mode needs an integer 'domain'") from None
                if not 0 <= domain <= PTP_DOMAIN_MAX:
                    raise RestError(400, f"syncmode: domain {domain} is outside 0..127")
                preferred = as_bool(json_field(sync, "preferredMaster", False))
                new["domain"] = domain
                new["preferredMaster"] = preferred
                new["triggerMaster"] = as_bool(json_field(sync, "triggerMaster", preferred))
                trigger_domain = json_field(sync, "triggerDomain")
                if trigger_domain is not None:
                    try:
                        new["triggerDomain"] = int(trigger_domain)
                    except (TypeError, ValueError):
                        raise RestError(
                            400, "syncmode: 'triggerDomain' must be an integer"
                        ) from None
            old_ptp = self.is_ptp
            self.sync = new
            if mode == "ptp":
                touched = self.network.join_ptp(self, new["domain"], new["preferredMaster"])
            else:
                touched = self.network.leave_ptp(self) if old_ptp else []
            self.published_ptp = self._compute_ptp(time.monotonic())
            self._changed()
            return [m for m in touched if m is not self]
