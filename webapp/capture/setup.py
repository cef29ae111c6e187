"""Building each module's channel setup: the module's default, the detected transducers, and
the user's overrides (in that order of precedence, lowest first)."""

from __future__ import annotations

import copy
from typing import Any

from webapp.capture.settings import ChannelSettings, SettingsError, manual_transducer_json
from webapp.openapi.model import as_bool

SOCKET = "socket"
MULTI_SOCKET = "multiSocket"  # REF17's spelling (Q5)


def _key(obj: dict[str, Any], name: str) -> str:
    """The key spelling the module itself uses (e.g. ``polvolt`` vs ``polVolt``)."""
    lowered = name.lower()
    for key in obj:
        if str(key).lower() == lowered:
            return key
    return name


def _set(obj: dict[str, Any], name: str, value: Any) -> None:
    obj[_key(obj, name)] = value


def _get(obj: dict[str, Any], name: str, default: Any = None) -> Any:
    return obj.get(_key(obj, name), default)


def build_setup(
    default: dict[str, Any],
    transducers: list[dict[str, Any] | None] | None,
    overrides: dict[int, ChannelSettings],
    bandwidth: str,
    multi_socket: bool,
    where: str = "channels",
) -> dict[str, Any]:
    """The setup to PUT: a copy of ``default`` with, per channel, the detected transducer
    (CCLD and polarisation voltage as the detection says, like HBK's tutorials), then the
    overrides; every channel gets the capture's bandwidth and the socket destination."""
    setup = copy.deepcopy(default)
    channels = _get(setup, "channels")
    if not isinstance(channels, list) or not channels:
        raise SettingsError(where, "the module's default setup has no channels")
    by_number = {int(_get(ch, "channel", i + 1)): ch for i, ch in enumerate(channels)}
    for number in overrides:
        if number not in by_number:
            raise SettingsError(f"{where}.channel", f"the module has no input channel {number}")
    destination = MULTI_SOCKET if multi_socket else SOCKET
    for number, ch in by_number.items():
        found = transducers[number - 1] if transducers and number - 1 < len(transducers) else None
        if found:
            _set(ch, "transducer", found)
            _set(ch, "ccld", as_bool(found.get("requiresCcld", False)))
            _set(ch, "polvolt", as_bool(found.get("requires200V", False)))
        o = overrides.get(number)
        if o is not None:
            if o.enabled is not None:
                _set(ch, "enabled", o.enabled)
            if o.range is not None:
                _set(ch, "range", o.range)
            if o.filter is not None:
                _set(ch, "filter", o.filter)
            if o.transducer is not None:
                manual = manual_transducer_json(o.transducer)
                _set(ch, "transducer", manual)
            if o.ccld is not None:
                _set(ch, "ccld", o.ccld)
            if o.polvolt is not None:
                _set(ch, "polvolt", o.polvolt)
        _set(ch, "bandwidth", bandwidth)
        _set(ch, "destinations", [destination])
    if not enabled_channel_numbers(setup):
        raise SettingsError(where, "no input channel is enabled")
    return setup


def enabled_channel_numbers(setup: dict[str, Any]) -> list[int]:
    """Enabled channels in channel order: stream signal ID i+1 is entry i (stream-format §9.3)."""
    channels = _get(setup, "channels") or []
    return sorted(
        int(_get(ch, "channel", i + 1))
        for i, ch in enumerate(channels)
        if as_bool(_get(ch, "enabled", True))
    )


def applied_channels(setup: dict[str, Any]) -> list[dict[str, Any]]:
    """What each channel of a module's setup as PUT really uses: the values "auto" stood for
    (the module's default range and filter, the detected transducer's sensitivity, CCLD and
    polarisation voltage), for the Setup page to show next to "auto"."""
    out = []
    for i, ch in enumerate(_get(setup, "channels", []) or []):
        t = _get(ch, "transducer") or {}
        type_ = t.get("type") or {}
        name = "-".join(
            str(type_.get(k)) for k in ("prefix", "number", "model", "variant") if type_.get(k)
        )
        out.append(
            {
                "channel": int(_get(ch, "channel", i + 1)),
                "enabled": as_bool(_get(ch, "enabled", True)),
                "range": _get(ch, "range"),
                "filter": _get(ch, "filter"),
                "ccld": as_bool(_get(ch, "ccld", False)),
                "polvolt": as_bool(_get(ch, "polvolt", False)),
                "sensitivity": t.get("sensitivity"),
                "unit": t.get("unit"),
                "transducer": name if name and name != "None" else None,
                "serial": t.get("serialNumber"),
            }
        )
    return out
