"""Calibration checks on the emulator's default rig (docs/emulator.md): the microphone on its
94.0 dB re 20 µPa, 1 kHz calibrator and, with the calibration-shaker option, the
accelerometer on 10 m/s² RMS at 159.2 Hz. Expected figures come from the rig's documented
sensitivities (48.0 + 0.9·(i mod 5) mV/Pa, 10.0 + 0.15·(i mod 7) mV/(m/s²)), not the code."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import FAST_EMULATOR
from webapp.calibration.check import run_check
from webapp.calibration.database import TransducerDatabase
from webapp.calibration.measure import CalibrationError
from webapp.cli import main
from webapp.emulator import EmulatedRig

MIC_MV_PER_PA = 48.0  # module index 0
ACC_MV_PER_MS2 = 10.0
MIC_ID = "4189-A-021_3021100"
ACC_ID = "4533-B-001_50900"


@pytest.fixture(scope="module")
def rig() -> Iterator[EmulatedRig]:
    with EmulatedRig.start(1, types="3050", calibration_shaker=True, **FAST_EMULATOR) as r:
        yield r


def test_microphone_check_reads_the_rigs_sensitivity_and_passes(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    db = TransducerDatabase(tmp_path)
    check = run_check(db, rig.addresses[0], 1, "94dB@1kHz")
    r = check.result
    # The TEDS microphone was added to the database and compared with.
    assert check.transducer is not None and check.transducer.id == MIC_ID
    assert db.get(MIC_ID).teds and db.get(MIC_ID).sensitivity == pytest.approx(0.048)
    assert abs(20 * math.log10(r.sensitivity * 1e3 / MIC_MV_PER_PA)) < 0.1
    assert r.measured_frequency_hz == pytest.approx(1000.0, abs=0.1)
    assert r.passed is True and abs(r.deviation_db) < 0.1
    assert r.level_with_stored_db == pytest.approx(94.0, abs=0.1)  # dB re 20 µPa


def test_a_wrong_stored_sensitivity_fails_with_its_deviation(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    db = TransducerDatabase(tmp_path)
    db.put(
        {
            "type": "4189-A-021",
            "serial": "3021100",
            "sensitivity": 0.0528,
            "unit": "Pa",
            "ccld": True,
        },
        user="tester",
    )  # 10 % above the true 48.0 mV/Pa
    check = run_check(db, rig.addresses[0], 1, "94dB@1kHz", transducer=MIC_ID)
    expected = 20 * math.log10(48.0 / 52.8)  # -0.83 dB
    assert check.result.passed is False
    assert check.result.deviation_db == pytest.approx(expected, abs=0.05)
    # The detection noted that TEDS says otherwise than the stored calibration.
    assert db.get(MIC_ID).teds_differs()


def test_accelerometer_on_the_calibration_shaker(rig: EmulatedRig, tmp_path: Path) -> None:
    db = TransducerDatabase(tmp_path)
    check = run_check(db, rig.addresses[0], 2, "10m/s2@159.2Hz")
    r = check.result
    assert check.transducer is not None and check.transducer.id == ACC_ID
    assert abs(20 * math.log10(r.sensitivity * 1e3 / ACC_MV_PER_MS2)) < 0.1
    assert r.measured_frequency_hz == pytest.approx(159.2, abs=0.1)
    assert r.passed is True
    assert r.level_with_stored_db == pytest.approx(140.0, abs=0.1)  # dB re 1 µm/s²


def test_a_channel_without_the_tone_is_refused(rig: EmulatedRig, tmp_path: Path) -> None:
    # Channel 3 carries a 160 Hz voltage tone, no 1 kHz calibrator; channel 4 only noise.
    with pytest.raises(CalibrationError, match="strongest tone is at 160.0 Hz, not 1000 Hz"):
        run_check(TransducerDatabase(tmp_path), rig.addresses[0], 3, "94dB@1kHz")
    with pytest.raises(CalibrationError, match="no 1000 Hz tone dominates the channel"):
        run_check(TransducerDatabase(tmp_path), rig.addresses[0], 4, "94dB@1kHz")
    # A microphone cannot be calibrated with a shaker.
    with pytest.raises(CalibrationError, match="measures Pa"):
        run_check(TransducerDatabase(tmp_path), rig.addresses[0], 1, "10m/s2@159.2Hz")


def test_calibrate_command_stores_with_date_and_user(
    rig: EmulatedRig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calibrate", rig.addresses[0], "--channel", "1", "--reference", "94dB@1kHz"]
    argv += ["--data-dir", str(tmp_path), "--store", "--user", "ana", "--due", "2030-01-31"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "94.0 dB re 20 µPa" in out and "mV/Pa" in out
    entry = TransducerDatabase(tmp_path).get(MIC_ID)
    last = entry.history[-1]
    assert last.user == "ana" and last.source == "check" and last.reference == "94dB@1kHz"
    assert entry.calibrated_by == "ana" and entry.due == "2030-01-31"
    assert abs(20 * math.log10(entry.sensitivity * 1e3 / MIC_MV_PER_PA)) < 0.1
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert audit[-1]["action"] == "calibration.store" and audit[-1]["actor"] == "ana"
    # A wrong stored sensitivity: exit 1, FAIL, nothing stored without --store.
    TransducerDatabase(tmp_path).put(
        {"type": "4189-A-021", "serial": "3021100", "sensitivity": 0.0528, "unit": "Pa"},
        user="ana",
        replace_id=MIC_ID,
    )
    argv = ["calibrate", rig.addresses[0], "--channel", "1", "--reference", "94dB@1kHz"]
    argv += ["--data-dir", str(tmp_path), "--no-store", "--transducer", MIC_ID]
    assert main(argv) == 1
    assert "FAIL" in capsys.readouterr().out
    assert TransducerDatabase(tmp_path).get(MIC_ID).sensitivity == 0.0528
    # Bad input: exit 2 with the reason.
    assert (
        main(
            [
                "calibrate",
                rig.addresses[0],
                "--channel",
                "9",
                "--reference",
                "94dB@1kHz",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "input channels 1 to 6" in capsys.readouterr().err
