"""Live spectra: a calibrator tone reads its level on every window where it should, the axis
ends at the bandwidth, PSD of white noise is its variance over the bandwidth."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.dsp.spectrum import SpectrumAverager

FS = 65536


def level_db(ms: float) -> float:
    return 10 * np.log10(ms / (20e-6) ** 2)


@pytest.mark.parametrize("lines", [400, 1600, 6400])
def test_flat_top_reads_the_calibrator_to_a_tenth_of_a_db_between_lines(lines: int) -> None:
    avg = SpectrumAverager(FS, "flattop", lines)
    t = np.arange(4 * FS) / FS
    avg.feed(np.sqrt(2) * np.sin(2 * np.pi * 1000.0 * t))  # 1 Pa RMS, between lines at 16 Hz
    ms, frames = avg.take()
    assert frames >= 4 and len(ms) == lines + 1
    assert (len(ms) - 1) * avg.df == pytest.approx(FS / 2.56)  # ends at the bandwidth
    assert level_db(ms.max()) == pytest.approx(93.98, abs=0.1)
    assert abs(np.argmax(ms) * avg.df - 1000.0) <= avg.df


def test_hann_scallops_between_lines_and_is_exact_on_a_line() -> None:
    avg = SpectrumAverager(FS, "hann", 1600)  # 16 Hz lines
    t = np.arange(2 * FS) / FS
    avg.feed(np.sqrt(2) * np.sin(2 * np.pi * 1008.0 * t))  # on line 63
    on_line = level_db(avg.take()[0].max())
    avg.feed(np.sqrt(2) * np.sin(2 * np.pi * 1000.0 * t))  # half a line off
    between = level_db(avg.take()[0].max())
    assert on_line == pytest.approx(93.98, abs=0.05)
    assert between == pytest.approx(93.98 - 1.42, abs=0.1)


def test_psd_of_white_noise_is_flat_at_variance_over_nyquist() -> None:
    rng = np.random.default_rng(3)
    avg = SpectrumAverager(FS, "hann", 800)
    avg.feed(rng.normal(0, 1.0, 16 * FS))
    ms, _ = avg.take()
    psd = ms[5:-5] / avg.enbw_hz
    assert np.mean(psd) == pytest.approx(1.0 / (FS / 2), rel=0.03)
