"""Capture settings: what the user asks for, checked before anything is sent to a module.

:meth:`CaptureSettings.validate` checks everything that needs no module (the rules are in
:mod:`webapp.capture.schemas`, shared with the web requests); the orchestrator then
checks the rest against each module's ``module/info`` (PTP capability, channel count, ranges,
filters, bandwidth) before the first state-changing request.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from webapp.capture import schemas
from webapp.capture.schemas import FieldError


class SettingsError(FieldError):
    """Bad capture settings: ``field`` is the machine path (``modules[1]``, dotted for nested
    ones), ``message`` (and ``str``) says it in the user's terms."""


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
    on_stream_drop: str = schemas.DEFAULT_ON_STREAM_DROP
    """What a dropped stream does: "reconnect" (the others record on) or "fail"."""
    disk_margin_s: float = schemas.DEFAULT_DISK_MARGIN_S
    """Seconds of the expected data rate the disk must hold free to start."""
    labels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Channel labels by module address: ``channel`` and the fields of
    :mod:`webapp.capture.labels` (name, point, direction, group, note). They describe the
    capture and are copied into capture.json; they change nothing on a module."""
    test: dict[str, Any] = field(default_factory=dict)
    """The capture's test metadata (object, operator, notes, tags)."""
    generators: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Generator outputs (the module's ``generator/output`` objects: number, gain, offset,
    mixfunction, inputs) started with every recording, keyed by module address."""

    @property
    def synchronized(self) -> bool:
        """Two or more modules: the PTP multi-module flow; one module: the single-module flow."""
        return len(self.modules) >= 2

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first bad field; sends nothing anywhere.

        The rules are :class:`~webapp.capture.schemas.CaptureSettingsModel`'s; the name comes
        back normalised."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        self._validate_description(data.pop("labels"), data.pop("test"))
        channels = self.channels
        if isinstance(channels, dict):
            data["channels"] = {
                address: [c.to_json() if isinstance(c, ChannelSettings) else c for c in rows]
                if isinstance(rows, list)
                else rows
                for address, rows in channels.items()
            }
        try:
            checked = schemas.validate(schemas.CaptureSettingsModel, data)
        except FieldError as exc:
            raise SettingsError(exc.field, exc.message) from None
        self.name = checked.name

    def _validate_description(self, labels: Any, test: Any) -> None:
        """The labels and the test metadata by the rules of :mod:`webapp.capture.labels`
        (normalised in place)."""
        from webapp.capture.labels import LabelRow, TestInfo, info_json

        if not isinstance(labels, dict):
            raise SettingsError("labels", "must map module addresses to label lists")
        checked: dict[str, list[dict[str, Any]]] = {}
        for address, rows in labels.items():
            if address not in self.modules:
                raise SettingsError(f"labels.{address}", f"{address} is not one of the modules")
            if not isinstance(rows, list):
                raise SettingsError(f"labels.{address}", "must be a list of channel labels")
            checked[address] = []
            for j, row in enumerate(rows):
                try:
                    label = schemas.validate(LabelRow, row, ("labels", address, j))
                except FieldError as exc:
                    number = row.get("channel") if isinstance(row, dict) else None
                    raise SettingsError(
                        exc.field, f"{address} channel {number}: {exc.message}"
                    ) from None
                checked[address].append(label.model_dump())
        try:
            info = schemas.validate(TestInfo, test, ("test",))
        except FieldError as exc:
            raise SettingsError(exc.field, exc.message) from None
        self.labels, self.test = checked, info_json(info)

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
            "labels": self.labels,
            "test": self.test,
            "generators": {a: [dict(o) for o in outs] for a, outs in self.generators.items()},
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
