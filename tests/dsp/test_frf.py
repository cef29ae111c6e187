"""H1, H2 and coherence against analytic values: a known filter on white noise, noise on the
response or on the reference, and block-by-block averaging equal to one pass."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from webapp.dsp.frf import FrfAverager, frf, peak

FS = 8192


def test_h1_h2_of_a_known_fir_filter() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(FS * 32)
    b = signal.firwin(31, 1000, fs=FS)  # a short FIR: no leakage bias at nperseg 4096
    y = signal.lfilter(b, [1.0], x)
    r = frf(x, y, FS, nperseg=4096)
    _, exact = signal.freqz(b, worN=r.frequency, fs=FS)
    useful = (r.frequency > 20) & (r.frequency < 900)  # DC is removed (detrend)
    # The filter's 15-sample delay against 4096-sample segments: a bias below 1 %.
    assert np.max(np.abs(r.h1[0][useful] - exact[useful])) < 0.01
    assert np.max(np.abs(r.h2[0][useful] - exact[useful])) < 0.01
    assert np.min(r.coherence[0][useful]) > 0.99


def test_noise_on_the_response_biases_h2_not_h1_and_lowers_coherence() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(FS * 16)
    y = 2.0 * x + rng.standard_normal(x.size)  # SNR 4: γ² = 4 / 5
    r = frf(x, y, FS, nperseg=512)
    assert np.median(np.abs(r.h1[0])) == pytest.approx(2.0, rel=0.02)
    assert np.median(np.abs(r.h2[0])) == pytest.approx(2.5, rel=0.03)  # (4 + 1) / 2
    assert np.median(r.coherence[0]) == pytest.approx(0.8, abs=0.02)


def test_block_by_block_equals_one_pass_and_several_responses() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(10_000)
    ys = np.vstack([0.5 * x, -x + 0.01 * rng.standard_normal(x.size)])
    whole = frf(x, ys, FS, nperseg=256, overlap=0.5)
    live = FrfAverager(FS, 2, nperseg=256, overlap=0.5)
    for start in range(0, x.size, 777):
        live.add(x[start : start + 777], ys[:, start : start + 777])
    parts = live.result()
    assert parts.averages == whole.averages == 1 + (10_000 - 256) // 128
    assert np.allclose(parts.h1, whole.h1) and np.allclose(parts.coherence, whole.coherence)
    assert np.allclose(np.abs(whole.h1[0][1:-1]), 0.5)
    assert np.allclose(np.angle(whole.h1[1][5:-5], deg=True) % 360, 180, atol=1)


def test_peak_refines_between_lines_and_refuses_an_empty_band() -> None:
    f = np.arange(0, 2000, 10.0)
    wn, zeta = 2 * np.pi * 1234.0, 0.02
    s = 2j * np.pi * f
    h = wn**2 / (s * s + 2 * zeta * wn * s + wn**2)
    assert peak(f, h) == pytest.approx(1234.0 * np.sqrt(1 - 2 * zeta**2), abs=2.0)
    with pytest.raises(ValueError, match="no FRF line"):
        peak(f, h, 5000, 6000)


def test_errors_in_the_users_terms() -> None:
    with pytest.raises(ValueError, match="at least 4096 samples"):
        frf(np.zeros(100), np.zeros(100), FS)
    with pytest.raises(ValueError, match="expected 1 response signals of 100 samples"):
        FrfAverager(FS, 1).add(np.zeros(100), np.zeros(99))
