"""The emulated module's read-only answers: module info, status (with long polling) and the
emulator-side snapshot for GET /emulator/info."""

from __future__ import annotations

import time
from typing import Any

from webapp.emulator.clock import elapsed_text
from webapp.emulator.options import FIRMWARE
from webapp.openapi.model import InputStatus, ModuleState


class StatusAnswers:
    """Module info, status and snapshot answers of :class:`~webapp.emulator.module.ModuleEmulator`."""

    def module_info(self) -> dict[str, Any]:
        p = self.profile
        info: dict[str, Any] = {
            "license": "permanentLicense",
            "module": {
                "frontpanel": {
                    "serial": 200_000 + self.serial % 100_000,
                    "type": {"model": "", "number": p.frontpanel, "prefix": "UA", "variant": "030"},
                    "version": {"hardware": "2.0.0.0"},
                },
                "serial": self.serial,
                "type": {"model": p.model, "number": p.number, "prefix": "", "variant": p.variant},
                "version": {"firmware": FIRMWARE, "hardware": "1.3.0.0"},
            },
            "moduleState": str(self.state),
            "numberOfInputChannels": p.input_channels,
            "numberOfOutputChannels": p.output_channels,
            "preampInputSupported": True,
            "sdCardInserted": self.options.sd_card,
            "supportedFilters": list(p.filters),
            "supportedOutputRanges": list(p.output_ranges),
            "supportedRanges": list(p.ranges),
            "supportedSampleRates": p.sample_rates,
            "syncModeChangeSupported": p.ptp,
        }
        if p.connectors:
            info["supportedConnectors"] = list(p.connectors)
        return info

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "moduleState": str(self.state),
            "inputStatus": str(self.input_status),
            "ptpStatus": str(self.published_ptp),
            "transducerDetectionActive": self.detect_until is not None,
            "lastUpdateTag": self.tag,
            "lastSdCardUpdateTag": 0,
            "lastTransducerUpdateTag": self.transducer_tag,
            "sdCardInserted": self.options.sd_card,
            "buttonEnabled": True,
            "canStartStreaming": self.state
            in (ModuleState.RECORDER_STREAMING, ModuleState.RECORDER_RECORDING)
            or self.input_status is InputStatus.SYNCHRONIZED,
            "recordingMode": "Single" if self.session_open else "",
            "fanStatus": {"event": "", "speed": "", "mode": ""},
            "batteryStatus": {"event": ""},
            "temperatureStatus": {"event": "", "level": ""},
        }
        if self.session_open:
            out["recordingStatus"] = self._recording_status()
        return out

    def _recording_status(self) -> dict[str, Any]:
        m = self.measurement
        recording = self.state is ModuleState.RECORDER_RECORDING
        channels: list[dict[str, Any] | None] = []
        enabled = (
            {c.channel for c in self.setup.channels if c.enabled}
            if self.setup
            else set(range(1, self.profile.input_channels + 1))
        )
        for ch in range(1, self.profile.input_channels + 1):
            if ch not in enabled:
                channels.append(None)
                continue
            rms, peak = self.levels.get(ch, (0.0, 0.0))
            entry: dict[str, Any] = {"rms": rms, "peak": peak}
            for kind_field in ("cf", "anol", "cmol"):
                entry[kind_field] = self.history.get((kind_field, ch), "none")
            channels.append(entry)
        return {
            "measState": "Streaming" if recording else "Idle",
            "errorState": 0,
            "recordingUri": "",
            "timeElapsed": elapsed_text(self.published_elapsed if m else 0),
            "timeRemaining": "00:00:00",
            "spaceRemaining": 0,
            "bufferStatus": {
                "cpu": {"fullPercentage": 0, "fullPercentageMax": 0},
                "dsp": {"fullPercentage": 0, "fullPercentageMax": 0},
            },
            "channelStatus": channels,
        }

    def wait_status(self, last: int | None) -> dict[str, Any]:
        """GET onchange: at once, or (``last`` equal to the tag) when something changed or the
        long-poll limit passed."""
        with self.cond:
            self.advance()
            if last is not None and last == self.tag:
                end = time.monotonic() + self.options.long_poll_seconds
                while self.tag == last and not self._stopped:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self.cond.wait(min(remaining, 1.0))
                    self.advance()
            return self.status()

    def snapshot(self) -> dict[str, Any]:
        """Emulator-side facts for GET /emulator/info (tests, demo)."""
        with self.cond:
            return {
                "index": self.index,
                "name": self.name,
                "type": self.profile.number,
                "serial": self.serial,
                "streamPorts": [p.port for p in self.ports],
                "moduleState": str(self.state),
                "rig": [{"channel": r.channel, "description": r.description} for r in self.rig],
                "generator": self.generator.snapshot(),
                "measurement": self._measurement_snapshot(),
                "lastMeasurement": self.last_measurement,
            }

    def _measurement_snapshot(self) -> dict[str, Any] | None:
        m = self.measurement
        if m is None:
            return None
        return {
            "t0": m.t0,
            "stopTick": m.stop_tick,
            "sampleRate": m.acquisition.sample_rate,
            "blocks": m.total_blocks(),
            "ports": [
                {
                    "port": p.port,
                    "sentBlocks": p.session.sent_blocks if p.session else 0,
                    "droppedBlocks": p.session.dropped_blocks if p.session else 0,
                }
                for p in self.ports
            ],
        }
