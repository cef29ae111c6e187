"""Arming: the steps of HBK's multi-module sequence (:mod:`webapp.capture.phases`) from
validation to phase ``armed``, the custom phases (PTP sync, open, TEDS detection, channel
setup) and the per-order requests to every module. A base class of
:class:`webapp.capture.orchestrator.Orchestrator`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.calibration.records import calibrated_transducers
from webapp.capture.events import (
    ChannelsConfigured,
    Phase,
    TransducersDetected,
)
from webapp.capture.phases import (
    WAIT_DETECTED,
    Order,
    Step,
    Timeout,
    arm_sequence,
    ordered,
)
from webapp.capture.session import (
    Aborted,
    ModuleRun,
    Session,
    parallel,
)
from webapp.capture.setup import applied_channels, build_setup, enabled_channel_numbers
from webapp.capture.watching import StatusWatching
from webapp.openapi.client import ModuleError


class Arming(StatusWatching):
    """Arming steps and module requests of :class:`~webapp.capture.orchestrator.Orchestrator`."""

    data_dir: Path
    last_error: str | None

    def _set_phase(self, phase: Phase, detail: str = "") -> None:
        raise NotImplementedError

    # --- arming -----------------------------------------------------------------------------

    def _arm_sequence(self, s: Session) -> None:
        self.last_error = None
        count = len(s.modules)
        kind = "synchronized" if s.synchronized else "single-module"
        self._set_phase(Phase.VALIDATING, f"{count} module(s), {kind}, {s.bandwidth}")
        for m in s.modules:
            runtime.spawn(self._watch, s, m, name=f"watch {m.address}")
        for step in arm_sequence(s.synchronized):
            self._check_abort()
            self._set_phase(step.phase)
            if step.custom:
                getattr(self, f"_phase_{step.request}")(s, step)
            else:
                if step.request:
                    self._send(s, step.order, step.request)
                if step.wait:
                    self._await(s, step.wait)
                    if step.wait.timeout is Timeout.PTP:
                        s.ptp_locked = True  # from here on a lost lock is a fault
        self._fetch_ports(s)
        s.armed = True
        self._set_phase(Phase.ARMED)

    def _phase_ptp_sync(self, s: Session, step: Step) -> None:
        settime = int(time.time() * 1000)
        domain = s.settings.ptp_domain

        def sync(m: ModuleRun) -> None:
            m.ptp_configured = True
            m.client.set_ptp(domain, m is s.master, settime)

        for batch in ordered(s.modules, step.order):
            parallel(batch, sync)

    def _phase_open_multi(self, s: Session, step: Step) -> None:
        def open_(m: ModuleRun) -> None:
            m.opened = True
            m.client.open(single_module=False, detect_transducers=False)

        self._each(s, step.order, open_)
        assert step.wait is not None
        self._await(s, step.wait)

    def _phase_open_single(self, s: Session, step: Step) -> None:
        def open_(m: ModuleRun) -> None:
            m.client.set_time()
            # A module left in PTP mode (e.g. by a capture with --keep-ptp) would wait for a
            # master that is not there; stand-alone is what a single module runs in (REF17 §5.2).
            m.client.set_standalone()
            m.opened = True
            m.client.open(single_module=True, detect_transducers=False)

        self._each(s, step.order, open_)
        assert step.wait is not None
        self._await(s, step.wait)

    def _phase_detect(self, s: Session, step: Step) -> None:
        """TEDS detection runs on every module at once; the requests go master last."""
        self._send(s, step.order, "detect_transducers")
        self._await(s, step.wait or WAIT_DETECTED)

        def fetch(m: ModuleRun) -> None:
            m.transducers = m.client.transducers()

        self._each(s, step.order, fetch)
        for m in s.modules:
            self._publish(TransducersDetected(module=m.address, transducers=m.transducers or []))

    def _phase_configure(self, s: Session, step: Step) -> None:
        def configure(m: ModuleRun) -> None:
            default = m.client.default_setup()
            m.setup = build_setup(
                default,
                # A TEDS transducer of the transducer database gets its stored sensitivity.
                calibrated_transducers(self.data_dir, m.transducers),
                s.settings.channel_overrides(m.address),
                s.bandwidth,
                s.settings.multi_socket,
                where=f"channels.{m.address}",
            )
            m.channels = enabled_channel_numbers(m.setup)

        self._each(s, step.order, configure)
        self._each(s, step.order, lambda m: m.client.put_setup(m.setup))
        for m in s.modules:
            assert m.setup is not None
            self._publish(
                ChannelsConfigured(
                    module=m.address, bandwidth=s.bandwidth, channels=applied_channels(m.setup)
                )
            )
        assert step.wait is not None
        self._await(s, step.wait)

    def _fetch_ports(self, s: Session) -> None:
        def fetch(m: ModuleRun) -> None:
            if s.settings.multi_socket:
                ports = m.client.destination_sockets()
                if len(ports) != len(m.channels):
                    raise ModuleError(
                        m.address,
                        "GET /rest/rec/destination/sockets",
                        200,
                        f"{len(ports)} ports for {len(m.channels)} enabled channels",
                    )
                m.ports = ports
            else:
                m.ports = [m.client.destination_socket()]

        self._each(s, Order.MASTER_LAST, fetch)

    # --- requests and waits -----------------------------------------------------------------

    def _each(self, s: Session, order: Order, fn: Callable[[ModuleRun], Any]) -> None:
        for batch in ordered(s.modules, order):
            self._check_abort()
            parallel(batch, fn)

    def _send(self, s: Session, order: Order, method: str, *args: Any) -> None:
        self._each(s, order, lambda m: getattr(m.client, method)(*args))

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise Aborted()
