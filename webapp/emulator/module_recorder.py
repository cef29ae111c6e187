"""The emulated module's recorder requests: open/close, create/cancel, channel setup,
synchronize/startstreaming, finish, destination ports and transducer detection."""

from __future__ import annotations

import time
from typing import Any

from webapp.emulator.acquisition import Acquisition
from webapp.emulator.generator import loop_feed_factory
from webapp.emulator.resterror import RestError, json_field
from webapp.emulator.setup import SetupError, default_setup, parse_setup
from webapp.openapi.model import InputStatus, ModuleState, PtpStatus, as_bool


class RecorderRequests:
    """Recorder and channel requests of :class:`~webapp.emulator.module.ModuleEmulator`."""

    def open(self, body: Any) -> None:
        with self.cond:
            self._require("PUT /rest/rec/open", ModuleState.IDLE)
            detect = as_bool(json_field(body, "performTransducerDetection", True))
            self.single_module = as_bool(json_field(body, "singleModule", True))
            self.state = ModuleState.RECORDER_OPENED
            self.input_status = InputStatus.SAMPLING
            if detect:
                self._start_detection()
            self._changed()

    def close(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/close", ModuleState.RECORDER_OPENED)
            self._end_streams()
            self.state = ModuleState.IDLE
            self.input_status = InputStatus.UNKNOWN
            self.session_open = False
            self.generator.reset()
            self._changed()

    def create(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/create", ModuleState.RECORDER_OPENED)
            self.state = ModuleState.RECORDER_CONFIGURING
            self.session_open = True
            self._clear_setup()
            self._reset_history()
            self._changed()

    def cancel(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/cancel", ModuleState.RECORDER_CONFIGURING)
            self.state = ModuleState.RECORDER_OPENED
            self.input_status = InputStatus.SAMPLING
            self.session_open = False
            self._clear_setup()
            self._changed()

    def disable_all(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/channels/all/disable", ModuleState.RECORDER_STREAMING)
            self._end_streams()
            self.state = ModuleState.RECORDER_CONFIGURING
            self.input_status = InputStatus.SAMPLING
            self._clear_setup()
            self._changed()

    def _clear_setup(self) -> None:
        self.setup = None
        self.acquisition = None
        self.settle_until = None
        self.sync_requested = False
        self.levels = {}

    def default_setup(self) -> dict[str, Any]:
        # Multi-module (PTP or frame) sessions stream: HBK's multi-module tutorial measures
        # with the default setup unchanged and reads the data from the socket. A single module
        # defaults to its SD card, as the single-module tutorial says.
        multi = self.state is not ModuleState.IDLE and not self.single_module
        return default_setup(self.profile, "socket" if multi else "sd")

    def get_setup(self) -> dict[str, Any]:
        with self.cond:
            self._require(
                "GET /rest/rec/channels/input",
                ModuleState.RECORDER_CONFIGURING,
                ModuleState.RECORDER_STREAMING,
                ModuleState.RECORDER_RECORDING,
            )
            return self.setup.to_json() if self.setup else self.default_setup()

    def put_setup(self, body: Any) -> None:
        with self.cond:
            self._require("PUT /rest/rec/channels/input", ModuleState.RECORDER_CONFIGURING)
        try:
            applied = parse_setup(body, self.profile)
        except SetupError as exc:
            raise RestError(400, f"channel setup rejected: {exc}") from None
        acquisition = Acquisition(
            applied.channels,
            self.rig,
            self.index,
            self.options.block_values,
            loop_feed_factory(self),
        )
        acquisition.warm_feeds()  # an output already running: its loop is built here
        with self.cond:
            self._require("PUT /rest/rec/channels/input", ModuleState.RECORDER_CONFIGURING)
            self.setup = applied
            self.acquisition = acquisition
            self.sync_requested = False
            self._reset_history()
            self._refresh_levels()
            if applied.multi_socket:
                self._ensure_ports(len(acquisition.signals))
            else:
                self._trim_ports(1)
            if self.single_module:
                self.state = ModuleState.RECORDER_STREAMING
                self.input_status = InputStatus.STREAMING
                self.settle_until = None
            else:
                self.input_status = InputStatus.SAMPLING
                self.settle_until = time.monotonic() + self.options.settle_seconds
            self._changed()
            self.advance()

    def synchronize(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/synchronize", ModuleState.RECORDER_CONFIGURING)
            self._require_multi("PUT /rest/rec/synchronize")
            if self.setup is None:
                raise RestError(403, "PUT /rest/rec/synchronize: no channel setup has been applied")
            if self.is_ptp and self.published_ptp is not PtpStatus.LOCKED:
                raise RestError(
                    403, f"PUT /rest/rec/synchronize: PTP is not locked ({self.published_ptp})"
                )
            self.sync_requested = True
            if self.settle_until is None:
                self.input_status = InputStatus.SYNCHRONIZED
            self._changed()

    def start_streaming(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/startstreaming", ModuleState.RECORDER_CONFIGURING)
            self._require_multi("PUT /rest/rec/startstreaming")
            if self.input_status is not InputStatus.SYNCHRONIZED:
                raise RestError(
                    403,
                    f"PUT /rest/rec/startstreaming: inputs are {self.input_status}, not "
                    "Synchronized (PUT synchronize first)",
                )
            self.state = ModuleState.RECORDER_STREAMING
            self.input_status = InputStatus.STREAMING
            self._changed()

    def _require_multi(self, request: str) -> None:
        if self.single_module:
            raise RestError(
                403, f"{request} applies only to a recorder opened with singleModule false"
            )

    def finish(self) -> None:
        with self.cond:
            self._require("PUT /rest/rec/finish", ModuleState.RECORDER_STREAMING)
            self.last_measurement = self._measurement_snapshot()
            self._end_streams()
            self._trim_ports(1)
            self.state = ModuleState.RECORDER_OPENED
            self.input_status = InputStatus.SAMPLING
            self.session_open = False
            self._clear_setup()
            self.measurement = None
            self._changed()

    def _end_streams(self) -> None:
        for port in self.ports:
            port.end_session()
        self.network.disarm(self)

    def destination_ports(self, multi: bool) -> dict[str, Any]:
        with self.cond:
            name = "destination/sockets" if multi else "destination/socket"
            self._require(
                f"GET /rest/rec/{name}",
                ModuleState.RECORDER_STREAMING,
                ModuleState.RECORDER_RECORDING,
            )
            if not multi:
                return {"tcpPort": self.ports[0].port}
            count = len(self.acquisition.signals) if self.setup and self.setup.multi_socket else 1
            return {"tcpPorts": [p.port for p in self.ports[:count]]}

    # --- detection ---------------------------------------------------------------------------

    def detect(self) -> None:
        with self.cond:
            if self.state is ModuleState.RECORDER_RECORDING:
                raise RestError(
                    403,
                    "transducer detection is not allowed during a measurement (RecorderRecording)",
                )
            self._start_detection()
            self._changed()

    def _start_detection(self) -> None:
        self.detect_until = time.monotonic() + self.options.teds_seconds

    def _detection_result(self) -> list[Any]:
        return [
            r.transducer.to_json(flags_as_int=True) if r.transducer is not None else None
            for r in self.rig
        ]

    def transducers(self) -> list[Any]:
        with self.cond:
            if self.detected is None:
                return [None] * self.profile.input_channels
            return list(self.detected)
