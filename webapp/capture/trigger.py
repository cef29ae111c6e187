"""Level triggers and recording plans: what to cut from a running measurement, and when.

One place for the rules, used by the terminal (``capture --trigger 1:2>30``), HTTP and
Socket.IO: :class:`TriggerSpec` parses and checks a trigger, :class:`RecordPlan` a whole plan
(trigger, pre-trigger, duration, events, hold-off, segments, start time) and :class:`LevelDetector`
finds the first sample through the level, on every sample of the trigger channel.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from webapp.capture.levels import RAW_FULL_SCALE
from webapp.capture.settings import SettingsError

MAX_PRE_TRIGGER_S = 60.0
"""Longest pre-trigger time: the ring buffers hold it in memory for every stream."""
RING_MARGIN_S = 2.0
"""Stream time the ring keeps beyond the pre-trigger: modules arrive a little apart, and a
window starts at the next block boundary of the fastest one."""
RING_MEMORY_LIMIT = 1 << 30
"""Bytes all ring buffers together may hold."""
MIN_SEGMENT_S = 0.1

_TRIGGER = re.compile(
    r"^\s*(\d+)\s*:\s*(\d+)\s*([<>])\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class TriggerSpec:
    """A level trigger: module number (from 1), channel (from 1), slope, level in the
    channel's engineering unit (after the transducer's sensitivity)."""

    module: int
    channel: int
    slope: str
    level: float

    @classmethod
    def parse(cls, text: str, field: str = "trigger") -> TriggerSpec:
        """``"1:2>30"``: module 1, channel 2, rising through 30; ``<`` for falling."""
        m = _TRIGGER.match(text or "")
        if not m:
            raise SettingsError(
                field,
                f"{text!r} is not a trigger: write MODULE:CHANNEL>LEVEL (rising) or "
                "MODULE:CHANNEL<LEVEL (falling), e.g. 1:2>30",
            )
        spec = cls(
            int(m.group(1)), int(m.group(2)), "rising" if m.group(3) == ">" else "falling",
            float(m.group(4)),
        )  # fmt: skip
        spec.check(field)
        return spec

    @classmethod
    def from_json(cls, obj: Any, field: str = "trigger") -> TriggerSpec:
        if isinstance(obj, str):
            return cls.parse(obj, field)
        if not isinstance(obj, dict):
            raise SettingsError(field, "must be an object with module, channel, slope and level")
        try:
            spec = cls(
                int(obj["module"]), int(obj["channel"]), str(obj.get("slope", "rising")),
                float(obj["level"]),
            )  # fmt: skip
        except KeyError as exc:
            raise SettingsError(f"{field}.{exc.args[0]}", "is required") from None
        except (TypeError, ValueError):
            raise SettingsError(
                field, "module and channel must be whole numbers, level a number"
            ) from None
        spec.check(field)
        return spec

    def check(self, field: str = "trigger") -> None:
        if self.module < 1:
            raise SettingsError(f"{field}.module", "module numbers start at 1")
        if self.channel < 1:
            raise SettingsError(f"{field}.channel", "channel numbers start at 1")
        if self.slope not in ("rising", "falling"):
            raise SettingsError(f"{field}.slope", "must be rising or falling")
        if not math.isfinite(self.level):
            raise SettingsError(f"{field}.level", "must be a finite number")

    def describe(self, unit: str = "") -> str:
        sign = ">" if self.slope == "rising" else "<"
        level = f"{self.level:g} {unit}".strip()
        return f"module {self.module} channel {self.channel} {sign} {level} ({self.slope})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecordPlan:
    """What a monitoring session records: see docs/capture.md, "Windows, triggers, segments".

    * ``mode`` ``"manual"``: a recording from the next block boundary, for ``duration_s`` or
      until Stop recording (``duration_s`` None);
    * ``"trigger"``: each time ``trigger`` fires (or on a manual trigger), a recording from
      ``pre_trigger_s`` before it to ``duration_s`` after it; ``events`` times (None: until
      stopped), the next one no earlier than ``hold_off_s`` after the previous one ended;
    * ``"segments"``: consecutive recordings of ``segment_s`` each, ``duration_s`` in all
      (None: until stopped).

    ``start_at`` (seconds since 1970, the modules' PTP time) delays a manual or segmented
    recording to that moment.
    """

    name: str = "My Measurement"
    mode: str = "manual"
    duration_s: float | None = None
    trigger: TriggerSpec | None = None
    pre_trigger_s: float = 0.0
    events: int | None = 1
    hold_off_s: float = 0.0
    segment_s: float | None = None
    start_at: float | None = None
    test: dict[str, Any] | None = None
    """The recordings' test metadata (checked by webapp/capture/labels.py's rules on the way
    in); None: the armed settings'."""

    def validate(self) -> None:
        if self.mode not in ("manual", "trigger", "segments"):
            raise SettingsError("mode", "must be manual, trigger or segments")
        if self.duration_s is not None and not self.duration_s > 0:
            raise SettingsError("duration_s", "must be a number of seconds above 0")
        if not 0 <= self.pre_trigger_s <= MAX_PRE_TRIGGER_S:
            raise SettingsError(
                "pre_trigger_s", f"must be between 0 and {MAX_PRE_TRIGGER_S:g} seconds"
            )
        if self.hold_off_s < 0:
            raise SettingsError("hold_off_s", "must be 0 or more seconds")
        if self.events is not None and self.events < 1:
            raise SettingsError("events", "must be 1 or more (or left out: until stopped)")
        if self.mode == "trigger" and self.duration_s is None:
            raise SettingsError(
                "duration_s", "a triggered recording needs its length after the trigger"
            )
        if self.mode == "segments" and (self.segment_s is None or self.segment_s < MIN_SEGMENT_S):
            raise SettingsError("segment_s", f"segments must be at least {MIN_SEGMENT_S:g} s long")
        if self.start_at is not None and self.mode == "trigger":
            raise SettingsError("start_at", "a triggered recording starts at its trigger")
        if self.trigger is not None:
            self.trigger.check()

    def retention_s(self) -> float:
        return (self.pre_trigger_s if self.mode == "trigger" else 0.0) + RING_MARGIN_S

    def check_memory(self, bytes_per_s: float) -> None:
        """Refuse a pre-trigger time whose ring buffers would not fit in memory."""
        need = bytes_per_s * self.retention_s()
        if need > RING_MEMORY_LIMIT:
            raise SettingsError(
                "pre_trigger_s",
                f"{self.pre_trigger_s:g} s of pre-trigger needs {need / 1e9:.1f} GB of memory at "
                f"this rig's {bytes_per_s / 1e6:.1f} MB/s; at most {RING_MEMORY_LIMIT / 1e9:.1f} GB",
            )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["trigger"] = self.trigger.to_json() if self.trigger else None
        return out


class LevelDetector:
    """Finds where one signal passes through a level, sample by sample.

    Works on the raw Q23 integers: the level is turned into a raw threshold once the signal's
    scale factor and offset are known (physical = raw / 2^23 × scale + offset), so a block
    costs one vectorised comparison. Rising: the first sample above the level whose predecessor
    was at or below it; falling mirrored. Fires at most ``events`` times (None: no limit), the
    next one no earlier than ``rearm_ticks`` after the previous.
    """

    def __init__(self, spec: TriggerSpec, scale: float, offset: float, tps: int) -> None:
        self.spec = spec
        self.tps = tps
        self.threshold = (spec.level - offset) / scale * RAW_FULL_SCALE if scale else math.inf
        self.rising = spec.slope == "rising"
        self._previous: int | None = None
        self.armed_from: int = 0
        """No event before this stream time (hold-off after the previous event)."""
        self.enabled = True
        self.fired = 0
        """Events fired so far."""

    def feed(self, start_ticks: int, raw: np.ndarray) -> int | None:
        """The time of the first crossing in this block (None when none)."""
        if not len(raw):
            return None
        values = raw.astype(np.int64, copy=False)
        level = self.threshold
        previous = self._previous
        self._previous = int(values[-1])
        if not self.enabled:
            return None
        above = values > level if self.rising else values < level
        if previous is None:
            before = np.concatenate(([True], ~above[:-1]))
            before[0] = False  # the very first sample has no predecessor
        else:
            was = previous > level if self.rising else previous < level
            before = np.concatenate(([not was], ~above[:-1]))
        hits = np.flatnonzero(above & before)
        if not len(hits):
            return None
        if self.armed_from > start_ticks:
            skip = -(-(self.armed_from - start_ticks) // self.tps)
            hits = hits[hits >= skip]
            if not len(hits):
                return None
        return start_ticks + int(hits[0]) * self.tps
