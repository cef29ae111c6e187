"""Every request body the dashboard takes, as one pydantic model each (docs/api.md lists them).

HTTP routes and Socket.IO events both pass their (already JSON-checked, see
:mod:`webapp.web.bodies`) object through :func:`check`; the field types are the ones of
:mod:`webapp.capture.schemas`, which the capture settings and the ``capture`` command use too,
so a rule exists once. A refused body raises :class:`~webapp.capture.schemas.FieldError` with
the machine path in ``field`` and a message in the user's terms; the API answers it with
``{"error": message, "field": field}`` and 400, a Socket.IO ack with ``ok: false`` and the same.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from webapp.capture.labels import LabelFields, TestEdit, TestInfo, TestSetup, Title
from webapp.capture.names import check_name
from webapp.capture.schemas import (
    DEFAULT_DISK_MARGIN_S,
    DEFAULT_ON_STREAM_DROP,
    Address,
    Bandwidth,
    ChannelBase,
    DiskMargin,
    FieldError,
    GeneratorOutputModel,
    Name,
    PtpDomain,
    Seconds,
    Sensitivity,
    Serial,
    StreamDrop,
    Strict,
    Unit,
    check_generators_request,
    refuse,
    validate,
)

SETUP_NAME_MAX = 64

# kind -> (label, needs a channel)
FAULTS: dict[str, tuple[str, bool]] = {
    "cable-fault": ("cable fault", True),
    "overload": ("analog overload", True),
    "cm-overload": ("common-mode overload", True),
    "ptp-loss": ("PTP loss", False),
    "stream-drop": ("stream drop", False),
}


def _setup_name(value: Any) -> str:
    try:
        return check_name(value, "the setup name", SETUP_NAME_MAX)
    except ValueError as exc:
        raise refuse(str(exc), whole=True) from None


def _fault_kind(value: Any) -> str:
    if value not in FAULTS:
        raise refuse(f"must be one of {', '.join(FAULTS)}")
    return str(value)


SetupName = Annotated[str, BeforeValidator(_setup_name)]
FaultKind = Annotated[str, BeforeValidator(_fault_kind)]


# --- the setup (Setup page, saved setups, a start request's overrides) ---------------------


class SetupTransducer(Strict):
    """A sensor without TEDS as the Setup page enters it."""

    sensitivity: Sensitivity
    unit: Unit = "V"
    serial: Serial = 0
    type: Annotated[str, Field(max_length=32)] = ""


class SetupChannel(LabelFields, ChannelBase):
    """A channel row; the label fields (name, point, direction, group, note) are
    :mod:`webapp.capture.labels`'s."""

    enabled: bool = True
    transducer: SetupTransducer | None = None


class Setup(Strict):
    bandwidth: Bandwidth = None
    """None: the highest bandwidth every module of the rig supports."""
    multi_socket: bool = False
    channels: dict[str, list[SetupChannel]] = {}
    test: TestSetup = TestSetup()
    """The next captures' test metadata and file-name template."""

    @model_validator(mode="after")
    def _no_channel_twice(self) -> Setup:
        for address, rows in self.channels.items():
            seen: set[int] = set()
            for j, row in enumerate(rows):
                if row.channel in seen:
                    raise refuse(
                        f"channel {row.channel} is given twice",
                        "channels",
                        address,
                        j,
                        "channel",
                        whole=True,
                    )
                seen.add(row.channel)
        return self


def setup_json(setup: Setup, partial: bool = False) -> dict[str, Any]:
    """The plain JSON of a checked setup (channel rows complete, sorted by channel);
    ``partial``: only the keys the request gave."""
    out: dict[str, Any] = {}
    for key in ("bandwidth", "multi_socket", "channels", "test"):
        if partial and key not in setup.model_fields_set:
            continue
        if key == "test":
            out[key] = setup.test.model_dump()
        elif key == "channels":
            out[key] = {
                str(address): sorted((row.model_dump() for row in rows), key=lambda r: r["channel"])
                for address, rows in setup.channels.items()
            }
        else:
            out[key] = getattr(setup, key)
    return out


# --- capture control -----------------------------------------------------------------------


class StartRequest(Strict):
    """``POST /api/capture/start`` and ``/arm``, Socket.IO ``capture:start`` and ``capture:arm``.
    Absent fields come from the rig and the current setup."""

    modules: list[Address] | None = None
    name: Name = "Capture"
    duration_s: Seconds | None = None
    """None records until stopped."""
    ptp_domain: PtpDomain | None = None
    ptp_timeout_s: Seconds | None = None
    setup: Setup | None = None
    on_stream_drop: StreamDrop = DEFAULT_ON_STREAM_DROP
    disk_margin_s: DiskMargin = DEFAULT_DISK_MARGIN_S
    test: TestInfo | None = None
    """This capture's test metadata, over the setup's (the keys given replace its)."""
    generators: dict[str, list[GeneratorOutputModel]] = {}
    """Generator outputs to drive with each recording, per module address (docs/capture.md)."""


class RecordRequest(Strict):
    """``POST /api/capture/record`` (and ``record`` inside ``/api/capture/monitor``): what to
    record from the monitored measurement; the rules are ``RecordPlan.validate``'s."""

    name: Name = "Capture"
    mode: str = "manual"
    duration_s: Seconds | None = None
    trigger: dict[str, Any] | str | None = None
    pre_trigger_s: float = 0.0
    events: int | None = 1
    hold_off_s: float = 0.0
    segment_s: float | None = None
    start_at: float | None = None
    test: TestInfo | None = None
    """These recordings' test metadata, over the armed setup's."""


class ChannelRef(Strict):
    """One channel of one module."""

    module: Annotated[str, Field(min_length=1, max_length=253)]
    channel: Annotated[int, Field(ge=1, le=64)]


MAX_COMPARE = 3
"""Channels a viewer may overlay on its live spectrum beside the one it shows."""


class SpectrumChoice(Strict):
    """Socket.IO ``select-spectrum``: the live spectrum's window and lines (webapp/dsp/spectrum),
    and up to :data:`MAX_COMPARE` more channels overlaid in the same settings."""

    window: Literal["hann", "flattop", "uniform"] = "hann"
    lines: Literal[400, 800, 1600, 3200, 6400] = 1600
    compare: Annotated[list[ChannelRef], Field(max_length=MAX_COMPARE)] = []


class GeneratorStart(Strict):
    """``POST /api/generator/start``, Socket.IO ``generator:start``: outputs to start by hand,
    per module address (the output objects of a start request's ``generators``)."""

    generators: Annotated[dict[str, list[GeneratorOutputModel]], Field(min_length=1)]

    @model_validator(mode="after")
    def _outputs_once(self) -> GeneratorStart:
        check_generators_request(self.generators)
        for address, outputs in self.generators.items():
            if not outputs:
                raise refuse("must list at least one output", "generators", address, whole=True)
        return self


OutputNumber = Annotated[int, Field(ge=1, le=8)]


class GeneratorStop(Strict):
    """``POST /api/generator/stop``, Socket.IO ``generator:stop``: the outputs to stop per
    module address; absent (or null): every running output."""

    outputs: dict[str, list[OutputNumber]] | None = None


LIVE_FRF_RESPONSES = 3
"""Response channels a live FRF may have beside its reference."""


class FrfChoice(Strict):
    """Socket.IO ``select-frf``: this viewer's live FRF, or ``reference`` null for none."""

    reference: ChannelRef | None = None
    responses: Annotated[list[ChannelRef], Field(max_length=LIVE_FRF_RESPONSES)] = []
    lines: Literal[400, 800, 1600, 3200, 6400] = 1600

    @model_validator(mode="after")
    def _distinct(self) -> FrfChoice:
        if self.reference is None:
            return self
        if not self.responses:
            raise refuse("choose at least one response channel", "responses", whole=True)
        ref = (self.reference.module, self.reference.channel)
        seen = {ref}
        for j, r in enumerate(self.responses):
            key = (r.module, r.channel)
            if key == ref:
                raise refuse(
                    f"{r.module} channel {r.channel} is the reference: it cannot be its own "
                    "response", "responses", j, whole=True,
                )  # fmt: skip
            if key in seen:
                raise refuse(
                    f"{r.module} channel {r.channel} is chosen twice", "responses", j, whole=True
                )
            seen.add(key)
        return self


class WaveformChoice(Strict):
    """Socket.IO ``select-waveform``: both null for the master's first channel."""

    module: str | None = None
    channel: int | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> WaveformChoice:
        if (self.module is None) != (self.channel is None):
            raise refuse("give module and channel, or neither", "channel", whole=True)
        return self


# --- rig -----------------------------------------------------------------------------------


class RigModule(Strict):
    """``POST /api/rig/modules``."""

    address: Address


class RigConfig(Strict):
    """``PUT /api/rig``: either key."""

    master: str | None = None
    ptp_domain: PtpDomain | None = None


# --- History: a capture's title and test metadata, deleting it ------------------------------


class CaptureEdit(Strict):
    """``PATCH /api/captures/<id>``: the keys given replace the capture's (``test`` keys one by
    one); ``title`` "" shows the recorded name again."""

    title: Title | None = None
    test: TestEdit | None = None


class ChannelTableImport(Strict):
    """``PUT /api/setup/channels.csv`` as JSON: the CSV text (webapp/capture/channeltable.py)."""

    csv: str


class CaptureDelete(Strict):
    """``DELETE /api/captures/<id>``: the body must name the capture again and confirm."""

    id: str
    confirm: bool


# --- saved setups, fault injection ---------------------------------------------------------


class SetupSave(Strict):
    """``POST /api/setups``."""

    name: SetupName


class FaultInjection(Strict):
    """``POST /api/emulator/faults``."""

    module: str
    fault: FaultKind
    channel: Annotated[int, Field(ge=1)] | None = None
    duration_s: Seconds | None = None
    """None: until cleared."""


class FaultClear(Strict):
    """``DELETE /api/emulator/faults``: one module, or every emulated one."""

    module: str | None = None


def check(model: type[Strict], data: Any, prefix: tuple[str | int, ...] = ()) -> Any:
    """``data`` as ``model``, or :class:`FieldError` naming the first bad field."""
    return validate(model, data, prefix)


__all__ = ["FAULTS", "FieldError", "check"]
