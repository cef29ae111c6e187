"""SosFilter block after block against scipy.signal.sosfilt on the whole signal, through
scipy's kernel and through the fallback, for one signal and several."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from webapp.dsp.sos import SosFilter, first_order


@pytest.mark.parametrize("kernel", [True, False])
def test_blocks_give_what_sosfilt_gives_on_the_whole_signal(kernel: bool) -> None:
    sos = signal.butter(4, [900, 1100], btype="bandpass", fs=16384, output="sos")
    x = np.random.default_rng(2).standard_normal(10000)
    whole = signal.sosfilt(sos, x)
    f = SosFilter(sos, kernel=kernel)
    cuts = [0, 0, 1, 8, 4096, 4097, 9000, 10000]  # an empty block, one sample, odd sizes
    got = np.concatenate([f(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-12)
    assert f(x[:0]).shape == (0,)


@pytest.mark.parametrize("kernel", [True, False])
def test_several_signals_each_keep_their_state(kernel: bool) -> None:
    sos = first_order(0.1, -0.9)
    x = np.random.default_rng(3).standard_normal((3, 5000))
    f = SosFilter(sos, channels=3, kernel=kernel)
    got = np.concatenate([f(x[:, :1234]), f(x[:, 1234:])], axis=1)
    np.testing.assert_allclose(got, signal.lfilter([0.1], [1.0, -0.9], x, axis=-1), atol=1e-12)
    assert not np.shares_memory(got, x)


def test_sections_are_checked_once() -> None:
    with pytest.raises(ValueError, match="a0"):
        SosFilter(np.array([[1.0, 0, 0, 2.0, 0, 0]]))
    with pytest.raises(ValueError, match="signals expected"):
        SosFilter(first_order(1.0, 0.0), channels=2)(np.zeros(10))
