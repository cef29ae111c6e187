"""What a capture reads as: its modules, files and channels (with the segments, gaps and
quality changes that place every sample), the problems found, and windows of samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from webapp.analysis.index import FileIndex
from webapp.capture.labels import dof
from webapp.openapi import units
from webapp.openapi.stream import ticks_per_sample, validity_names

FULL_SCALE = float(1 << 23)
TICKS_PER_SECOND = 1 << 32


@dataclass
class Problem:
    severity: str  # "error" (data lost or wrong), "warning" (suspicious), "info"
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "where": self.where, "message": self.message}

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class Segment:
    """Equally spaced blocks of one signal in one file, contiguous in time."""

    pos: int
    rows: int
    count: int
    voff: int
    stride: int
    factor: float
    offset: float
    file: int

    @property
    def end(self) -> int:
        return self.pos + self.rows * self.count


@dataclass
class Gap:
    pos: int
    missing: int
    ticks: int


@dataclass
class QualityChange:
    pos: int
    ticks: int
    validity: int

    @property
    def flags(self) -> list[str]:
        return validity_names(self.validity)


@dataclass
class CaptureModule:
    number: int
    name: str = ""
    type: str = ""
    serial: int = 0
    address: str = ""
    role: str = ""
    firmware: str = ""
    hardware: str = ""
    channels: list[str] = field(default_factory=list)
    """Keys of this module's channels, in channel order."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "type": self.type,
            "serial": self.serial,
            "address": self.address,
            "role": self.role,
            "firmware": self.firmware,
            "hardware": self.hardware,
        }


@dataclass
class StreamFile:
    path: Path
    module: int
    channels: list[int] | None
    index: FileIndex
    expected_bytes: int | None = None
    expected_sha256: str | None = None


@dataclass
class Channel:
    key: str
    module: int
    channel: int
    signal_id: int
    file: int
    """Index into ``Capture.files``."""
    name: str
    unit: str
    sample_rate: int
    scale_factor: float
    offset: float
    start_ticks: int
    length: int
    """Samples from the first to the last one, gaps included."""
    present: int
    """Samples actually in the files."""
    segments: list[Segment]
    ordered: bool
    gaps: list[Gap] = field(default_factory=list)
    quality: list[QualityChange] = field(default_factory=list)
    overlap: int = 0
    misaligned: int = 0
    blocks: int = 0
    setup: dict[str, Any] | None = None
    transducer: dict[str, Any] | None = None
    range: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    """name, point, direction, group, note (capture.json ``channels``; empty: none given)."""
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    """End position of every segment (for searching ordered segments)."""

    @property
    def ticks_per_sample(self) -> int:
        return ticks_per_sample(self.sample_rate)

    @property
    def end_ticks(self) -> int:
        return self.start_ticks + self.length * self.ticks_per_sample

    @property
    def duration_s(self) -> float:
        return self.length / self.sample_rate

    @property
    def label(self) -> str:
        return f"module {self.module} channel {self.channel}"

    def index_at(self, ticks: int) -> int:
        """First sample index at or after ``ticks`` (may be outside the channel)."""
        return -((self.start_ticks - ticks) // self.ticks_per_sample)

    def flags_at(self, pos: int) -> int:
        validity = 0
        for change in self.quality:
            if change.pos > pos:
                break
            validity = change.validity
        return validity

    def metadata(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "module": self.module,
            "channel": self.channel,
            "signal_id": self.signal_id,
            "name": self.name,
            "unit": self.unit,
            "sample_rate": self.sample_rate,
            "scale_factor": self.scale_factor,
            "offset": self.offset,
            "range": self.range,
            **units.describe(self.unit),
            "full_scale": units.full_scale_of(self.scale_factor) if self.scale_factor else None,
            "start_ticks": self.start_ticks,
            "start_time": iso_time(self.start_ticks),
            "samples": self.length,
            "present": self.present,
            "duration_s": self.duration_s,
            "transducer": self.transducer,
            **{k: self.labels.get(k, "") for k in ("point", "direction", "group", "note")},
            "dof": dof(self.labels),
        }


def iso_time(ticks: int) -> str:
    """UTC ISO 8601 with microseconds (ticks are exact; the string is for people)."""
    seconds, frac = divmod(ticks, TICKS_PER_SECOND)
    micro = (frac * 1_000_000) // TICKS_PER_SECOND
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micro).isoformat()


@dataclass
class Window:
    """The samples of every requested channel between two instants."""

    start_ticks: int
    end_ticks: int
    parts: dict[str, tuple[int, np.ndarray]]
    """Per channel key: (index of the first sample in the channel, values)."""
