"""The loop-back FRF: a 3160's output 1 drives input 1 directly (the reference) and input 2
through the emulator's simulated resonance (fn 1000 Hz, ζ 0.05); random excitation. H1 must
find the resonance within 1 % in frequency and match the analytic |H| within 0.2 dB, with
coherence above 0.99."""

from __future__ import annotations

import time

import numpy as np
import pytest
from streamcheck import check_stream

from webapp.dsp.frf import frf, peak
from webapp.emulator.waveforms import Loopback

from .conftest import Api, StreamReader

FN, ZETA = 1000.0, 0.05
WIRES = ("1>1", f"1>2:{FN:g}:{ZETA:g}")
RANDOM = {
    "outputs": [
        {
            "number": 1,
            "gain": 0.05,
            "inputs": [
                {"number": 1, "signalType": "random", "center_frequency": 2000.0,
                 "bandwidth": 4000.0, "gain": 0.999, "gen_number": 3},
                {"number": 2, "signalType": "none"},
            ],
        }
    ]
}  # fmt: skip


def measure(api: Api, seconds: float) -> tuple[np.ndarray, np.ndarray, int]:
    api.ok("put", "/open", json={"performTransducerDetection": False})
    api.ok("put", "/create")
    setup = api.ok("get", "/channels/input/default").json()
    for ch in setup["channels"]:
        ch.update(destinations=["socket"], bandwidth="6.4 kHz", enabled=ch["channel"] <= 2)
    api.ok("put", "/channels/input", json=setup)
    api.ok("put", "/generator/prepare", json={"outputs": [{"number": 1}]})
    api.ok("put", "/generator/output", json=RANDOM)
    api.ok("put", "/generator/start", json={"outputs": [{"number": 1}]})
    reader = StreamReader(api.module.host, api.ok("get", "/destination/socket").json()["tcpPort"])
    api.ok("post", "/measurements")
    time.sleep(seconds)
    api.ok("put", "/measurements/stop")
    report = check_stream(reader.wait_closed(), keep_values=True)
    x, y = (report.signal(i) for i in (1, 2))
    volts = [s.values() * s.descriptors["scale_factor"] / 2**23 for s in (x, y)]
    return volts[0], volts[1], x.sample_rate


def test_resonance_found_by_h1_with_random_excitation(start_rig) -> None:
    api = Api(start_rig(1, module_type="3160", loopbacks=WIRES).modules[0])
    x, y, fs = measure(api, 2.5)
    assert fs == 16384
    result = frf(x, y, fs, nperseg=4096)
    assert result.averages >= 15
    f, h1, h2, coh = result.frequency, result.h1[0], result.h2[0], result.coherence[0]
    found = peak(f, h1, 100, 3000)
    assert abs(found - FN) / FN < 0.01, found
    band = (f >= 50) & (f <= 3500)
    exact = Loopback(1, 2, FN, ZETA).response(f[band])
    db_error = 20 * np.log10(np.abs(h1[band]) / np.abs(exact))
    assert np.max(np.abs(db_error)) < 0.2, np.max(np.abs(db_error))
    at_fn = int(np.argmin(np.abs(f - FN)))
    assert 20 * np.log10(np.abs(h1[at_fn])) == pytest.approx(20 * np.log10(1 / (2 * ZETA)), abs=0.2)
    assert np.angle(h1[at_fn], deg=True) == pytest.approx(-90, abs=2)
    assert np.min(coh[band]) > 0.99
    # Noise-free reference: H2 agrees with H1
    assert np.max(np.abs(20 * np.log10(np.abs(h2[band]) / np.abs(h1[band])))) < 0.2
