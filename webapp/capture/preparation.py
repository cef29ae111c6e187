"""Before anything is sent to a module: the capture settings checked against every module's
info (read concurrently), the sample rate chosen, the disk checked. What
:meth:`webapp.capture.orchestrator.Orchestrator.arm`, ``start`` and ``monitor`` run first."""

from __future__ import annotations

from collections.abc import Callable

from webapp.capture.diskspace import check_folder, expected_rate
from webapp.capture.generator import check_generators
from webapp.capture.session import (
    ModuleRun,
    PendingCapture,
    Session,
    parallel,
)
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.openapi.client import ModuleClient, ModuleError
from webapp.openapi.model import (
    ModuleInfo,
    ModuleState,
    bandwidth_for_rate,
    rate_for_bandwidth,
)


def prepare_session(
    settings: CaptureSettings, client_factory: Callable[[str], ModuleClient]
) -> Session:
    """Validate the settings and read every module's info (concurrently); nothing that
    changes a module is sent here."""
    settings.validate()
    runs = [
        ModuleRun(
            number=i + 1,
            address=address,
            client=client_factory(address),
            role=("master" if i == 0 else "slave") if settings.synchronized else "single",
        )
        for i, address in enumerate(settings.modules)
    ]

    def read_info(m: ModuleRun) -> None:
        m.info = m.client.info()

    parallel(runs, read_info)
    check_distinct(runs)
    for i, m in enumerate(runs):
        info = m.info
        assert info is not None
        where = f"modules[{i}]"
        if settings.synchronized and not info.supports_ptp:
            raise SettingsError(
                where,
                f"{m.address} is a Type {info.type_number}, which cannot take part in a "
                "PTP-synchronized capture (it works only on its own)",
            )
        if info.module_state and info.module_state != ModuleState.IDLE:
            raise ModuleError(
                m.address,
                "GET /rest/rec/module/info",
                None,
                f"the module is in state {info.module_state}, not Idle: another program may "
                "be using it (close its recorder there, or return the module to Idle: on "
                "the Rig page, or lanxi-dashboard capture --return-to-idle ADDR)",
            )
        check_channels(settings, m, info)
    rate = choose_rate(settings, runs)
    session = Session(settings, runs, bandwidth_for_rate(rate), rate)
    check_generators(session)
    return session


def check_disk(s: Session, pending: PendingCapture) -> None:
    """Refuse (DiskSpaceError, field ``folder``) before anything is sent when the capture
    folder's disk cannot take ``disk_margin_s`` seconds at the expected rate."""
    check_folder(pending.folder, expected_rate(s), s.settings.disk_margin_s)


def check_distinct(runs: list[ModuleRun]) -> None:
    """Two addresses that reach one module (same type and serial number) are refused,
    naming both: the module would be set up twice and record one stream as two."""
    seen: dict[tuple[str, int], ModuleRun] = {}
    for i, m in enumerate(runs):
        info = m.info
        if info is None or not info.serial:
            continue
        key = (info.type_number, info.serial)
        first = seen.setdefault(key, m)
        if first is not m:
            raise SettingsError(
                f"modules[{i}]",
                f"module {m.number} ({m.address}) is the same module as module "
                f"{first.number} ({first.address}): both report Type {info.type_number} "
                f"serial {info.serial}",
            )


def check_channels(settings: CaptureSettings, m: ModuleRun, info: ModuleInfo) -> None:
    overrides = settings.channels.get(m.address, [])
    where = f"channels.{m.address}"
    for j, ch in enumerate(overrides):
        label = f"{m.address} channel {ch.channel}"
        if info.input_channels and ch.channel > info.input_channels:
            raise SettingsError(
                f"{where}[{j}].channel",
                f"{label}: {m.address} (Type {info.type_number}) has "
                f"{info.input_channels} input channels",
            )
        if ch.range is not None and info.ranges and ch.range not in info.ranges:
            raise SettingsError(
                f"{where}[{j}].range",
                f"{label}: range must be one of {', '.join(info.ranges)}, not {ch.range!r}",
            )
        if ch.filter is not None and info.filters and ch.filter not in info.filters:
            raise SettingsError(
                f"{where}[{j}].filter",
                f"{label}: filter must be one of {', '.join(info.filters)}, not {ch.filter!r}",
            )
    disabled = {ch.channel for ch in overrides if ch.enabled is False}
    if info.input_channels and len(disabled) >= info.input_channels:
        raise SettingsError(where, f"every input channel of {m.address} is disabled")


def choose_rate(settings: CaptureSettings, runs: list[ModuleRun]) -> int:
    """The requested bandwidth, or the highest one every module supports (a synchronized
    capture needs one sample rate everywhere)."""
    supported = [set(m.info.sample_rates) for m in runs if m.info and m.info.sample_rates]
    if settings.bandwidth is not None:
        rate = rate_for_bandwidth(settings.bandwidth)
        for m in runs:
            if m.info and m.info.sample_rates and rate not in m.info.sample_rates:
                raise SettingsError(
                    "bandwidth",
                    f"{m.address} (Type {m.info.type_number}) does not support {settings.bandwidth}",
                )
        return rate
    if not supported:
        return 131072
    common = set.intersection(*supported)
    if not common:
        raise SettingsError("bandwidth", "the modules have no sample rate in common")
    return max(common)
