"""The sound level meter on known signals: the emulator's calibrator (1 kHz, 1 Pa RMS =
94.0 dB re 20 µPa), an A-weighted 100 Hz tone, the Fast time constant, Leq, max and peak."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.dsp.slm import SoundLevelMeter

FS = 65536


def tone(f: float, seconds: float, rms: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return rms * np.sqrt(2) * np.sin(2 * np.pi * f * t)


def feed_blocks(meter: SoundLevelMeter, x: np.ndarray, block: int = 4096) -> None:
    for i in range(0, len(x), block):
        meter.feed(x[i : i + block])


def test_the_calibrator_reads_94_db_on_every_weighting() -> None:
    meter = SoundLevelMeter(FS)
    feed_blocks(meter, tone(1000.0, 8.0))  # Slow settles to 0.01 dB in 8 τ
    snap = meter.snapshot()
    assert snap["reference"] == "dB re 20 µPa"
    for key in ("LAF", "LAS", "LCF", "LZF", "LAeq", "LCeq", "LZeq", "LAFmax"):
        assert snap[key] == pytest.approx(93.98, abs=0.1), key
    assert snap["LCpeak"] == pytest.approx(93.98 + 3.01, abs=0.1)  # a sine's peak: +3.01 dB
    third = snap["bands"]["3"]
    assert third["Z"][third["labels"].index("1k")] == pytest.approx(93.98, abs=0.15)


def test_a_weighting_of_a_100_hz_tone() -> None:
    meter = SoundLevelMeter(FS, octaves=False)
    feed_blocks(meter, tone(100.0, 2.0))
    snap = meter.snapshot()
    assert snap["LZeq"] == pytest.approx(93.98, abs=0.05)
    assert snap["LAF"] == pytest.approx(93.98 - 19.1, abs=0.1)
    assert snap["LCF"] == pytest.approx(93.98 - 0.3, abs=0.1)


def test_fast_time_weighting_reaches_minus_2_db_one_time_constant_after_onset() -> None:
    meter = SoundLevelMeter(FS, octaves=False)
    feed_blocks(meter, np.zeros(FS), block=FS)
    feed_blocks(meter, tone(1000.0, 0.125), block=FS)  # exactly τ = 125 ms of tone
    # 1 - e^-1 of the steady mean square: 10·log10(0.632) = -1.99 dB
    assert meter.snapshot()["LZF"] == pytest.approx(93.98 - 1.99, abs=0.1)


def test_max_and_leq_since_the_recording_started() -> None:
    meter = SoundLevelMeter(FS, octaves=False)
    feed_blocks(meter, tone(1000.0, 1.5, rms=1.0))  # 94 dB for 1.5 s (0.5 s of it settling)
    feed_blocks(meter, tone(1000.0, 1.0, rms=0.1))  # then 74 dB for 1 s
    snap = meter.snapshot()
    assert snap["duration_s"] == pytest.approx(2.0, abs=1e-3)
    assert snap["LAFmax"] == pytest.approx(93.98, abs=0.1)
    # energy mean of 1 s at 94 dB and 1 s at 74 dB: 94 + 10·log10((1 + 0.01) / 2)
    assert snap["LAeq"] == pytest.approx(93.98 + 10 * np.log10(1.01 / 2), abs=0.1)
    meter.reset()
    feed_blocks(meter, tone(1000.0, 1.0, rms=0.1))
    assert meter.snapshot()["LAeq"] == pytest.approx(73.98, abs=0.1)
