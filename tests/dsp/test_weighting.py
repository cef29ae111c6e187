"""The digital A and C weightings against IEC 61672-1:2013 Table 3 (weightings at the nominal
frequencies, to 0.1 dB, and the class 1 acceptance limits), at the LAN-XI sample rates, up to
the bandwidth of each."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.dsp.weighting import WeightingFilter, analog_db, digital_db

# nominal frequency Hz: (A dB, C dB, class 1 upper limit, class 1 lower limit (None: -inf))
TABLE_3 = {
    10: (-70.4, -14.3, 3.0, None), 12.5: (-63.4, -11.2, 2.5, None), 16: (-56.7, -8.5, 2.0, -4.0),
    20: (-50.5, -6.2, 2.0, -2.0), 25: (-44.7, -4.4, 2.0, -1.5), 31.5: (-39.4, -3.0, 1.5, -1.5),
    40: (-34.6, -2.0, 1.0, -1.0), 50: (-30.2, -1.3, 1.0, -1.0), 63: (-26.2, -0.8, 1.0, -1.0),
    80: (-22.5, -0.5, 1.0, -1.0), 100: (-19.1, -0.3, 1.0, -1.0), 125: (-16.1, -0.2, 1.0, -1.0),
    160: (-13.4, -0.1, 1.0, -1.0), 200: (-10.9, 0.0, 1.0, -1.0), 250: (-8.6, 0.0, 1.0, -1.0),
    315: (-6.6, 0.0, 1.0, -1.0), 400: (-4.8, 0.0, 1.0, -1.0), 500: (-3.2, 0.0, 1.0, -1.0),
    630: (-1.9, 0.0, 1.0, -1.0), 800: (-0.8, 0.0, 1.0, -1.0), 1000: (0.0, 0.0, 0.7, -0.7),
    1250: (0.6, 0.0, 1.0, -1.0), 1600: (1.0, -0.1, 1.0, -1.0), 2000: (1.2, -0.2, 1.0, -1.0),
    2500: (1.3, -0.3, 1.0, -1.0), 3150: (1.2, -0.5, 1.0, -1.0), 4000: (1.0, -0.8, 1.0, -1.0),
    5000: (0.5, -1.3, 1.5, -1.5), 6300: (-0.1, -2.0, 1.5, -2.0), 8000: (-1.1, -3.0, 1.5, -2.5),
    10000: (-2.5, -4.4, 2.0, -3.0), 12500: (-4.3, -6.2, 2.0, -5.0), 16000: (-6.6, -8.5, 2.5, -16.0),
    20000: (-9.3, -11.2, 3.0, None),
}  # fmt: skip

RATES = {65536: 25600, 131072: 51200, 32768: 12800, 16384: 6400}
"""Sample rate: bandwidth (LAN-XI: fs = 2.56 × bandwidth)."""


def exact(nominal: float) -> float:
    """The exact base-10 frequency a nominal one stands for (IEC 61672-1 uses them)."""
    return 1000.0 * 10 ** (round(10 * np.log10(nominal / 1000.0)) / 10)


@pytest.mark.parametrize("weighting", ["A", "C"])
def test_the_analog_definition_reproduces_table_3(weighting: str) -> None:
    column = 0 if weighting == "A" else 1
    for nominal, row in TABLE_3.items():
        assert float(analog_db(weighting, exact(nominal))) == pytest.approx(row[column], abs=0.051)


@pytest.mark.parametrize("fs", sorted(RATES))
@pytest.mark.parametrize("weighting", ["A", "C"])
def test_digital_weighting_within_class_1_up_to_the_bandwidth(weighting: str, fs: int) -> None:
    column = 0 if weighting == "A" else 1
    for nominal, row in TABLE_3.items():
        if nominal > RATES[fs]:
            continue
        got = float(digital_db(weighting, fs, exact(nominal))[0])
        upper, lower = row[2], row[3]
        deviation = got - row[column]
        assert deviation <= upper, (nominal, got)
        assert lower is None or deviation >= lower, (nominal, got)
        # and the analog definition itself to 0.05 dB, up to the bandwidth
        assert got == pytest.approx(float(analog_db(weighting, exact(nominal))), abs=0.05)


def test_a_weighted_100_hz_tone_is_19_1_db_down_and_1_khz_unchanged() -> None:
    fs = 65536
    t = np.arange(2 * fs) / fs
    for f, expected in ((100.0, -19.1), (1000.0, 0.0)):
        x = np.sqrt(2) * np.sin(2 * np.pi * f * t)
        y = WeightingFilter("A", fs)(x)[fs:]  # the second second: settled
        level = 10 * np.log10(np.mean(y**2) / np.mean(x[fs:] ** 2))
        assert level == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("fs", sorted(RATES))
def test_a_made_from_c_is_the_a_weighting(fs: int) -> None:
    """The meter's A (C, then the section A has beyond C) against the A filter itself, block
    after block (odd block sizes: the FIR's tail carries over)."""
    from webapp.dsp.sos import SosFilter
    from webapp.dsp.weighting import a_from_c_sos

    x = np.random.default_rng(5).standard_normal(fs // 2)
    a, c, a_from_c = WeightingFilter("A", fs), WeightingFilter("C", fs), SosFilter(a_from_c_sos(fs))
    cuts = [0, 5, 40, 4096, 4099, len(x)]
    direct = np.concatenate([a(x[i:j]) for i, j in zip(cuts[:-1], cuts[1:], strict=True)])
    made = np.concatenate([a_from_c(c(x[i:j])) for i, j in zip(cuts[:-1], cuts[1:], strict=True)])
    np.testing.assert_allclose(made, direct, rtol=0, atol=1e-9 * np.sqrt(np.mean(direct**2)))
