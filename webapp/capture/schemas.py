"""The rules for what a user may ask for, written once as pydantic models and shared types.

Every path that takes input builds one of these: the capture settings (HTTP, Socket.IO and the
``capture`` command all make a :class:`~webapp.capture.settings.CaptureSettings`, which checks
itself with :class:`CaptureSettingsModel`), and the web requests in :mod:`webapp.engine.schemas`,
whose fields use the same types (:data:`Name`, :data:`Seconds`, :data:`PtpDomain`, ...).

A refused value becomes one :class:`FieldError` through :func:`field_error`: ``field`` is the
machine path of the input (``modules[1]``, ``channels.10.0.0.2[0].range``; the front end and
scripts match on it), ``message`` says it in the user's terms and never holds an index or a
pydantic location: "module 2 (10.0.0.2:0): port '0' ... is not 1..65535", "10.0.0.2 channel 4:
range must be text". Addresses are compared through :func:`address_key`, the one normalisation
(host case, default port 80, IPv6 brackets).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from webapp.capture.names import check_name
from webapp.openapi.client import parse_address
from webapp.openapi.model import PTP_DOMAIN_MAX, PTP_DOMAIN_MIN, rate_for_bandwidth

STREAM_DROP_CHOICES = ("reconnect", "fail")
DEFAULT_ON_STREAM_DROP = "reconnect"
DEFAULT_DISK_MARGIN_S = 30.0
CHANNEL_MAX = 64
"""Highest channel number a request may name (the module's own count is checked on arming)."""


class FieldError(ValueError):
    """Bad input: ``field`` is the machine path, ``message`` the user's words (also ``str``)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def refuse(message: str, *at: str | int, whole: bool = False) -> PydanticCustomError:
    """A refusal in our words: ``message`` follows the field's name ("must be ..."), or is a
    sentence of its own when ``whole``; ``at`` extends the location (a model-level check that
    blames one item, e.g. ``("modules", 1)``)."""
    ctx = {"message": message, "at": list(at), "whole": whole}
    return PydanticCustomError("lanxi", "{message}", ctx)


# --- shared field types --------------------------------------------------------------------


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise refuse("must be an address such as 192.168.1.20")
    try:
        parse_address(value)
    except ValueError as exc:
        raise refuse(str(exc), whole=True) from None
    if len(value.strip()) > 255:
        raise refuse("is longer than 255 characters")
    return value.strip()


def address_key(address: str) -> tuple[str, int]:
    """The one normal form of a module address: ``A``, ``a``, ``A:80`` are one module, as are
    ``::1``, ``[::1]`` and ``[::1]:80``."""
    parsed = parse_address(address)
    host = parsed.host.lower().rstrip(".")
    return host, parsed.port


def _name(value: Any) -> str:
    try:
        return check_name(value)
    except ValueError as exc:
        raise refuse(str(exc), whole=True) from None


def _bandwidth(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse("must be text such as '51.2 kHz', or null for the highest")
    try:
        rate_for_bandwidth(value)
    except ValueError as exc:
        raise refuse(str(exc), whole=True) from None
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise refuse("must be a finite number")
    return value


def _positive_seconds(value: float) -> float:
    if not math.isfinite(value) or not value > 0:
        raise refuse(f"must be a positive number of seconds, not {value!r}")
    return value


Address = Annotated[str, BeforeValidator(_address)]
"""host, host:port (1..65535), IPv4, IPv6 or [IPv6]:port."""
Name = Annotated[str, BeforeValidator(_name)]
"""A capture name: the file-name rule of :mod:`webapp.capture.names`, normalised."""
Seconds = Annotated[float, AfterValidator(_positive_seconds)]
PtpDomain = Annotated[int, Field(ge=PTP_DOMAIN_MIN, le=PTP_DOMAIN_MAX)]
Bandwidth = Annotated[str | None, BeforeValidator(_bandwidth)]
StreamDrop = Literal["reconnect", "fail"]
DiskMargin = Annotated[float, Field(ge=0), AfterValidator(_finite)]
ChannelNumber = Annotated[int, Field(ge=1, le=CHANNEL_MAX)]
Text32 = Annotated[str, Field(min_length=1, max_length=32)]
"""A range or filter name as the module spells it ("10 Vpeak", "7.0 Hz")."""
Sensitivity = Annotated[float, Field(gt=0), AfterValidator(_finite)]
Unit = Annotated[str, Field(min_length=1, max_length=16)]
Serial = Annotated[int, Field(ge=0)]


class Strict(BaseModel):
    """No coercion ("5" is not 5, 1 is not true) and no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid")


class ChannelBase(Strict):
    channel: ChannelNumber
    enabled: bool | None = None
    range: Text32 | None = None
    filter: Text32 | None = None
    ccld: bool | None = None
    polvolt: bool | None = None


class ManualTransducer(Strict):
    """A sensor without TEDS, as the capture settings carry it (the module's key names)."""

    sensitivity: Sensitivity
    unit: Unit = "V"
    serialNumber: Serial = 0
    type: Any = None
    requires200V: bool = False
    requiresCcld: bool = False

    @model_validator(mode="after")
    def _type(self) -> ManualTransducer:
        if self.type is not None and not isinstance(self.type, str | dict):
            raise refuse("must be a string or an object", "type")
        return self


class ChannelModel(ChannelBase):
    transducer: ManualTransducer | None = None


GENERATOR_SIGNALS = (
    "none", "sine", "square", "dc", "linsweep", "logsweep", "random", "p_random", "stream",
)  # fmt: skip
Level = Annotated[float, Field(ge=-1, le=1), AfterValidator(_finite)]
Hertz = Annotated[float, Field(gt=0, le=1e6), AfterValidator(_finite)]
PerSecond = Annotated[float, Field(gt=0), AfterValidator(_finite)]
Switch = Annotated[int, Field(ge=0, le=1)]
"""0 or 1 (the module's on/off fields); true and false are taken too."""
GENERATOR_NEEDS: dict[str, tuple[str, ...]] = {
    "sine": ("frequency",),
    "square": ("frequency",),
    "linsweep": ("start_frequency", "stop_frequency", "hz_second"),
    "logsweep": ("start_frequency", "stop_frequency", "decades_sec"),
    "random": ("bandwidth",),
    "p_random": ("bandwidth",),
}
"""The fields a waveform cannot do without (PROTOCOL.md §5.7)."""


class GeneratorInputModel(BaseModel):
    """A waveform input of a generator output (PROTOCOL.md §5.7). The fields of the built-in
    waveforms are checked here, for every path (the dashboard's generator panel, a start
    request, ``capture --generator``); further module fields go to the module as given."""

    model_config = ConfigDict(strict=True, extra="allow")
    number: Literal[1, 2]
    signalType: Literal[GENERATOR_SIGNALS]  # type: ignore[valid-type]
    gain: Level | None = None
    offset: Level | None = None
    frequency: Hertz | None = None
    phase: Annotated[float, Field(ge=0, lt=360), AfterValidator(_finite)] | None = None
    highlevel: Level | None = None
    lowlevel: Level | None = None
    dutycycle: Annotated[float, Field(ge=0, le=100), AfterValidator(_finite)] | None = None
    repetitions: Annotated[int, Field(ge=0)] | None = None
    start_frequency: Hertz | None = None
    stop_frequency: Hertz | None = None
    hz_second: PerSecond | None = None
    decades_sec: PerSecond | None = None
    direction: Switch | None = None
    center_frequency: Annotated[float, Field(ge=0, le=1e6), AfterValidator(_finite)] | None = None
    bandwidth: Hertz | None = None
    hp_filter: Switch | bool | None = None
    pink_filter: Switch | bool | None = None
    gen_number: Annotated[int, Field(ge=0, le=15)] | None = None

    @model_validator(mode="after")
    def _waveform(self) -> GeneratorInputModel:
        kind = str(self.signalType)
        for key in GENERATOR_NEEDS.get(kind, ()):
            if getattr(self, key) is None:
                raise refuse(f"a {kind} waveform needs {key}", key, whole=True)
        if kind in ("linsweep", "logsweep") and self.start_frequency == self.stop_frequency:
            raise refuse(
                "a sweep's start and stop frequency must differ", "stop_frequency", whole=True
            )
        return self


class GeneratorOutputModel(Strict):
    number: Annotated[int, Field(ge=1, le=8)]
    gain: Annotated[float, Field(ge=0, le=1), AfterValidator(_finite)] = 1.0
    offset: Level = 0.0
    floating: bool = False
    mixfunction: Literal["sum", "mul"] = "sum"
    inputs: Annotated[list[GeneratorInputModel], Field(min_length=1, max_length=2)]

    @model_validator(mode="after")
    def _inputs_once(self) -> GeneratorOutputModel:
        numbers = [i.number for i in self.inputs]
        if len(set(numbers)) != len(numbers):
            raise refuse("each input needs its own number 1 or 2", "inputs", whole=True)
        return self


def check_generators_request(generators: dict[str, list[GeneratorOutputModel]]) -> None:
    """No output twice per module (the rule of every path that drives outputs)."""
    for address, outputs in generators.items():
        numbers = [o.number for o in outputs]
        for j, n in enumerate(numbers):
            if n in numbers[:j]:
                raise refuse(
                    f"generator output {n} is given twice", "generators", address, j,
                    whole=True,
                )  # fmt: skip


def _no_channel_twice(rows: list[Any], where: tuple[str | int, ...]) -> None:
    seen: set[int] = set()
    for j, row in enumerate(rows):
        number = row.channel
        if number in seen:
            raise refuse(f"channel {number} is given twice", *where, j, "channel", whole=True)
        seen.add(number)


class CaptureSettingsModel(Strict):
    modules: Annotated[list[Address], Field(min_length=1)]
    name: Name = "My Measurement"
    duration_s: Seconds | None = 10.0
    ptp_domain: PtpDomain = 42
    bandwidth: Bandwidth = None
    channels: dict[str, list[ChannelModel]] = {}
    multi_socket: bool = False
    ptp_timeout_s: Seconds = 600.0
    state_timeout_s: Seconds = 30.0
    return_to_standalone: bool = True
    on_stream_drop: StreamDrop = DEFAULT_ON_STREAM_DROP
    disk_margin_s: DiskMargin = DEFAULT_DISK_MARGIN_S
    generators: dict[str, list[GeneratorOutputModel]] = {}
    """Generator outputs started with each recording, keyed by module address."""

    @model_validator(mode="after")
    def _across_fields(self) -> CaptureSettingsModel:
        distinct_modules(self.modules)
        for i, address in enumerate(self.modules):
            try:
                parse_address(address).resolve()
            except OSError as exc:
                raise refuse(
                    f"{address} does not resolve ({exc.strerror or exc})",
                    "modules",
                    i,
                    whole=True,
                ) from None
        for address, rows in self.channels.items():
            if address not in self.modules:
                raise refuse(
                    f"{address} is not one of the capture's modules",
                    "channels",
                    address,
                    whole=True,
                )
            _no_channel_twice(rows, ("channels", address))
        for address in self.generators:
            if address not in self.modules:
                raise refuse(
                    f"{address} is not one of the capture's modules",
                    "generators",
                    address,
                    whole=True,
                )
        check_generators_request(self.generators)
        return self


def distinct_modules(addresses: list[str], known: list[str] | None = None) -> None:
    """Refuse an address that names the same module as an earlier one (``A`` and ``A:80``);
    ``known`` are addresses already in use (the rig), checked first."""
    seen = {address_key(a): a for a in known or []}
    for i, address in enumerate(addresses):
        key = address_key(address)
        if key in seen:
            raise refuse(
                f"{address} is the same module as {seen[key]}; give distinct modules",
                "modules",
                i,
                whole=True,
            )
        seen[key] = address


# --- errors in the user's terms ------------------------------------------------------------

_MESSAGES = {
    "missing": "is missing",
    "extra_forbidden": "is not a known setting",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "finite_number": "must be a finite number",
    "too_short": "must not be empty",
}


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _describe(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "lanxi":
        return str(ctx["message"])
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "greater_than":
        return f"must be more than {_num(ctx['gt'])}"
    if kind == "greater_than_equal":
        return f"must be {_num(ctx['ge'])} or more"
    if kind == "less_than":
        return f"must be less than {_num(ctx['lt'])}"
    if kind == "less_than_equal":
        return f"must be {_num(ctx['le'])} or less"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    message = str(err.get("msg") or "is not valid")
    return message[:1].lower() + message[1:]


def _machine_path(loc: list[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _get(data: Any, key: str | int) -> Any:
    if isinstance(data, dict):
        return data.get(key)
    if isinstance(data, list | tuple) and isinstance(key, int) and 0 <= key < len(data):
        return data[key]
    return getattr(data, str(key), None) if not isinstance(key, int) else None


_PER_MODULE_LISTS = {
    "channels": ("channel", "channel", "channels"),
    "generators": ("number", "output", "generator outputs"),
}
"""Lists keyed by module address in a request: (the entry's number field, the entry's name,
the list's name) for the messages."""


def _user_path(loc: list[str | int], data: Any) -> tuple[str, str]:
    """(where, what) for a location: ("module 2 (10.0.0.2)", "") or
    ("10.0.0.2 channel 4", "transducer sensitivity") or ("", "duration_s")."""
    where, what = "", []
    node: Any = data
    i = 0
    while i < len(loc):
        part = loc[i]
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if part == "modules" and isinstance(nxt, int):
            address = _get(_get(node, part), nxt)
            where = f"module {nxt + 1}" + (f" ({address})" if isinstance(address, str) else "")
            node, i, what = address, i + 2, []
            continue
        if part in _PER_MODULE_LISTS and isinstance(nxt, str):
            # A module's list (its channel rows, its generator outputs), then maybe one entry
            # of it, named by its own number: "ADDR channel 4", "ADDR output 1".
            key, noun, plural = _PER_MODULE_LISTS[part]
            entries = _get(_get(node, part), nxt)
            if i + 2 < len(loc) and isinstance(loc[i + 2], int):
                j = int(loc[i + 2])
                entry = _get(entries, j)
                number = _get(entry, key)
                ok = isinstance(number, int) and not isinstance(number, bool)
                where = f"{nxt} {noun} {number}" if ok else f"{nxt} {noun} entry {j + 1}"
                node, i, what = entry, i + 3, []
                continue
            where, node, i, what = f"{nxt} {plural}", entries, i + 2, []
            continue
        if part == "outputs" and isinstance(nxt, str) and i == 0:
            where, node = nxt, _get(_get(node, part), nxt)
            i, what = i + 2, []
            if i < len(loc) and isinstance(loc[i], int):
                what, node, i = [f"output entry {int(loc[i]) + 1}"], None, i + 1
            continue
        if part == "inputs" and isinstance(nxt, int) and " output " in where:
            item = _get(_get(node, part), nxt)
            number = _get(item, "number")
            ok = number in (1, 2) and not isinstance(number, bool)
            where += f", input {number}" if ok else f", input entry {nxt + 1}"
            node, i, what = item, i + 2, []
            continue
        if part == "address" and i == 0 and isinstance(_get(node, part), str):
            where, node, i = str(_get(node, part)).strip(), None, i + 1
            continue
        if isinstance(part, int):
            what.append(f"item {part + 1}")
        else:
            what.append(str(part))
        node = _get(node, part)
        i += 1
    return where, " ".join(what)


def field_error(exc: ValidationError, data: Any, prefix: tuple[str | int, ...] = ()) -> FieldError:
    """The first error of ``exc`` as a :class:`FieldError`; ``data`` is the validated input
    (for the addresses and channel numbers the message names), ``prefix`` a location the
    request had around it (``("setup",)``)."""
    err = exc.errors(include_url=False)[0]
    loc = [p for p in err["loc"] if isinstance(p, str | int)]
    at = (err.get("ctx") or {}).get("at") if err["type"] == "lanxi" else None
    if at:
        loc = [*loc, *at]
    full = [*prefix, *loc]
    where, what = _user_path(loc, data)
    message = _describe(err)
    whole = err["type"] == "lanxi" and (err.get("ctx") or {}).get("whole")
    text = f"{what} {message}" if what and not whole else message
    if where:
        text = f"{where}: {text}"
    return FieldError(_machine_path(full) or None, text)


def validate(model: type[Strict], data: Any, prefix: tuple[str | int, ...] = ()) -> Any:
    """``model`` built from ``data``, or :class:`FieldError` for the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_error(exc, data, prefix) from None
