"""The live FRF's alignment (webapp/capture/livefrf.py) on synthetic blocks with a known answer:
the response is half the reference one sample late (H = 0.5·e^(−jω/fs)), the two channels come
as blocks of different sizes starting at different times (as from two modules' streams), and a
gap on one channel drops the partial segment instead of smearing it: the averaged cross spectra
give |H| = −6.02 dB re 1, the phase of one sample's delay and coherence near 1 on every line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from webapp.capture import livefrf
from webapp.capture.events import CrossSpectra
from webapp.capture.levels import RAW_FULL_SCALE
from webapp.openapi.stream import ticks_per_sample

FS = 8192
TPS = ticks_per_sample(FS)


@dataclass
class Interp:
    sample_rate: int = FS
    scale_factor: float = float(RAW_FULL_SCALE)  # raw values are the volts themselves
    offset: float = 0.0
    unit: str = "V"


def averaged(events: list[CrossSpectra]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n = events[0].lines + 1
    acc = np.zeros((4, n))
    count = 0
    for e in events:
        acc += np.frombuffer(e.data, "<f4").reshape(4, n) * e.segments
        count += e.segments
    gxx, gyy, re, im = acc
    gxy = re + 1j * im
    return gxy / gxx, np.abs(gxy) ** 2 / (gxx * gyy), np.arange(n) * events[0].df, count


def test_blocks_of_two_streams_align_and_a_gap_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livefrf, "PUBLISH_INTERVAL_S", 0.0)
    events: list[CrossSpectra] = []
    frf = livefrf.LiveFrf((("a", 1), (("b", 3),), 400), events.append)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(FS * 4)
    y = 0.5 * np.concatenate(([0.0], x[:-1]))
    t0 = 1000 * 2**32
    # The response's stream starts 3 blocks of 256 later; blocks interleave as they would.
    for k in range(0, x.size // 1024):
        frf.block(0, t0 + k * 1024 * TPS, x[k * 1024 : (k + 1) * 1024], Interp())
        for j in range(4 * k, 4 * k + 4):
            if j >= 3:
                frf.block(1, t0 + j * 256 * TPS, y[j * 256 : (j + 1) * 256], Interp())
    assert frf.restarts == 0
    h, coh, f, count = averaged(events)
    assert count >= 55  # 4 s of 1024-sample segments at half overlap, less the first 768 samples
    band = (f > 0) & (f < FS / 2.56)
    # (a delay of one sample in a 1024-sample segment biases H1 and γ² by about 1/1024)
    assert np.allclose(20 * np.log10(np.abs(h[band])), 20 * np.log10(0.5), atol=0.05)
    delay = -360 * f[band] / FS
    assert np.allclose(np.angle(h[band], deg=True), delay, atol=1.0)
    assert np.min(coh[band]) > 0.99
    assert events[0].units == {"reference": "V", "responses": ["V"]}
    assert events[0].key == "a/1>b/3@400" and events[0].df == FS / 1024

    # A gap of one block on the reference: the alignment starts again after it.
    before = sum(e.segments for e in events)
    t1 = t0 + x.size * TPS
    frf.block(0, t1 + 1024 * TPS, x[:1024], Interp())  # 1024 samples missing
    assert frf.restarts == 1
    for k in range(1, 4):
        frf.block(0, t1 + (k + 1) * 1024 * TPS, x[k * 1024 : (k + 1) * 1024], Interp())
        frf.block(1, t1 + (k + 1) * 1024 * TPS, y[k * 1024 : (k + 1) * 1024], Interp())
    h, coh, _f, count = averaged(events)
    assert count > before
    assert np.min(coh[band]) > 0.99  # no segment spans the gap


def test_a_new_rate_starts_again_and_a_block_without_interpretation_is_ignored() -> None:
    events: list[CrossSpectra] = []
    frf = livefrf.LiveFrf((("a", 1), (("a", 2),), 400), events.append)
    frf.block(0, 0, np.zeros(1024), None)
    frf.block(0, 0, np.zeros(1024), Interp())
    assert frf.restarts == 0
    # The next session at twice the rate: its blocks are taken at their rate, from scratch.
    rng = np.random.default_rng(3)
    x = rng.standard_normal(8192)
    tps = ticks_per_sample(FS * 2)
    for k in range(8):
        block = x[k * 1024 : (k + 1) * 1024]
        frf.block(0, k * 1024 * tps, block, Interp(sample_rate=FS * 2))
        frf.block(1, k * 1024 * tps, 2 * block, Interp(sample_rate=FS * 2))
    assert frf.restarts == 1
    assert events and events[-1].sample_rate == FS * 2 and events[-1].df == 2 * FS / 1024
    h, _coh, _f, _count = averaged(events)
    assert np.allclose(np.abs(h[1:]), 2.0, rtol=1e-4)
