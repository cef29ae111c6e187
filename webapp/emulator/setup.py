"""Channel setups as an emulated module accepts them: lenient in form, strict in content.

Form (PROTOCOL.md §2.3): keys match case-insensitively, 0/1 count as booleans, unknown keys are
kept and echoed back, a partial channel list leaves the unlisted channels unmeasured. Content
(§4.2): every enabled channel uses one supported bandwidth, range and filter, one destination,
the same destination and polarisation voltage as the others; violations are 400s that say what
is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webapp.openapi.model import (
    ChannelSetup,
    ModuleTypeProfile,
    Transducer,
    range_volts,
)

DESTINATIONS = {"sd": "sd", "socket": "socket", "multisocket": "multiSocket"}


class SetupError(ValueError):
    pass


@dataclass
class AppliedSetup:
    channels: list[ChannelSetup]
    top: dict[str, Any] = field(default_factory=dict)

    @property
    def destination(self) -> str:
        enabled = [c for c in self.channels if c.enabled]
        return enabled[0].destinations[0] if enabled else "socket"

    @property
    def multi_socket(self) -> bool:
        return self.destination == "multiSocket"

    def to_json(self) -> dict[str, Any]:
        out = dict(self.top)
        out["channels"] = [c.to_json() for c in sorted(self.channels, key=lambda c: c.channel)]
        return out


def default_setup(profile: ModuleTypeProfile, destination: str) -> dict[str, Any]:
    """What GET channels/input/default answers: every input, maximum bandwidth (§4.2, Q19)."""
    channels = []
    for ch in range(1, profile.input_channels + 1):
        entry = ChannelSetup(
            channel=ch,
            name=f"Channel {ch}",
            bandwidth=profile.max_bandwidth,
            range="10 Vpeak",
            filter="7.0 Hz" if "7.0 Hz" in profile.filters else profile.filters[0],
            destinations=[destination],
            transducer=Transducer(),
        ).to_json()
        if profile.connectors:
            entry["ConnectorSelect"] = profile.connectors[0]
        channels.append(entry)
    return {
        "channels": channels,
        "maxSize": 2147483647,
        "name": "Default setup",
        "recordingMode": "Single",
    }


def parse_setup(body: Any, profile: ModuleTypeProfile) -> AppliedSetup:
    if not isinstance(body, dict):
        raise SetupError("the channel setup must be a JSON object with a 'channels' array")
    lowered = {str(k).lower(): k for k in body}
    if "channels" not in lowered:
        raise SetupError("the channel setup has no 'channels' array")
    raw_channels = body[lowered["channels"]]
    if not isinstance(raw_channels, list) or not raw_channels:
        raise SetupError("'channels' must be a non-empty array of channel objects")
    channels: list[ChannelSetup] = []
    seen: set[int] = set()
    for entry in raw_channels:
        if not isinstance(entry, dict):
            raise SetupError("every element of 'channels' must be an object")
        try:
            ch = ChannelSetup.from_json(entry)
        except (TypeError, ValueError) as exc:
            raise SetupError(f"channel entry {entry.get('channel', '?')}: {exc}") from None
        if not 1 <= ch.channel <= profile.input_channels:
            raise SetupError(
                f"channel {ch.channel} does not exist: this {profile.number} has input "
                f"channels 1 to {profile.input_channels}"
            )
        if ch.channel in seen:
            raise SetupError(f"channel {ch.channel} is listed twice")
        seen.add(ch.channel)
        channels.append(ch)
    enabled = [c for c in channels if c.enabled]
    if not enabled:
        raise SetupError("no channel is enabled")
    rates = set()
    for c in enabled:
        _check_channel(c, profile)
        rates.add(c.sample_rate)
    if len(rates) > 1:
        raise SetupError("all enabled channels must use the same bandwidth")
    if len({c.destinations[0] for c in enabled}) > 1:
        raise SetupError("all enabled channels must use the same destination")
    if len({c.polvolt for c in enabled}) > 1:
        raise SetupError("polarisation voltage (polvolt) must be the same on all channels")
    top = {k: v for k, v in body.items() if str(k).lower() != "channels"}
    return AppliedSetup(channels, top)


def _check_channel(c: ChannelSetup, profile: ModuleTypeProfile) -> None:
    where = f"channel {c.channel}"
    try:
        rate = c.sample_rate
    except ValueError as exc:
        raise SetupError(f"{where}: {exc}") from None
    if rate > profile.max_sample_rate:
        raise SetupError(
            f"{where}: bandwidth {c.bandwidth} exceeds the {profile.number}'s maximum "
            f"{profile.max_bandwidth}"
        )
    try:
        volts = range_volts(c.range)
    except ValueError as exc:
        raise SetupError(f"{where}: {exc}") from None
    matches = [r for r in profile.ranges if range_volts(r) == volts]
    if not matches:
        raise SetupError(
            f"{where}: range {c.range!r} is not supported (supported: {', '.join(profile.ranges)})"
        )
    filters = {f.lower(): f for f in profile.filters}
    if c.filter.lower() not in filters:
        raise SetupError(
            f"{where}: filter {c.filter!r} is not supported "
            f"(supported: {', '.join(profile.filters)})"
        )
    c.filter = filters[c.filter.lower()]
    if len(c.destinations) != 1:
        raise SetupError(f"{where}: exactly one destination is supported per channel")
    dest = DESTINATIONS.get(c.destinations[0].replace("-", "").replace("_", "").lower())
    if dest is None:
        raise SetupError(
            f"{where}: destination {c.destinations[0]!r} is not one of sd, socket, multiSocket"
        )
    c.destinations = [dest]
    if c.transducer.sensitivity <= 0:
        raise SetupError(f"{where}: transducer sensitivity must be positive")
