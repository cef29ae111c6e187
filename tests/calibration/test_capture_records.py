"""A capture records its channels' calibrations from the transducer database in capture.json,
overdue ones flagged; TEDS transducers found by the capture's detection join the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.emulator import FAST_EMULATOR
from webapp.analysis.reader import Capture
from webapp.calibration.database import TransducerDatabase
from webapp.calibration.records import detection_subscriber
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings
from webapp.emulator import EmulatedRig
from webapp.emulator.rig import microphone


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    with EmulatedRig.start(1, types="3050", **FAST_EMULATOR) as r:
        yield r


def test_capture_json_records_overdue_calibrations(rig: EmulatedRig, tmp_path: Path) -> None:
    db = TransducerDatabase(tmp_path)
    db.put(
        {
            "type": "4189-A-021",
            "serial": "3021100",
            "sensitivity": 0.048,
            "unit": "Pa",
            "ccld": True,
            "calibrated": "2020-01-01",
            "due": "2021-01-01",
        },
        user="ana",
    )
    bus = EventBus()
    bus.subscribe(detection_subscriber(db))
    orch = Orchestrator(bus, tmp_path)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=0.3))
    assert orch.wait(30)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    by_channel = {c["channel"]: c for c in meta["calibrations"]}
    mic = by_channel[1]
    assert mic["module"] == 1 and mic["id"] == "4189-A-021_3021100"
    assert mic["overdue"] is True and mic["due"] == "2021-01-01"
    warnings = [e["message"] for e in meta["events"] if e["kind"] == "warning"]
    assert (
        "module 1 channel 1: the calibration of 4189-A-021 s/n 3021100 was due on 2021-01-01"
        in warnings
    )
    # The accelerometer was not in the database before the capture: the capture's detection
    # added it (before capture.json was begun), with no due date.
    assert by_channel[2]["id"] == "4533-B-001_50900" and by_channel[2]["overdue"] is False
    assert 3 not in by_channel  # a plain voltage input, no transducer
    acc = db.get("4533-B-001_50900")
    assert acc.teds and acc.sensitivity == pytest.approx(0.0100)
    assert db.get("4189-A-021_3021100").teds_sensitivity == pytest.approx(0.048)


def test_a_teds_transducer_is_set_up_with_its_stored_calibration(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    # The latest calibration says 50.0 mV/Pa where the microphone's TEDS says 48.0 mV/Pa: the
    # setup carries the calibration, so the 94.0 dB calibrator reads 48/50 of 1.0024 Pa.
    db = TransducerDatabase(tmp_path)
    db.add_detected(microphone(0).to_json(flags_as_int=True))
    db.record_calibration("4189-A-021_3021100", sensitivity=0.050, user="ana")
    orch = Orchestrator(EventBus(), tmp_path)
    orch.start(CaptureSettings(modules=rig.addresses, duration_s=0.3))
    assert orch.wait(30)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    (module,) = meta["modules"]
    ch1 = next(c for c in module["setup"]["channels"] if c["channel"] == 1)
    assert ch1["transducer"]["sensitivity"] == 0.050
    assert module["transducers"][0]["sensitivity"] == 0.048  # what TEDS said, kept
    with Capture.open(orch.last_folder) as cap:
        mic = next(c for c in cap.channels if c.channel == 1)
        pa = cap.read(mic.key)
    rms = float(np.sqrt(np.mean(pa**2)))
    assert rms == pytest.approx(1.0024 * 48 / 50, rel=0.005)
