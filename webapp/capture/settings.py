"""Capture settings: what the user asks for, checked before anything is sent to a module.

:meth:`CaptureSettings.validate` checks everything that needs no module; the orchestrator then
checks the rest against each module's ``module/info`` (PTP capability, channel count, ranges,
filters, bandwidth) before the first state-changing request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from webapp.capture.names import check_name
from webapp.openapi.client import parse_address
from webapp.openapi.model import PTP_DOMAIN_MAX, PTP_DOMAIN_MIN, rate_for_bandwidth


class SettingsError(ValueError):
    """Bad capture settings; ``field`` names the offending setting (dotted for nested ones)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass
class ChannelSettings:
    """Overrides for one input channel; None keeps what the default setup and detection gave."""

    channel: int
    enabled: bool | None = None
    range: str | None = None
    filter: str | None = None
    ccld: bool | None = None
    polvolt: bool | None = None
    transducer: dict[str, Any] | None = None
    """Manual transducer for a sensor without TEDS: sensitivity (V per unit), unit, serialNumber,
    type (a string such as "4508-B" or a ``{"number": ...}`` object)."""

    def validate(self, where: str) -> None:
        if not isinstance(self.channel, int) or isinstance(self.channel, bool) or self.channel < 1:
            raise SettingsError(
                f"{where}.channel", f"channel must be a number >= 1, not {self.channel!r}"
            )
        for name in ("enabled", "ccld", "polvolt"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise SettingsError(f"{where}.{name}", f"must be true or false, not {value!r}")
        for name in ("range", "filter"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise SettingsError(f"{where}.{name}", f"must be a non-empty string, not {value!r}")
        if self.transducer is not None:
            _validate_transducer(self.transducer, f"{where}.transducer")

    def to_json(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str = "channel") -> ChannelSettings:
        if not isinstance(d, dict):
            raise SettingsError(where, f"must be an object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SettingsError(f"{where}.{unknown[0]}", "unknown channel setting")
        if "channel" not in d:
            raise SettingsError(f"{where}.channel", "missing")
        return cls(**d)


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _validate_transducer(t: dict[str, Any], where: str) -> None:
    if not isinstance(t, dict):
        raise SettingsError(where, "must be an object with sensitivity and unit")
    sensitivity = t.get("sensitivity")
    if (
        not isinstance(sensitivity, int | float)
        or isinstance(sensitivity, bool)
        or not math.isfinite(sensitivity)
        or sensitivity <= 0
    ):
        raise SettingsError(
            f"{where}.sensitivity", f"must be a positive number, not {sensitivity!r}"
        )
    unit = t.get("unit", "V")
    if not isinstance(unit, str) or not unit.strip() or len(unit) > 32:
        raise SettingsError(f"{where}.unit", f"must be a short non-empty string, not {unit!r}")
    serial = t.get("serialNumber", 0)
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise SettingsError(f"{where}.serialNumber", f"must be a whole number >= 0, not {serial!r}")
    ttype = t.get("type")
    if ttype is not None and not isinstance(ttype, str | dict):
        raise SettingsError(f"{where}.type", "must be a string or an object")


def manual_transducer_json(t: dict[str, Any]) -> dict[str, Any]:
    """A manual transducer in the module's JSON shape (PROTOCOL.md §5.4)."""
    ttype = t.get("type")
    if isinstance(ttype, dict):
        type_obj = {
            "model": str(ttype.get("model", "")),
            "number": str(ttype.get("number", "None")),
            "prefix": str(ttype.get("prefix", "")),
            "variant": str(ttype.get("variant", "")),
        }
    else:
        type_obj = {
            "model": "",
            "number": str(ttype) if ttype else "None",
            "prefix": "",
            "variant": "",
        }
    return {
        "requires200V": bool(t.get("requires200V", False)),
        "requiresCcld": bool(t.get("requiresCcld", False)),
        "sensitivity": float(t["sensitivity"]),
        "serialNumber": int(t.get("serialNumber", 0)),
        "type": type_obj,
        "unit": str(t.get("unit", "V")),
    }


STREAM_DROP_CHOICES = ("reconnect", "fail")
"""What :attr:`CaptureSettings.on_stream_drop` may be."""


@dataclass
class CaptureSettings:
    """One capture (or one armed session and the recordings made in it)."""

    modules: list[str]
    """Module addresses; the first is the PTP master (module 1 in file names)."""
    name: str = "My Measurement"
    duration_s: float | None = 10.0
    """None records until stopped."""
    ptp_domain: int = 42
    bandwidth: str | None = None
    """None = the highest bandwidth every module supports."""
    channels: dict[str, list[ChannelSettings]] = field(default_factory=dict)
    """Per-channel overrides, keyed by module address as given in ``modules``."""
    multi_socket: bool = False
    ptp_timeout_s: float = 600.0
    state_timeout_s: float = 30.0
    return_to_standalone: bool = True
    disk_margin_s: float = 30.0
    """Seconds of data at the expected rate the capture folder's disk must have room for
    before a capture starts; while recording, less than that left is warned about once."""
    on_stream_drop: str = "reconnect"
    """A stream that drops while recording: ``reconnect`` (connected again, the capture goes
    on, the gap counted as lost samples) or ``fail`` (the capture ends at the first drop)."""

    @property
    def synchronized(self) -> bool:
        """Two or more modules: the PTP multi-module flow; one module: the single-module flow."""
        return len(self.modules) >= 2

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first bad field; sends nothing anywhere."""
        if not isinstance(self.modules, list) or not self.modules:
            raise SettingsError("modules", "give at least one module address")
        margin = self.disk_margin_s
        if (
            isinstance(margin, bool)
            or not isinstance(margin, int | float)
            or not math.isfinite(margin)
            or margin < 0
        ):
            raise SettingsError("disk_margin_s", f"must be 0 or more seconds, not {margin!r}")
        if self.on_stream_drop not in STREAM_DROP_CHOICES:
            raise SettingsError(
                "on_stream_drop",
                f"must be {' or '.join(STREAM_DROP_CHOICES)}, not {self.on_stream_drop!r}",
            )
        seen: dict[tuple[str, int], str] = {}
        for i, address in enumerate(self.modules):
            where = f"modules[{i}]"
            if not isinstance(address, str):
                raise SettingsError(where, f"must be an address string, not {address!r}")
            try:
                parsed = parse_address(address)
            except ValueError as exc:
                raise SettingsError(where, str(exc)) from None
            key = (parsed.host.lower(), parsed.port)
            if key in seen:
                raise SettingsError(
                    where, f"{address} is the same module as {seen[key]}; give distinct modules"
                )
            seen[key] = address
            try:
                parsed.resolve()
            except OSError as exc:
                raise SettingsError(
                    where, f"{address} does not resolve ({exc.strerror or exc})"
                ) from None
        try:
            self.name = check_name(self.name)
        except ValueError as exc:
            raise SettingsError("name", str(exc)) from None
        if self.duration_s is not None and not _positive(self.duration_s):
            raise SettingsError(
                "duration_s", f"must be a positive number of seconds, not {self.duration_s!r}"
            )
        if (
            not isinstance(self.ptp_domain, int)
            or isinstance(self.ptp_domain, bool)
            or not (PTP_DOMAIN_MIN <= self.ptp_domain <= PTP_DOMAIN_MAX)
        ):
            raise SettingsError(
                "ptp_domain",
                f"PTP domain must be {PTP_DOMAIN_MIN}..{PTP_DOMAIN_MAX}, not {self.ptp_domain!r}",
            )
        if self.bandwidth is not None:
            try:
                rate_for_bandwidth(self.bandwidth)
            except ValueError as exc:
                raise SettingsError("bandwidth", str(exc)) from None
        for name in ("ptp_timeout_s", "state_timeout_s"):
            value = getattr(self, name)
            if not _positive(value):
                raise SettingsError(name, f"must be a positive number of seconds, not {value!r}")
        if not isinstance(self.channels, dict):
            raise SettingsError("channels", "must map module addresses to channel lists")
        for address, channel_list in self.channels.items():
            if address not in self.modules:
                raise SettingsError(f"channels.{address}", "is not one of the capture's modules")
            if not isinstance(channel_list, list):
                raise SettingsError(f"channels.{address}", "must be a list of channel settings")
            numbers: set[int] = set()
            for j, ch in enumerate(channel_list):
                where = f"channels.{address}[{j}]"
                if not isinstance(ch, ChannelSettings):
                    raise SettingsError(where, "must be a channel settings object")
                ch.validate(where)
                if ch.channel in numbers:
                    raise SettingsError(f"{where}.channel", f"channel {ch.channel} is given twice")
                numbers.add(ch.channel)

    def same_session(self, other: CaptureSettings) -> list[str]:
        """Fields that differ in a way that needs the modules set up again (not name/duration)."""
        session_fields = (
            "modules",
            "ptp_domain",
            "bandwidth",
            "channels",
            "multi_socket",
            "ptp_timeout_s",
            "state_timeout_s",
            "return_to_standalone",
        )
        return [f for f in session_fields if getattr(self, f) != getattr(other, f)]

    def channel_overrides(self, address: str) -> dict[int, ChannelSettings]:
        return {c.channel: c for c in self.channels.get(address, [])}

    # --- JSON -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "modules": list(self.modules),
            "name": self.name,
            "duration_s": self.duration_s,
            "ptp_domain": self.ptp_domain,
            "bandwidth": self.bandwidth,
            "channels": {a: [c.to_json() for c in chs] for a, chs in self.channels.items()},
            "multi_socket": self.multi_socket,
            "ptp_timeout_s": self.ptp_timeout_s,
            "state_timeout_s": self.state_timeout_s,
            "return_to_standalone": self.return_to_standalone,
            "on_stream_drop": self.on_stream_drop,
            "disk_margin_s": self.disk_margin_s,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CaptureSettings:
        """Build from JSON (web API, saved setups). Unknown keys are an error naming them;
        values are checked by :meth:`validate`."""
        if not isinstance(d, dict):
            raise SettingsError("settings", "must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SettingsError(unknown[0], "unknown capture setting")
        if "modules" not in d:
            raise SettingsError("modules", "missing")
        kwargs = dict(d)
        raw_channels = kwargs.pop("channels", None) or {}
        if not isinstance(raw_channels, dict):
            raise SettingsError("channels", "must map module addresses to channel lists")
        channels: dict[str, list[ChannelSettings]] = {}
        for address, items in raw_channels.items():
            if not isinstance(items, list):
                raise SettingsError(f"channels.{address}", "must be a list of channel settings")
            channels[address] = [
                ChannelSettings.from_json(item, f"channels.{address}[{j}]")
                for j, item in enumerate(items)
            ]
        try:
            return cls(channels=channels, **kwargs)
        except TypeError as exc:  # pragma: no cover - guarded by the key check above
            raise SettingsError("settings", str(exc)) from None
