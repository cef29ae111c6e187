"""The measurement setup the Setup page edits, and named setups saved beside it.

A setup is plain JSON:

    {"bandwidth": "51.2 kHz" or null for the highest all modules support, "multi_socket": false,
     "channels": {"<address>": [{"channel": 1, "enabled": true, "range": "10 Vpeak",
                                 "filter": "7.0 Hz", "ccld": null, "polvolt": null,
                                 "transducer": null}, ...]}}

``ccld``, ``polvolt`` and ``transducer`` left ``null`` take what TEDS detection found; a
``transducer`` object (sensitivity, unit, serial, type) is a manual entry for a sensor without
TEDS. The current setup lives in ``<data-dir>/setup.json``, named ones in
``<data-dir>/setups/<name>.json``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from webapp.capture.names import check_name as check_file_name
from webapp.openapi.model import rate_for_bandwidth

DEFAULT_BANDWIDTH = None
"""None: the highest bandwidth every module of the rig supports."""
SETUP_NAME_MAX = 64


def _is_name(stem: str) -> bool:
    try:
        return check_file_name(stem, "the setup name", SETUP_NAME_MAX) == stem
    except ValueError:
        return False


_CHANNEL_KEYS = {"channel", "enabled", "range", "filter", "ccld", "polvolt", "transducer"}
_TRANSDUCER_KEYS = {"sensitivity", "unit", "serial", "type"}


class SetupError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _check_bool_or_none(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise SetupError(field, f"{field} must be true, false or null (from detection)")


def check_transducer(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SetupError(field, f"{field} must be an object or null")
    unknown = set(value) - _TRANSDUCER_KEYS
    if unknown:
        raise SetupError(f"{field}.{sorted(unknown)[0]}", f"unknown transducer key in {field}")
    sensitivity = value.get("sensitivity")
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, int | float):
        raise SetupError(f"{field}.sensitivity", "sensitivity must be a number (V per unit)")
    if not sensitivity > 0:
        raise SetupError(f"{field}.sensitivity", "sensitivity must be positive")
    unit = value.get("unit", "V")
    if not isinstance(unit, str) or not 0 < len(unit) <= 16:
        raise SetupError(f"{field}.unit", "unit must be a short text such as Pa, m/s^2 or V")
    serial = value.get("serial", 0)
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 0:
        raise SetupError(f"{field}.serial", "serial must be a non-negative integer")
    type_ = value.get("type", "")
    if not isinstance(type_, str) or len(type_) > 32:
        raise SetupError(f"{field}.type", "type must be a short text")
    return {"sensitivity": float(sensitivity), "unit": unit, "serial": serial, "type": type_}


def check_channel(entry: Any, field: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise SetupError(field, f"{field} must be an object")
    unknown = set(entry) - _CHANNEL_KEYS
    if unknown:
        raise SetupError(f"{field}.{sorted(unknown)[0]}", "unknown channel setting")
    channel = entry.get("channel")
    if isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= 64:
        raise SetupError(f"{field}.channel", "channel must be a channel number from 1")
    out: dict[str, Any] = {"channel": channel}
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SetupError(f"{field}.enabled", "enabled must be true or false")
    out["enabled"] = enabled
    for key in ("range", "filter"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 32):
            raise SetupError(f"{field}.{key}", f"{key} must be text such as '10 Vpeak' or null")
        out[key] = value
    out["ccld"] = _check_bool_or_none(entry.get("ccld"), f"{field}.ccld")
    out["polvolt"] = _check_bool_or_none(entry.get("polvolt"), f"{field}.polvolt")
    out["transducer"] = check_transducer(entry.get("transducer"), f"{field}.transducer")
    return out


def check_setup(data: Any, partial: bool = False) -> dict[str, Any]:
    """A validated copy of a setup object; ``partial`` allows keys to be missing."""
    if not isinstance(data, dict):
        raise SetupError("setup", "the setup must be a JSON object")
    unknown = set(data) - {"bandwidth", "multi_socket", "channels"}
    if unknown:
        raise SetupError(sorted(unknown)[0], "unknown setup key")
    out: dict[str, Any] = {}
    if "bandwidth" in data or not partial:
        bandwidth = data.get("bandwidth", DEFAULT_BANDWIDTH)
        if bandwidth is not None:
            try:
                rate_for_bandwidth(bandwidth)
            except (ValueError, TypeError) as exc:
                raise SetupError("bandwidth", str(exc)) from None
        out["bandwidth"] = bandwidth
    if "multi_socket" in data or not partial:
        multi = data.get("multi_socket", False)
        if not isinstance(multi, bool):
            raise SetupError("multi_socket", "multi_socket must be true or false")
        out["multi_socket"] = multi
    if "channels" in data or not partial:
        channels = data.get("channels", {})
        if not isinstance(channels, dict):
            raise SetupError("channels", "channels must map module addresses to channel lists")
        checked: dict[str, list[dict[str, Any]]] = {}
        for address, entries in channels.items():
            field = f"channels.{address}"
            if not isinstance(entries, list):
                raise SetupError(field, f"{field} must be a list of channels")
            rows = [check_channel(e, f"{field}[{i}]") for i, e in enumerate(entries)]
            numbers = [r["channel"] for r in rows]
            if len(set(numbers)) != len(numbers):
                raise SetupError(field, f"{field} names a channel twice")
            checked[str(address)] = sorted(rows, key=lambda r: r["channel"])
        out["channels"] = checked
    return out


def default_channel(channel: int) -> dict[str, Any]:
    return {
        "channel": channel,
        "enabled": True,
        "range": None,
        "filter": None,
        "ccld": None,
        "polvolt": None,
        "transducer": None,
    }


class SetupStore:
    def __init__(self, data_dir: Path):
        self.path = data_dir / "setup.json"
        self.named_dir = data_dir / "setups"
        self._lock = threading.Lock()
        self._setup = check_setup({})
        with contextlib.suppress(OSError, ValueError):  # none yet, or unreadable: start afresh
            self._setup = check_setup(json.loads(self.path.read_text()))

    def current(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._setup))

    def for_rig(self, modules: list[dict[str, Any]]) -> dict[str, Any]:
        """The setup with a row for every input channel of every probed module in the rig."""
        setup = self.current()
        channels: dict[str, list[dict[str, Any]]] = {}
        for module in modules:
            address = module["address"]
            rows = {r["channel"]: r for r in setup["channels"].get(address, [])}
            count = (module.get("info") or {}).get("input_channels") or len(rows)
            channels[address] = [rows.get(n) or default_channel(n) for n in range(1, count + 1)]
        setup["channels"] = channels
        return setup

    def update(self, data: Any) -> dict[str, Any]:
        """Merge a (partial) setup: given modules' channel lists replace the stored ones."""
        change = check_setup(data, partial=True)
        with self._lock:
            merged = json.loads(json.dumps(self._setup))
            merged.update({k: v for k, v in change.items() if k != "channels"})
            merged["channels"].update(change.get("channels", {}))
            self._setup = merged
            self._write(self.path, merged)
            return json.loads(json.dumps(merged))

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)

    # --- named setups ------------------------------------------------------------------------

    @staticmethod
    def check_name(name: Any) -> str:
        try:
            return check_file_name(name, "the setup name", SETUP_NAME_MAX)
        except ValueError as exc:
            raise SetupError("name", str(exc)) from None

    def names(self) -> list[str]:
        if not self.named_dir.is_dir():
            return []
        return sorted(p.stem for p in self.named_dir.glob("*.json") if _is_name(p.stem))

    def save_as(self, name: Any) -> str:
        name = self.check_name(name)
        self._write(self.named_dir / f"{name}.json", self.current())
        return name

    def load(self, name: Any) -> dict[str, Any]:
        name = self.check_name(name)
        if name not in self.names():
            raise SetupError("name", f"there is no saved setup named {name!r}")
        data = check_setup(json.loads((self.named_dir / f"{name}.json").read_text()))
        with self._lock:
            self._setup = data
            self._write(self.path, data)
        return self.current()

    def delete(self, name: Any) -> None:
        name = self.check_name(name)
        if name not in self.names():
            raise SetupError("name", f"there is no saved setup named {name!r}")
        (self.named_dir / f"{name}.json").unlink()
