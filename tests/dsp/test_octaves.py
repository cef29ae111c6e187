"""Octave and one-third-octave filters against the class 1 limits on relative attenuation of
IEC 61260 (1995, Table 1; breakpoints of one-third-octave filters from its Annex), for every
band up to the bandwidth at the LAN-XI sample rates, on the response of the whole multirate
chain (anti-alias stages, folding, band filter), that response against sines fed through the
bank, and band levels of known tones and of white and pink noise against their analytic
share."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.dsp.octaves import G, OctaveBank, band_levels, bands

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


def within_mask(fraction: int, gain_db: float, ratio: float) -> bool:
    low, high = next((lo, hi) for r, lo, hi in mask(fraction) if r == ratio)
    return gain_db <= high + 1e-9 and (low is None or gain_db >= low - 1e-9)


@pytest.mark.parametrize("fs", sorted(RATES))
@pytest.mark.parametrize("fraction", [1, 3])
def test_every_band_within_the_class_1_limits(fraction: int, fs: int) -> None:
    """On the chain's response to a sine at the input (OctaveBank.response, which the next
    test checks against sines fed through the bank)."""
    bank = OctaveBank(fraction, fs)
    assert bank.stages >= 5  # the low bands run at a fraction of the rate
    points = [(i, r) for i, b in enumerate(bank.bands) for r, *_ in mask(fraction)]
    points = [(i, r) for i, r in points if bank.bands[i].mid * r < fs / 2]
    response = bank.response([bank.bands[i].mid * r for i, r in points])
    checked = 0
    for k, (i, ratio) in enumerate(points):
        gain = 20 * np.log10(response[i, k] + 1e-300)
        assert within_mask(fraction, gain, ratio), (bank.bands[i].nominal, ratio, gain)
        checked += 1
    assert checked > 50
    assert bands(fraction, fs)[-1].upper <= RATES[fs] * 1.13  # up to about the bandwidth


def sine_ms(bank: OctaveBank, f: float, seconds: float, settle_s: float) -> np.ndarray:
    """Mean square per band of a 1-Pa-RMS sine at ``f`` fed through ``bank`` in 4096-sample
    blocks, after ``settle_s`` (faded in over its first 0.3 s: no onset click)."""
    fs = bank.fs
    t = np.arange(int(seconds * fs)) / fs
    x = np.sqrt(2) * np.sin(2 * np.pi * f * t)
    ramp = int(0.3 * fs)
    x[:ramp] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    settle = int(settle_s * fs)
    for part in (x[:settle], x[settle:]):
        bank.take()
        for i in range(0, len(part), 4096):
            bank.feed(part[i : i + 4096])
    return bank.take()


@pytest.mark.parametrize(("fs", "seconds"), [(16384, 2.0), (131072, 1.0)])
@pytest.mark.parametrize("fraction", [1, 3])
def test_sines_through_the_bank_read_its_response(fraction: int, fs: int, seconds: float) -> None:
    """In the pass band, on the skirts and where a sine folds at a decimation (just above and
    below a stage's Nyquist frequency): the bank's reading of every band is its response."""
    frequencies = [1000.0, 0.3 * fs / 8 * 1.05, fs / 16 - 20, fs / 32 + 30, 0.45 * fs]
    if fs == 16384:
        frequencies.append(25.0)
    for f in frequencies:
        bank = OctaveBank(fraction, fs)
        ms = sine_ms(bank, f, seconds, settle_s=seconds / 2)
        read = 10 * np.log10(ms)
        expected = 20 * np.log10(bank.response(f)[:, 0] + 1e-300)
        audible = expected > -80
        assert np.abs(read - expected)[audible].max(initial=0) < 0.01, f
        assert (read[~audible] < -75).all(), f  # what folds is 80 dB down and more


@pytest.mark.parametrize(("fraction", "nominal"), [(3, 1000), (3, 25), (1, 31.5), (1, 4000)])
def test_sines_at_the_class_1_breakpoints_of_a_band(fraction: int, nominal: float) -> None:
    """The limits checked on the bank itself: sines at each breakpoint of a band at a low
    stage, the reference band and the top of the range, at 16384 S/s."""
    fs = 16384
    i = [b.nominal for b in bands(fraction, fs)].index(nominal)
    band = bands(fraction, fs)[i]
    for ratio, _low, _high in mask(fraction):
        f = band.mid * ratio
        if f >= fs / 2:
            continue
        gain = 10 * np.log10(sine_ms(OctaveBank(fraction, fs), f, 2.0, settle_s=1.0)[i])
        assert within_mask(fraction, gain, ratio), (ratio, gain)


def periodic_noise(fs: int, seconds: float, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise of exactly known spectrum: equal-power (white, ``slope`` 0) or power ∝ 1/f (pink,
    ``slope`` 1) lines every 1/``seconds`` Hz from 10 Hz, random phases; and the power per
    line (their sum is the signal's mean square)."""
    n = int(fs * seconds)
    f = np.fft.rfftfreq(n, 1 / fs)
    amplitude = np.where((f >= 10.0) & (f < fs / 2), np.clip(f, 10.0, None) ** (-slope / 2), 0)
    phases = np.exp(2j * np.pi * np.random.default_rng(7).random(len(f)))
    x = np.fft.irfft(amplitude * phases, n)
    power = amplitude**2 / np.sum(amplitude**2) * np.mean(x**2)
    return x, power


@pytest.mark.parametrize("fs", [16384, 131072])
@pytest.mark.parametrize("slope", [0, 1])
@pytest.mark.parametrize("fraction", [1, 3])
def test_noise_reads_its_share_in_every_band(fraction: int, slope: int, fs: int) -> None:
    """White and pink noise: each band reads the power of the lines between its edges, plus
    the Butterworth band-pass's effective bandwidth excess (π/8 / sin(π/8): +0.11 dB; IEC
    61260-1:2014 allows ±0.4 dB for class 1), within a line's share at the edges."""
    seconds = 4.0
    x, power = periodic_noise(fs, seconds, slope)
    f = np.fft.rfftfreq(len(x), 1 / fs)
    bank = OctaveBank(fraction, fs)
    bank.feed(x)  # one period to settle (whole periods at every stage)
    bank.take()
    for i in range(0, len(x), 4096):
        bank.feed(x[i : i + 4096])
    ms = bank.take()
    for band, got in zip(bank.bands, ms, strict=True):
        share = power[(f >= band.lower) & (f < band.upper)].sum()
        assert -0.05 < 10 * np.log10(got / share) < 0.15, band.label


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


@pytest.mark.parametrize("fs", [16384, 65536, 131072])
@pytest.mark.parametrize("fraction", [1, 3])
def test_a_1_khz_sine_reads_its_mean_square_at_every_rate(fraction: int, fs: int) -> None:
    """Amplitude 0.5: mean square 0.125, within 0.05 dB in the 1 kHz band after the anti-alias
    stages above it (0.005 dB ripple each at most)."""
    t = np.arange(3 * fs) / fs
    found, ms = band_levels(0.5 * np.sin(2 * np.pi * 1000.0 * t), fs, fraction, skip_s=1.0)
    got = ms[[b.label for b in found].index("1k")]
    assert 10 * np.log10(got / 0.125) == pytest.approx(0.0, abs=0.05)


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
