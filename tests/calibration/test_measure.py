"""The calibration arithmetic against analytic values: references, the tone's level between
lines, sensitivity and deviation, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from webapp.calibration.measure import CalibrationError, evaluate, parse_reference, read_tone

FS = 65536


def tone(freq: float, rms: float, seconds: float = 1.0, noise: float = 0.0) -> np.ndarray:
    t = np.arange(int(FS * seconds)) / FS
    rng = np.random.default_rng(7)
    return rms * math.sqrt(2) * np.sin(2 * np.pi * freq * t + 0.4) + rng.normal(0, noise, t.size)


def test_references() -> None:
    r94 = parse_reference("94dB@1kHz")
    assert r94.unit == "Pa" and r94.frequency_hz == 1000.0
    assert r94.rms == pytest.approx(1.00237, abs=1e-5)  # 20 µPa · 10^(94/20)
    assert parse_reference("114 dB @ 1 kHz").rms == pytest.approx(10.0237, abs=1e-4)
    shaker = parse_reference("10m/s2@159.2Hz")
    assert shaker.unit == "m/s^2" and shaker.rms == 10.0 and shaker.level_db == pytest.approx(140)
    assert parse_reference("10m/s²@159.2Hz").text == "10m/s2@159.2Hz"
    for bad in ("94", "94dB", "94dB@0Hz", "300dB@1kHz", "loud@1kHz"):
        with pytest.raises(CalibrationError, match="reference"):
            parse_reference(bad)


@pytest.mark.parametrize("freq", [1000.0, 1001.7, 159.2])
def test_a_tone_between_lines_reads_its_rms(freq: float) -> None:
    reading = read_tone(tone(freq, 0.05, noise=2e-4), FS, freq)
    assert 20 * math.log10(reading.rms / 0.05) == pytest.approx(0.0, abs=0.02)
    assert reading.frequency_hz == pytest.approx(freq, abs=0.1)


def test_deviation_and_verdict() -> None:
    ref = parse_reference("94dB@1kHz")
    volts = tone(1000.0, 0.050 * ref.rms)  # a 50.0 mV/Pa microphone
    check = evaluate(volts, FS, ref, stored_sensitivity=0.050 * 10 ** (0.5 / 20))
    assert check.sensitivity == pytest.approx(0.050, rel=2e-3)
    assert check.deviation_db == pytest.approx(-0.5, abs=0.02) and check.passed is False
    assert evaluate(volts, FS, ref, 0.050 * 10 ** (0.25 / 20)).passed is True
    assert evaluate(volts, FS, ref, 0.050 * 10 ** (0.25 / 20), tolerance_db=0.2).passed is False
    assert evaluate(volts, FS, ref, None).passed is None


def test_refusals() -> None:
    ref = parse_reference("94dB@1kHz")
    with pytest.raises(CalibrationError, match="no 1000 Hz tone dominates"):
        evaluate(tone(1000.0, 1e-4, noise=1e-3), FS, ref, 0.05)
    with pytest.raises(CalibrationError, match="strongest tone is at 250.0 Hz"):
        evaluate(tone(250.0, 0.05), FS, ref, 0.05)
    with pytest.raises(CalibrationError, match="too few"):
        evaluate(tone(1000.0, 0.05, seconds=0.01), FS, ref, 0.05)
    with pytest.raises(CalibrationError, match="tolerance"):
        evaluate(tone(1000.0, 0.05), FS, ref, 0.05, tolerance_db=0)
