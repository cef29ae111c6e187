"""Octave and one-third-octave filters against the class 1 limits on relative attenuation of
IEC 61260 (1995, Table 1; breakpoints of one-third-octave filters from its Annex), for every
band up to the bandwidth at the LAN-XI sample rates, and band levels of known tones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from webapp.dsp.octaves import G, band_levels, band_sos, bands

# (normalised frequency as a power of G for octaves, lowest gain, highest gain); gains in dB
OCTAVE_MASK = [
    (0, -0.3, 0.3), (1 / 8, -0.4, 0.3), (1 / 4, -0.6, 0.3), (3 / 8, -1.3, 0.3),
    (1 / 2, -5.0, -2.0), (1, None, -17.5), (2, None, -42.0), (3, None, -61.0), (4, None, -70.0),
]  # fmt: skip
THIRD_RATIOS = [1.0, 1.02667, 1.05575, 1.08746, 1.12202, 1.29437, 1.88173, 3.05365, 5.39195]
"""The same breakpoints for one-third-octave filters, as f / fm above the mid-band (below it:
their reciprocals)."""

RATES = {16384: 6400, 65536: 25600, 131072: 51200}


def mask(fraction: int) -> list[tuple[float, float | None, float]]:
    out = []
    for i, (power, low, high) in enumerate(OCTAVE_MASK):
        ratio = G**power if fraction == 1 else THIRD_RATIOS[i]
        out.append((ratio, low, high))
        if ratio != 1.0:
            out.append((1 / ratio, low, high))
    return out


@pytest.mark.parametrize("fs", sorted(RATES))
@pytest.mark.parametrize("fraction", [1, 3])
def test_every_band_within_the_class_1_limits(fraction: int, fs: int) -> None:
    checked = 0
    for band in bands(fraction, fs):
        sos = band_sos(band, fs)
        for ratio, low, high in mask(fraction):
            f = band.mid * ratio
            if f >= fs / 2:
                continue
            gain = 20 * np.log10(abs(signal.sosfreqz(sos, worN=[f], fs=fs)[1][0]) + 1e-300)
            assert gain <= high + 1e-9, (band.nominal, ratio, gain)
            assert low is None or gain >= low - 1e-9, (band.nominal, ratio, gain)
            checked += 1
    assert checked > 50
    assert bands(fraction, fs)[-1].upper <= RATES[fs] * 1.13  # up to about the bandwidth


def test_mid_band_frequencies_are_base_10_and_labelled_nominally() -> None:
    thirds = bands(3, 65536)
    assert [b.label for b in thirds][:4] == ["25", "31.5", "40", "50"]
    one_k = next(b for b in thirds if b.label == "1k")
    assert one_k.mid == 1000.0
    assert next(b for b in thirds if b.label == "31.5").mid == pytest.approx(31.6228, abs=1e-3)
    assert [b.label for b in bands(1, 65536)][:3] == ["31.5", "63", "125"]


def test_a_1_pa_tone_reads_94_db_in_its_band_and_little_elsewhere() -> None:
    fs = 65536
    t = np.arange(3 * fs) / fs
    x = np.sqrt(2) * np.sin(2 * np.pi * 1000.0 * t)  # 1 Pa RMS: 94.0 dB re 20 µPa
    found, ms = band_levels(x, fs, 3, skip_s=1.0)
    level = {b.label: 10 * np.log10(v / (20e-6) ** 2) for b, v in zip(found, ms, strict=True)}
    assert level["1k"] == pytest.approx(93.98, abs=0.1)
    assert level["800"] < 94 - 15 and level["1.25k"] < 94 - 15
    octave, ms = band_levels(x, fs, 1, skip_s=1.0)
    assert 10 * np.log10(ms[[b.label for b in octave].index("1k")] / 4e-10) == pytest.approx(
        93.98, abs=0.1
    )


def test_window_bands_of_a_stored_capture_read_the_calibrator(tmp_path) -> None:
    """The analysis page's bands: a synthetic capture of the emulator's microphone signal
    (1 kHz, 1 Pa RMS) reads 94.0 dB re 20 µPa at 1 kHz, LAeq 94.0, and A = Z + correction."""
    from webapp.analysis.bands import window_bands
    from webapp.analysis.reader import Capture
    from webapp.analysis.synthetic import SynthModule, calibrator_channel, write_capture

    write_capture(tmp_path, [SynthModule(1, [calibrator_channel(1)])], seconds=2.0)
    with Capture.open(tmp_path) as cap:
        key = cap.channels[0].key
        d = window_bands(cap, key, None, None, 3)
    one_k = d["labels"].index("1k")
    assert d["Z"][one_k] == pytest.approx(93.98, abs=0.15)
    assert d["LAeq"] == pytest.approx(93.98, abs=0.1) and d["db_label"] == "dB re 20 µPa"
    assert d["A_correction"][one_k] == 0.0


def test_the_analysis_spectrum_with_flat_top_reads_the_calibrator(tmp_path) -> None:
    from webapp.analysis import views
    from webapp.analysis.reader import Capture
    from webapp.analysis.synthetic import SynthModule, calibrator_channel, write_capture

    write_capture(tmp_path, [SynthModule(1, [calibrator_channel(1)])], seconds=2.0)
    with Capture.open(tmp_path) as cap:
        key = cap.channels[0].key
        flat = views.spectrum(cap, key, None, None, 4096, "flattop")
        hann = views.spectrum(cap, key, None, None, 4096, "hann")
    assert max(flat["db"]) == pytest.approx(93.98, abs=0.1) and flat["window"] == "flattop"
    assert max(hann["db"]) < max(flat["db"]) - 0.5  # 1 kHz falls between 16 Hz lines
    with pytest.raises(ValueError, match="window must be one of"):
        views.spectrum(cap, key, None, None, 8192, "kaiser")
