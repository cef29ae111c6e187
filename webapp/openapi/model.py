"""The data model shared by the Open API client and the module emulator.

Only facts about the protocol live here: state names, module type capabilities, bandwidth and
sample-rate arithmetic, the scale-factor formula and the JSON shapes of transducers and channel
setups. Anything that is one side's behaviour (how a client waits, how the emulator decides)
belongs to that side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ModuleState(StrEnum):
    IDLE = "Idle"
    RECORDER_OPENED = "RecorderOpened"
    RECORDER_CONFIGURING = "RecorderConfiguring"
    RECORDER_STREAMING = "RecorderStreaming"
    RECORDER_RECORDING = "RecorderRecording"
    POST_FAILED = "PostFailed"


class InputStatus(StrEnum):
    UNKNOWN = "Unknown"
    SAMPLING = "Sampling"
    SETTLED = "Settled"
    SYNCHRONIZED = "Synchronized"
    STREAMING = "Streaming"


class PtpStatus(StrEnum):
    """PROTOCOL.md Q1: only "Locked" is certain; the rest follow REF17's sequence."""

    UNKNOWN = "Unknown"
    UNLOCKED = "Unlocked"
    SETTLING = "Settling"
    LOCKING = "Locking"
    LOCKED = "Locked"


class FaultHistory(StrEnum):
    """Values of channelStatus[i].anol/cmol/cf. Modules may say "now" for "curr" (Q4)."""

    NONE = "none"
    CURRENT = "curr"
    PREVIOUS = "prev"

    @classmethod
    def parse(cls, value: object) -> FaultHistory:
        if value in (None, "none", ""):
            return cls.NONE
        if value == "prev":
            return cls.PREVIOUS
        # Clients test only against "none": anything else is a fault present now.
        return cls.CURRENT


FAULT_KINDS = ("anol", "cmol", "cf")
FAULT_NAMES = {
    "anol": "analog overload",
    "cmol": "common-mode overload",
    "cf": "cable fault",
}

PTP_DOMAIN_MIN = 4
PTP_DOMAIN_MAX = 127
BLOCK_VALUES = 4096
"""Values per SignalData message, as real modules send (stream-format.md §5.3)."""

STREAM_PORT = 1536
"""The single-socket stream port every real module answers; multi-socket ports follow it."""

HEADROOM_MILLIONTHS = 1188502
"""1.5 dB headroom as the firmware rounds it (PROTOCOL.md §7.3: 11.88502 for 10 Vpeak, 1 V/V)."""

# --- bandwidth and sample rate ------------------------------------------------------------

_BANDWIDTHS = {
    524288: "204.8 kHz",
    262144: "102.4 kHz",
    131072: "51.2 kHz",
    65536: "25.6 kHz",
    32768: "12.8 kHz",
    16384: "6.4 kHz",
    8192: "3.2 kHz",
    4096: "1.6 kHz",
    2048: "800 Hz",
    1024: "400 Hz",
    512: "200 Hz",
    256: "100 Hz",
    128: "50 Hz",
}
_RATES_BY_BANDWIDTH_HZ = {round(rate / 2.56, 1): rate for rate in _BANDWIDTHS}


def bandwidth_for_rate(sample_rate: int) -> str:
    """The bandwidth string a module emits for a sample rate (REF17 spelling)."""
    try:
        return _BANDWIDTHS[sample_rate]
    except KeyError:
        raise ValueError(f"{sample_rate} S/s is not a LAN-XI sample rate") from None


def rate_for_bandwidth(bandwidth: str | int | float) -> int:
    """Sample rate for a bandwidth given as "51.2 kHz", "800 Hz", "0.8 kHz" or a number in Hz.

    Clients spell bandwidths differently (MATLAB writes "0.8 kHz", others "800 Hz"), so every
    spelling that names one of the LAN-XI bandwidths is accepted.
    """
    if isinstance(bandwidth, int | float):
        hz = float(bandwidth)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(k?)Hz\s*", str(bandwidth), re.IGNORECASE)
        if not match:
            raise ValueError(f"bandwidth {bandwidth!r} is not of the form '51.2 kHz' or '800 Hz'")
        hz = float(match.group(1)) * (1000.0 if match.group(2) else 1.0)
    rate = _RATES_BY_BANDWIDTH_HZ.get(round(hz, 1))
    if rate is None:
        raise ValueError(f"bandwidth {bandwidth!r} is not a LAN-XI bandwidth")
    return rate


def range_volts(range_text: str) -> float:
    """ "10 Vpeak" -> 10.0, "0.316 Vpeak" -> 0.316."""
    match = re.match(r"\s*([0-9]*\.?[0-9]+)", str(range_text))
    if not match:
        raise ValueError(f"input range {range_text!r} does not start with a number")
    return float(match.group(1))


def scale_factor(range_text: str, sensitivity: float) -> float:
    """Physical value of raw full scale (2^23): range × headroom / sensitivity.

    Computed as range × 1188502 / 10^6 / sensitivity, which reproduces the bytes a real module
    sent (PROTOCOL.md §7.3).
    """
    if not sensitivity:
        raise ValueError("transducer sensitivity must be non-zero")
    return range_volts(range_text) * HEADROOM_MILLIONTHS / 1e6 / float(sensitivity)


def as_bool(value: Any) -> bool:
    """Booleans as clients send them: true/false, 0/1, "true"/"false"."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# --- module types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleTypeProfile:
    """What a module type can do. Rows marked [G] in PROTOCOL.md §6 are defaults, not facts."""

    number: str
    model: str
    variant: str
    input_channels: int
    output_channels: int
    max_sample_rate: int
    ptp: bool
    ranges: tuple[str, ...] = ("0.316 Vpeak", "10 Vpeak")
    filters: tuple[str, ...] = ("DC", "0.7 Hz", "7.0 Hz", "22.4 Hz", "Intensity")
    connectors: tuple[str, ...] = ()
    output_ranges: tuple[str, ...] = ()
    frontpanel: str = "2101"

    @property
    def sample_rates(self) -> list[int]:
        """Descending, as module/info lists them."""
        rates = [r for r in sorted(_BANDWIDTHS, reverse=True) if r <= self.max_sample_rate]
        return rates

    @property
    def max_bandwidth(self) -> str:
        return bandwidth_for_rate(self.max_sample_rate)


MODULE_TYPES: dict[str, ModuleTypeProfile] = {
    p.number: p
    for p in (
        ModuleTypeProfile("3050", "A", "060", 6, 0, 131072, True),
        ModuleTypeProfile("3053", "B", "120", 12, 0, 65536, True),
        ModuleTypeProfile(
            "3057",
            "B",
            "030",
            3,
            0,
            262144,
            True,
            filters=("DC", "0.1 Hz 10%", "0.7 Hz", "1.0 Hz 10%", "7.0 Hz", "22.4 Hz"),
            connectors=("BNC", "Charge", "Bridge", "Diff Charge"),
            frontpanel="2121",
        ),
        ModuleTypeProfile("3160", "A", "042", 4, 2, 131072, True, output_ranges=("10 Vpeak",)),
        ModuleTypeProfile("3676", "A", "000", 4, 0, 65536, False),
        ModuleTypeProfile(
            "3677",
            "A",
            "000",
            4,
            1,
            65536,
            False,
            ranges=("0.250 Vpeak", "10 Vpeak"),
            filters=("DC", "7.0 Hz", "22.4 Hz"),
            connectors=("BNC",),
            output_ranges=("10 Vpeak",),
        ),
    )
}

TYPES_WITHOUT_PTP = frozenset(n for n, p in MODULE_TYPES.items() if not p.ptp)


# --- JSON shapes ----------------------------------------------------------------------------


@dataclass
class Transducer:
    """A transducer as detection reports it and as a channel setup carries it (§5.4)."""

    type_number: str = "None"
    type_prefix: str = ""
    type_model: str = ""
    type_variant: str = ""
    serial_number: int = 0
    sensitivity: float = 1.0
    unit: str = "V"
    requires_ccld: bool = False
    requires_200v: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_neutral(self) -> bool:
        return self.type_number in ("None", "") and self.serial_number == 0

    @property
    def label(self) -> str:
        parts = [self.type_prefix, self.type_number, self.type_model, self.type_variant]
        name = "-".join(p for p in parts if p)
        return f"{name} s/n {self.serial_number}" if not self.is_neutral else "none"

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> Transducer:
        if not obj:
            return cls()
        lowered = {str(k).lower(): v for k, v in obj.items()}
        t = lowered.get("type") or {}
        t = {str(k).lower(): v for k, v in t.items()} if isinstance(t, dict) else {}
        known = {"type", "serialnumber", "sensitivity", "unit", "requiresccld", "requires200v"}
        return cls(
            type_number=str(t.get("number", "None")),
            type_prefix=str(t.get("prefix", "")),
            type_model=str(t.get("model", "")),
            type_variant=str(t.get("variant", "")),
            serial_number=int(lowered.get("serialnumber", 0) or 0),
            sensitivity=float(lowered.get("sensitivity", 1.0) or 1.0),
            unit=str(lowered.get("unit", "V")),
            requires_ccld=as_bool(lowered.get("requiresccld", False)),
            requires_200v=as_bool(lowered.get("requires200v", False)),
            extra={k: v for k, v in obj.items() if str(k).lower() not in known},
        )

    def to_json(self, flags_as_int: bool = False) -> dict[str, Any]:
        """Detection answers carry 0/1 flags (REF17); setups carry booleans (Q30)."""
        flag = (lambda b: int(b)) if flags_as_int else (lambda b: bool(b))
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "requires200V": flag(self.requires_200v),
                "requiresCcld": flag(self.requires_ccld),
                "sensitivity": self.sensitivity,
                "serialNumber": self.serial_number,
                "type": {
                    "model": self.type_model,
                    "number": self.type_number,
                    "prefix": self.type_prefix,
                    "variant": self.type_variant,
                },
                "unit": self.unit,
            }
        )
        return out


@dataclass
class ChannelSetup:
    """One entry of channels[] in a setup (§5.3). Unknown keys survive in ``extra``."""

    channel: int
    enabled: bool = True
    name: str = ""
    bandwidth: str = "51.2 kHz"
    range: str = "10 Vpeak"
    filter: str = "7.0 Hz"
    ccld: bool = False
    polvolt: bool = False
    floating: bool = False
    destinations: list[str] = field(default_factory=lambda: ["sd"])
    transducer: Transducer = field(default_factory=Transducer)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_rate(self) -> int:
        return rate_for_bandwidth(self.bandwidth)

    @property
    def scale_factor(self) -> float:
        return scale_factor(self.range, self.transducer.sensitivity)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ChannelSetup:
        """Lenient, like a module: keys match case-insensitively, 0/1 count as booleans."""
        lowered = {str(k).lower(): (k, v) for k, v in obj.items()}

        def get(key: str, default: Any) -> Any:
            return lowered[key][1] if key in lowered else default

        if "channel" not in lowered:
            raise ValueError("a channel entry has no 'channel' number")
        known = {
            "channel",
            "enabled",
            "name",
            "bandwidth",
            "range",
            "filter",
            "ccld",
            "polvolt",
            "floating",
            "destinations",
            "destination",
            "transducer",
        }
        destinations = get("destinations", get("destination", ["sd"]))
        if isinstance(destinations, str):
            destinations = [destinations]
        return cls(
            channel=int(get("channel", 0)),
            enabled=as_bool(get("enabled", True)),
            name=str(get("name", f"Channel {get('channel', 0)}")),
            bandwidth=str(get("bandwidth", "51.2 kHz")),
            range=str(get("range", "10 Vpeak")),
            filter=str(get("filter", "7.0 Hz")),
            ccld=as_bool(get("ccld", False)),
            polvolt=as_bool(get("polvolt", False)),
            floating=as_bool(get("floating", False)),
            destinations=[str(d) for d in destinations],
            transducer=Transducer.from_json(get("transducer", None)),
            extra={orig: v for low, (orig, v) in lowered.items() if low not in known},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "bandwidth": self.bandwidth,
                "ccld": self.ccld,
                "channel": self.channel,
                "destinations": list(self.destinations),
                "enabled": self.enabled,
                "filter": self.filter,
                "floating": self.floating,
                "name": self.name,
                "polvolt": self.polvolt,
                "range": self.range,
                "transducer": self.transducer.to_json(),
            }
        )
        return out


def enabled_channels(channels: list[ChannelSetup]) -> list[ChannelSetup]:
    """Enabled channels in channel order: signal ID i+1 belongs to entry i (stream-format §9.3)."""
    return sorted((c for c in channels if c.enabled), key=lambda c: c.channel)


@dataclass
class ModuleInfo:
    """The parts of GET module/info the dashboard uses; ``raw`` keeps the whole answer."""

    type_number: str
    serial: int
    firmware: str
    hardware: str
    input_channels: int
    output_channels: int
    sample_rates: list[int]
    ranges: list[str]
    filters: list[str]
    module_state: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def supports_ptp(self) -> bool:
        return self.type_number not in TYPES_WITHOUT_PTP

    @property
    def name(self) -> str:
        """The mDNS-style name a module is known by, e.g. BK3160-100402."""
        return f"BK{self.type_number}-{self.serial:06d}"

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ModuleInfo:
        module = obj.get("module") or {}
        mtype = module.get("type") or {}
        version = module.get("version") or {}
        return cls(
            type_number=str(mtype.get("number", "")),
            serial=int(module.get("serial", 0) or 0),
            firmware=str(version.get("firmware", "")),
            hardware=str(version.get("hardware", "")),
            input_channels=int(obj.get("numberOfInputChannels", 0) or 0),
            output_channels=int(obj.get("numberOfOutputChannels", 0) or 0),
            sample_rates=[int(r) for r in obj.get("supportedSampleRates", [])],
            ranges=[str(r) for r in obj.get("supportedRanges", [])],
            filters=[str(f) for f in obj.get("supportedFilters", [])],
            module_state=str(obj.get("moduleState", "")),
            raw=obj,
        )
