"""The emulated module's measurement requests: start (with the PTP trigger group) and stop,
and the end of a trigger group's streams."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from webapp.emulator.clock import TICKS_PER_SECOND, now_ticks
from webapp.emulator.network import TriggerGroup
from webapp.emulator.resterror import RestError
from webapp.emulator.streamer import Measurement
from webapp.openapi.model import ModuleState

log = logging.getLogger(__name__)

FIN_LINGER_SECONDS = 0.05
"""After a stream's end of file went out: time for the reader to see it before the stop answer."""


class MeasurementRequests:
    """Measurement start/stop of :class:`~webapp.emulator.module.ModuleEmulator`."""

    def start_measurement(self) -> None:
        with self.cond:
            self._require("POST /rest/rec/measurements", ModuleState.RECORDER_STREAMING)
            assert self.setup is not None and self.acquisition is not None
            if self.setup.destination == "sd" and not self.options.sd_card:
                raise RestError(
                    403,
                    "POST /rest/rec/measurements: the setup records to SD card and no SD card is inserted",
                )
            acq = self.acquisition
            m = Measurement(acq)
            self.measurement = m
            if self.setup.multi_socket:
                for port, plan in zip(self.ports, acq.signals, strict=False):
                    port.begin(m, [plan])
            else:
                self.ports[0].begin(m, list(acq.signals))
            self.state = ModuleState.RECORDER_RECORDING
            self.published_elapsed = 0
            self._reset_history()
            self._refresh_levels()
            self._changed()
            waits_for_trigger = (
                self.is_ptp and not self.single_module and not self.sync.get("triggerMaster")
            )
            trigger_domain = self.sync.get("triggerDomain", self.sync.get("domain"))
            earliest = now_ticks() + int(self.options.start_latency_seconds * TICKS_PER_SECOND)
        if waits_for_trigger:
            joined = self.network.arm(self, trigger_domain, acq.block_ticks, earliest)
            if joined is not None:
                group, t0 = joined
                self._started(m, group, t0)
            return
        domain = trigger_domain if self.is_ptp and not self.single_module else None
        group, starts = self.network.fire(self, domain, acq.block_ticks, earliest)
        for module, t0 in starts:
            module._started_by_trigger(group, t0)

    def _started_by_trigger(self, group: TriggerGroup, t0: int) -> None:
        with self.cond:
            m = self.measurement
            if m is None or m.t0 is not None or m.stop_tick is not None:
                return
            self._started(m, group, t0)

    def _started(self, m: Measurement, group: TriggerGroup, t0: int) -> None:
        with self.cond:
            m.t0 = t0
            m.group = group
            log.info("%s: measurement starts at T0 = %d ticks", self.name, t0)
            self.cond.notify_all()

    def stop_measurement(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/measurements/stop", ModuleState.RECORDER_RECORDING)
            m = self.measurement
            assert m is not None
            m.stop_tick = now_ticks()
            if m.t0 is not None:
                self.published_elapsed = m.elapsed_seconds(m.stop_tick)
            self.state = ModuleState.RECORDER_STREAMING
            self._changed()
            group = m.group
            if group is None:
                self.network.disarm(self)
                m.fin_allowed = True
                self.cond.notify_all()
                return
            last = group.member_stopped(self)
        if last:
            self._end_group(group)

    def _end_group(self, group: TriggerGroup) -> None:
        """The last module of a trigger group stopped: end every member's stream.

        HBK's tutorial clients read all modules in one thread that returns at the first end of
        file, and close their sockets right after the stop answer. So: first every member's
        final blocks go out; with several modules the readers get time to drain them before
        any connection is closed; then the connections are closed; and the stop is answered
        only a moment after that, so the reader has seen the end before its socket is closed.
        """
        members = list(group.members)
        limit = max(2.0, self.options.buffer_seconds)
        _wait_until(lambda: all(m._stream_state(group)[0] for m in members), limit)
        if len(members) > 1:
            time.sleep(self.options.stop_linger_seconds)
        for member in members:
            member._allow_fin(group)
        _wait_until(lambda: all(m._stream_state(group)[1] for m in members), limit)
        time.sleep(FIN_LINGER_SECONDS)

    def _stream_state(self, group: TriggerGroup) -> tuple[bool, bool]:
        """(final data handed over, connections closed) for this member's group streams."""
        with self.cond:
            m = self.measurement
            if m is None or m.group is not group:
                return True, True
            return all(p.drained() for p in self.ports), all(p.ended() for p in self.ports)

    def _allow_fin(self, group: TriggerGroup) -> None:
        with self.cond:
            m = self.measurement
            if m is not None and m.group is group:
                m.fin_allowed = True
                self.cond.notify_all()


def _wait_until(condition: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True
