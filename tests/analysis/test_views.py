"""Plot data for the capture page: min/max envelopes, the cached overview, spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from webapp.analysis import views
from webapp.analysis.reader import Capture
from webapp.analysis.synthetic import SynthChannel, SynthModule, calibrator_channel, write_capture

RATE = 65536


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("views") / "long"
    modules = [
        SynthModule(
            1,
            [calibrator_channel(1), SynthChannel(2, "noise", amplitude=0.3)],
            dropped=[(20, 5)],
            first_block=0,
        ),
        SynthModule(2, [SynthChannel(1, "tone", frequency=50)], first_block=3),
    ]
    write_capture(folder, modules, seconds=6, sample_rate=RATE, name="long")
    return folder


def envelope(values: np.ndarray, first: int, per: int, count: int) -> tuple[list, list]:
    lo, hi = [], []
    for b in range(count):
        part = values[first + b * per : first + (b + 1) * per]
        part = part[~np.isnan(part)]
        lo.append(float(part.min()) if part.size else None)
        hi.append(float(part.max()) if part.size else None)
    return lo, hi


@pytest.mark.parametrize("key", ["m1-ch2", "m2-ch1"])
def test_overview_envelope_is_exact_on_its_bins(long_capture: Path, key: str) -> None:
    with Capture.open(long_capture) as cap:
        cache = views.OverviewCache(cap)
        values = cap.read(key).astype(np.float32)
        d = views.time_data(cap, key, points=12, overview=cache)
        assert d["mode"] == "minmax" and d["bin"] % views.OVERVIEW_BIN == 0
        first = (d["start_index"] // views.OVERVIEW_BIN) * views.OVERVIEW_BIN
        lo, hi = envelope(values, first, d["bin"], len(d["min"]))
        assert d["min"] == pytest.approx(lo) and d["max"] == pytest.approx(hi)
        # Zoomed in, the same endpoint reads the samples themselves.
        ch = cap.channel(key)
        start = ch.start_ticks / 2**32 - cap.start_ticks / 2**32 + 1.0
        d = views.time_data(cap, key, start, start + 1000 / RATE, points=2000, overview=cache)
        assert d["mode"] == "samples"
        i0 = d["start_index"]
        assert np.array_equal(np.array(d["values"], np.float32), values[i0 : i0 + len(d["values"])])


def test_direct_envelope_between_overview_and_samples(long_capture: Path) -> None:
    with Capture.open(long_capture) as cap:
        values = cap.read("m1-ch1")
        d = views.time_data(cap, "m1-ch1", 0.0, 1.0, points=1000)
        assert d["mode"] == "minmax" and d["bin"] == 66
        lo, hi = envelope(values.astype(np.float32), 0, 66, len(d["min"]))
        assert d["min"] == pytest.approx(lo) and d["max"] == pytest.approx(hi)


def test_spectrum_skips_segments_with_lost_samples(long_capture: Path) -> None:
    with Capture.open(long_capture) as cap:
        gap_s = 20 * 4096 / RATE
        s = views.spectrum(cap, "m1-ch1", gap_s - 0.3, gap_s + 0.6, nfft=8192)
        assert 0 < s["segments"] < 13  # 13 segments fit; those over the gap are left out
        peak = int(np.argmax(s["db"]))
        assert s["freq"][peak] == 1000.0
        # Amplitude-correct scaling: a tone centred on a line reads its RMS, 1 Pa = 94 dB.
        assert s["db"][peak] == pytest.approx(94.0, abs=0.05)
        with pytest.raises(ValueError):
            views.spectrum(cap, "m1-ch1", nfft=1000)


def test_quality_timeline_gaps(long_capture: Path) -> None:
    with Capture.open(long_capture) as cap:
        q = views.quality_timeline(cap)
    by_key = {c["key"]: c for c in q["channels"]}
    gap = by_key["m1-ch1"]["gaps"][0]
    assert gap["start_s"] == pytest.approx(20 * 4096 / RATE)
    assert gap["missing"] == 5 * 4096
    assert by_key["m2-ch1"]["start_s"] == pytest.approx(3 * 4096 / RATE)
    assert by_key["m1-ch1"]["intervals"][0]["flags"] == ["overrun"]
