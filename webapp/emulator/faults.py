"""Fault injection: the spec syntax, and the per-channel fault history the stream is built from.

A fault spec on the command line is ``MODULE:KIND[:ARG][@SECONDS[+DURATION]]``: module number
from 1, ``@SECONDS`` delays the fault to that many seconds into the (first) measurement that
lasts that long, ``+DURATION`` clears it again after that many seconds. At run time the same
faults are set through the emulator endpoint (see docs/emulator.md).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from enum import StrEnum

from webapp.openapi.model import ModuleTypeProfile
from webapp.openapi.stream import Validity


class FaultKind(StrEnum):
    PTP_NO_LOCK = "ptp-no-lock"
    CABLE_FAULT = "cable-fault"
    OVERLOAD = "overload"
    CMOL = "cmol"
    STREAM_DROP = "stream-drop"
    HTTP_500 = "http-500"
    UNREACHABLE = "unreachable"


CHANNEL_FAULTS = {
    FaultKind.CABLE_FAULT: "cf",
    FaultKind.OVERLOAD: "anol",
    FaultKind.CMOL: "cmol",
}
"""Channel fault kinds and the channelStatus field each shows up in."""

CHANNEL_FAULT_VALIDITY = {
    FaultKind.CABLE_FAULT: Validity.INVALID,
    FaultKind.OVERLOAD: Validity.CLIPPED,
    FaultKind.CMOL: Validity.INVALID,
}


class FaultSpecError(ValueError):
    """A fault that cannot be set; ``field`` is the part of the request that is wrong: "kind",
    "arg" (the channel or path), "module", "at" or "duration"."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    arg: str | None = None

    @property
    def channel(self) -> int:
        """The channel of a channel fault."""
        return int(self.arg or 0)

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.kind.value, self.arg)

    def describe(self) -> str:
        return f"{self.kind.value}:{self.arg}" if self.arg is not None else self.kind.value


@dataclass(frozen=True)
class FaultSpec:
    """A fault for one module, possibly delayed into the measurement and limited in time."""

    module: int  # 1-based; 0 in a module's own endpoint
    fault: Fault
    at_seconds: float | None = None
    duration: float | None = None


_SPEC = re.compile(
    r"^(?P<module>\d+):(?P<kind>[a-z0-9-]+)(?::(?P<arg>[^@]+))?"
    r"(?:@(?P<at>\d+(?:\.\d*)?)(?:\+(?P<dur>\d+(?:\.\d*)?))?)?$"
)


def make_fault(kind: str, arg: object = None) -> Fault:
    """Validate a kind and its argument (a channel number, a path) into a fault."""
    try:
        fkind = FaultKind(str(kind).strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise FaultSpecError(f"unknown fault kind {kind!r} (known: {known})", "kind") from None
    text = None if arg is None or arg == "" else str(arg).strip()
    if fkind in CHANNEL_FAULTS:
        if text is None or not text.isdigit() or int(text) < 1:
            raise FaultSpecError(
                f"{fkind.value} needs a channel number from 1, e.g. {fkind}:2", "arg"
            )
        text = str(int(text))
    elif fkind is FaultKind.HTTP_500:
        if not text:
            raise FaultSpecError("http-500 needs a path, e.g. http-500:measurements", "arg")
        text = normalise_path(text)
    elif text is not None:
        raise FaultSpecError(f"{fkind.value} takes no argument (got {text!r})", "arg")
    return Fault(fkind, text)


def parse_fault_spec(text: str) -> FaultSpec:
    match = _SPEC.match(text.strip())
    if not match:
        raise FaultSpecError(
            f"fault spec {text!r} is not MODULE:KIND[:ARG][@SECONDS[+DURATION]], "
            "e.g. 2:overload:1@3 or 1:http-500:measurements"
        )
    module = int(match["module"])
    if module < 1:
        raise FaultSpecError(f"fault spec {text!r}: modules are numbered from 1", "module")
    fault = make_fault(match["kind"], match["arg"])
    at = float(match["at"]) if match["at"] else None
    duration = float(match["dur"]) if match["dur"] else None
    return FaultSpec(module, fault, at, duration)


def check_fault_fits(fault: Fault, profile: ModuleTypeProfile) -> None:
    """A channel fault must name a channel the module type has (make_fault only knows it is
    a number from 1)."""
    if fault.kind in CHANNEL_FAULTS and fault.channel > profile.input_channels:
        raise FaultSpecError(
            f"{fault.kind.value} on channel {fault.channel}, but a Type {profile.number} has "
            f"input channels 1 to {profile.input_channels}",
            "arg",
        )


def normalise_path(path: str) -> str:
    """A request path as faults match it: lower case, no /rest/rec prefix, no slashes around."""
    path = path.strip().lower().split("?", 1)[0].strip("/")
    for prefix in ("rest/rec/", "rest/rec"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return path.strip("/")


class ChannelFaultTimeline:
    """When each channel fault was active, on the module's block grid.

    The streamer builds every block from the faults active at the block's start time; a slow
    reader that sends a block long after it was produced still sends it as it was, because the
    history is kept rather than only the present state.
    """

    def __init__(self) -> None:
        self._times: list[int] = []
        self._states: list[frozenset[tuple[FaultKind, int]]] = [frozenset()]
        self._current: frozenset[tuple[FaultKind, int]] = frozenset()

    @property
    def current(self) -> frozenset[tuple[FaultKind, int]]:
        return self._current

    def set(self, kind: FaultKind, channel: int, active: bool, from_tick: int) -> None:
        item = (kind, channel)
        new = self._current | {item} if active else self._current - {item}
        if new == self._current:
            return
        # Changes are applied in time order; a change for an earlier tick replaces later ones.
        while self._times and self._times[-1] >= from_tick:
            self._times.pop()
            self._states.pop()
        self._times.append(from_tick)
        self._states.append(new)
        self._current = new

    def at(self, tick: int) -> frozenset[tuple[FaultKind, int]]:
        return self._states[bisect.bisect_right(self._times, tick)]

    def prune(self, before_tick: int) -> None:
        """Forget changes older than ``before_tick`` (nothing before it will be asked for)."""
        i = bisect.bisect_right(self._times, before_tick)
        if i:
            del self._times[:i]
            del self._states[:i]
