"""Levels in engineering units, dB re ISO 1683 references and dBFS re the input range, checked
against the emulator's known signals (docs/emulator.md's default rig) on the live path and in
the analysis report of the same capture."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.capture.fakes import Recorder
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.analysis.integrity import build_report, format_report
from webapp.analysis.reader import Capture
from webapp.analysis.views import spectrum
from webapp.capture.events import EventBus, Levels, Phase
from webapp.capture.levels import OVERLOAD_CLIPPED, OVERLOAD_REPORTED, LiveModule
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.session import ModuleRun, fault_changes
from webapp.capture.settings import CaptureSettings, ChannelSettings
from webapp.emulator import EmulatedRig
from webapp.emulator.rig import accelerometer, microphone
from webapp.openapi import units
from webapp.openapi.client import ModuleClient

# docs/emulator.md, default rig: channel 2 is an accelerometer on a structure vibrating at
# 80 Hz (7 m/s² peak) and 237 Hz (2 m/s² peak) over 0.05 m/s² RMS noise.
ACCEL_RMS = math.sqrt(7.0**2 / 2 + 2.0**2 / 2 + 0.05**2)
ACCEL_DB = 20 * math.log10(ACCEL_RMS / 1e-6)  # 134.2 dB re 1 µm/s²


def test_references_and_labels_are_iso_1683() -> None:
    assert units.reference("Pa").db_label == "dB re 20 µPa"
    for spelling in ("m/s^2", "m/s2", "m/s²"):
        assert units.unit_label(spelling) == "m/s²"
        assert units.reference(spelling).db_label == "dB re 1 µm/s²"
        assert units.db(10.0, spelling) == pytest.approx(140.0)
    assert units.reference("m/s").label == "1 nm/s"
    assert units.reference("m").label == "1 pm"
    assert units.reference("N").label == "1 µN"
    assert units.reference("V").db_label == "dB re 1 V"
    assert units.reference("g").db_label == "dB re 1 g"
    assert units.db(1.0, "Pa") == pytest.approx(93.9794, abs=1e-4)
    assert units.db(0.0, "Pa") is None and units.db(float("nan"), "V") is None
    # 0 dBFS is the range's peak; the converter clips 1.5 dB above it.
    assert units.full_scale("10 Vpeak", 0.05) == pytest.approx(200.0)
    assert units.full_scale_of(units.full_scale("10 Vpeak", 0.05) * units.HEADROOM) == (
        pytest.approx(200.0)
    )
    assert units.dbfs(20.0, 200.0) == pytest.approx(-20.0)
    assert abs(units.CLIP_DBFS - 1.5) < 0.001


def levels_of(events: list) -> list[dict]:
    return [e for e in events if isinstance(e, Levels)][-1].levels


def test_overload_latch_holds_for_the_measurement() -> None:
    events: list = []
    live = LiveModule("m", events.append, levels_interval_s=0.0)
    live.waveform_channels = frozenset()
    scale = 10.0 * units.HEADROOM
    quiet = (np.sin(np.arange(4096) / 7.0) * 1000).astype(np.int32)
    clipped = quiet.copy()
    clipped[100] = (1 << 23) - 1
    live.block(1, quiet, scale, 0.0, "V", 65536)
    live.block(2, quiet, scale, 0.0, "V", 65536)
    live.tick(time.monotonic() + 1)
    assert [lv["overload"] for lv in levels_of(events)] == [False, False]
    live.block(1, clipped, scale, 0.0, "V", 65536)
    live.overload(2)  # the module's anol report
    live.block(1, quiet, scale, 0.0, "V", 65536)  # clean again: the latch holds
    live.tick(time.monotonic() + 2)
    ch1, ch2 = levels_of(events)
    assert ch1["overload"] and ch1["overload_reason"] == OVERLOAD_CLIPPED and not ch1["clipped"]
    assert ch2["overload"] and ch2["overload_reason"] == OVERLOAD_REPORTED
    assert ch1["peak_hold_dbfs"] == pytest.approx(units.CLIP_DBFS, abs=0.01)
    assert ch1["dbfs"] < -30
    # The next measurement has a new LiveModule: nothing latched.
    fresh: list = []
    again = LiveModule("m", fresh.append, levels_interval_s=0.0)
    again.block(1, quiet, scale, 0.0, "V", 65536)
    again.tick(time.monotonic() + 1)
    assert not levels_of(fresh)[0]["overload"]


def test_the_modules_overload_report_latches_while_it_records() -> None:
    events: list = []
    run = ModuleRun(1, "m", ModuleClient("127.0.46.1"), "single")
    run.live = LiveModule("m", events.append)

    def status(state: str, anol: str) -> dict:
        entry = {"anol": anol, "cmol": "none", "cf": "none"}
        return {"moduleState": state, "recordingStatus": {"channelStatus": [entry, None]}}

    # Before the measurement records, the module still shows the last one's history.
    fault_changes(run, status("RecorderStreaming", "prev"))
    assert run.live.overloaded == {}
    fault_changes(run, status("RecorderRecording", "none"))
    assert run.live.overloaded == {}
    fault_changes(run, status("RecorderRecording", "curr"))
    assert run.live.overloaded == {1: OVERLOAD_REPORTED}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Recorder, Path]]:
    """One module of the default rig, channel 1 (microphone) on 0.316 Vpeak, channel 2
    (accelerometer) and 3 (1 V peak tone) on 10 Vpeak, channel 4 (noise) on 0.316 Vpeak; then
    a second run with the 1 V tone on 0.316 Vpeak, where it clips."""
    rig = EmulatedRig.start(1, **FAST)
    try:
        address = rig.addresses[0]
        bus = EventBus()
        rec = Recorder(bus)
        orch = Orchestrator(bus, tmp_path_factory.mktemp("levels"))
        channels = [
            ChannelSettings(1, range="0.316 Vpeak"),
            ChannelSettings(2, range="10 Vpeak"),
            ChannelSettings(3, range="10 Vpeak"),
        ]
        orch.start(CaptureSettings(modules=[address], duration_s=1.5, channels={address: channels}))
        assert orch.wait(30)
        assert orch.phase == Phase.COMPLETED, orch.last_error
        assert orch.last_folder is not None
        yield address, rec, orch.last_folder
    finally:
        rig.stop()


def live_levels(rec: Recorder, channel: int) -> list[dict]:
    out = [lv for e in rec.kinds("levels") for lv in e.levels if lv["channel"] == channel]
    assert len(out) >= 3
    return out


def test_microphone_reads_94_db_and_1_pa_live_and_in_the_report(recorded) -> None:
    _address, rec, folder = recorded
    for lv in live_levels(rec, 1):
        assert lv["db"] == pytest.approx(94.0, abs=0.1)
        assert lv["rms"] == pytest.approx(1.00, rel=0.01)
        assert lv["unit"] == "Pa" and lv["db_label"] == "dB re 20 µPa"
        assert lv["quantity"] == "sound pressure" and not lv["overload"]
    with Capture.open(folder) as cap:
        report = build_report(cap, checksums=False, levels=True)
    mic = next(c for c in report["channels"] if c["channel"] == 1)
    assert mic["level"]["db"] == pytest.approx(94.0, abs=0.1)
    assert mic["level"]["rms"] == pytest.approx(1.00, rel=0.01)
    assert mic["level"]["db_label"] == "dB re 20 µPa"
    line = next(x for x in format_report(report).splitlines() if "Pa RMS" in x)
    assert re.search(
        r" Pa RMS = 9[34]\.\d\d dB re 20 µPa, peak 1\.4[12]\d* Pa \(-13\.\d dBFS\)$", line
    )


def test_accelerometer_level_is_re_1_um_s2_on_both_paths(recorded) -> None:
    _address, rec, folder = recorded
    live = live_levels(rec, 2)
    for lv in live:
        assert lv["db_label"] == "dB re 1 µm/s²" and lv["unit_label"] == "m/s²"
        assert lv["db"] == pytest.approx(ACCEL_DB, abs=0.2)
        assert lv["rms"] == pytest.approx(ACCEL_RMS, rel=0.03)
    with Capture.open(folder) as cap:
        report = build_report(cap, checksums=False, levels=True)
        acc = next(c for c in report["channels"] if c["channel"] == 2)
        spec = spectrum(cap, acc["key"])
    assert acc["unit_label"] == "m/s²" and acc["level"]["db_label"] == "dB re 1 µm/s²"
    assert acc["level"]["db"] == pytest.approx(ACCEL_DB, abs=0.05)
    assert acc["level"]["rms"] == pytest.approx(ACCEL_RMS, rel=0.005)
    # Same figure, same reference on both: the live blocks agree with the whole capture.
    assert np.median([lv["db"] for lv in live]) == pytest.approx(acc["level"]["db"], abs=0.2)
    # The spectrum's 80 Hz line is 7 m/s² peak = 4.95 m/s² RMS = 133.9 dB re 1 µm/s².
    assert spec["db_label"] == "dB re 1 µm/s²"
    assert max(spec["db"]) == pytest.approx(20 * math.log10(7 / math.sqrt(2) / 1e-6), abs=0.5)


def test_dbfs_is_the_peak_over_the_range_full_scale(recorded) -> None:
    _address, rec, folder = recorded
    mic_fs = units.full_scale("0.316 Vpeak", microphone(0).sensitivity)
    acc_fs = units.full_scale("10 Vpeak", accelerometer(0).sensitivity)
    for channel, full, expected in ((1, mic_fs, None), (2, acc_fs, None), (3, 10.0, -20.0)):
        for lv in live_levels(rec, channel):
            assert lv["full_scale"] == pytest.approx(full, rel=1e-6)
            assert lv["dbfs"] == pytest.approx(20 * math.log10(lv["peak"] / full), abs=0.01)
            if expected is not None:  # the 1 V peak tone on the 10 Vpeak range
                assert lv["dbfs"] == pytest.approx(expected, abs=0.05)
            assert lv["peak_hold_dbfs"] >= lv["dbfs"] and not lv["overload"]
    # The calibrator's 1.414 Pa peak on 0.316 Vpeak with about 48 mV/Pa: −13.4 dBFS.
    mic = live_levels(rec, 1)[-1]
    assert mic["dbfs"] == pytest.approx(20 * math.log10(math.sqrt(2) / mic_fs), abs=0.1)
    with Capture.open(folder) as cap:
        report = build_report(cap, checksums=False, levels=True)
    tone = next(c for c in report["channels"] if c["channel"] == 3)
    assert tone["full_scale"] == pytest.approx(10.0)
    assert tone["level"]["dbfs"] == pytest.approx(-20.0, abs=0.05)


def test_a_signal_beyond_the_range_latches_the_overload(tmp_path: Path) -> None:
    rig = EmulatedRig.start(1, **FAST)
    try:
        address = rig.addresses[0]
        bus = EventBus()
        rec = Recorder(bus)
        orch = Orchestrator(bus, tmp_path)
        settings = CaptureSettings(
            modules=[address],
            duration_s=1.0,
            channels={address: [ChannelSettings(3, range="0.316 Vpeak")]},
        )
        orch.start(settings)
        assert orch.wait(30)
        assert orch.phase == Phase.COMPLETED, orch.last_error
    finally:
        rig.stop()
    tone = live_levels(rec, 3)
    assert all(lv["overload"] for lv in tone[1:])
    assert any(lv["clipped"] for lv in tone)
    assert tone[-1]["peak_hold_dbfs"] == pytest.approx(units.CLIP_DBFS, abs=0.01)
    assert tone[-1]["full_scale"] == pytest.approx(0.316)
    assert all(not lv["overload"] for lv in live_levels(rec, 1))


def test_exports_carry_the_same_reference_and_full_scale(recorded, tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    from webapp.analysis.export import export

    _address, _rec, folder = recorded
    with Capture.open(folder) as cap:
        (path,) = export(cap, "hdf5", tmp_path).paths
    with h5py.File(path) as h5:
        mic, acc = h5["module1/channel1"].attrs, h5["module1/channel2"].attrs
        assert mic["quantity"] == "sound pressure" and mic["db_reference"] == pytest.approx(20e-6)
        assert mic["db_reference_label"] == "dB re 20 µPa"
        assert mic["full_scale"] == pytest.approx(0.316 / microphone(0).sensitivity)
        assert acc["db_reference_label"] == "dB re 1 µm/s²" and acc["db_reference"] == 1e-6
