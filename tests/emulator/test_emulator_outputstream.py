"""Streamed generator waveforms (stream-format.md §13): the client writes samples to the port
``GET generator/output`` names, the emulated 3160 plays them at the output's rate from its FIFO,
and the looped-back input 1 records them, sample by sample, with no latency (docs/emulator.md).
The client side is ``webapp.openapi.outputstream``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import soundfile
from streamcheck import check_stream

from webapp.emulator.clock import TICKS_PER_SECOND
from webapp.emulator.rig import NOISE_FLOOR_VOLTS
from webapp.openapi.outputstream import (
    FULL_SCALE_COUNTS,
    PRIME_SAMPLES,
    OutputStreamer,
    OutputStreamError,
    WaveformFile,
    array_slices,
    rate_exponent,
)

from .conftest import Api, StreamReader
from .test_emulator_generator import EXAMPLES, ONE, example, measuring

FS = 131072


def streamed(gain: float, input_gain: float = 1.0, rate: int = 0, **extra) -> dict:
    return {
        **extra,
        "outputs": [
            {
                "number": 1,
                "gain": gain,
                "inputs": [
                    {"number": 1, "signalType": "stream", "gain": input_gain, "samplingRate": rate},
                    {"number": 2, "signalType": "none"},
                ],
            }
        ],
    }


def chirp(seconds: float, f0: float = 50.0, f1: float = 20000.0, peak: float = 0.9) -> np.ndarray:
    t = np.arange(int(FS * seconds)) / FS
    rate = (f1 - f0) / seconds
    return peak * np.sin(2 * np.pi * (f0 * t + rate * t * t / 2))


def stream_info(api: Api) -> dict:
    return api.control("get", "info").json()["generator"]["streams"][0]


def wait_until(api: Api, done: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while not done(info := stream_info(api)):
        assert time.monotonic() < deadline, info
        time.sleep(0.02)
    return info


@pytest.fixture
def gen(start_rig) -> Api:
    return Api(start_rig(1, module_type="3160").modules[0])


def test_stream_setup_answers_a_port_per_output_and_refuses_bad_setups(gen: Api) -> None:
    gen.ok("put", "/generator/output", json=example("generator-output-3160-stream-2ch.json"))
    outputs = gen.ok("get", "/generator/output").json()["outputs"]
    ports = [o["inputs"][0]["port"] for o in outputs]
    assert all(isinstance(p, int) and p > 0 for p in ports) and ports[0] != ports[1]
    assert outputs[0]["inputs"][0]["source"] == "socket"
    assert outputs[0]["inputs"][0]["errorcode"] == 0
    info = gen.control("get", "info").json()["generator"]["streams"]
    assert [s["bufferSize"] for s in info] == [1048576, 1048576]  # the example's bufferSize
    assert [s["sampleRate"] for s in info] == [FS, FS]
    bad = [
        (streamed(0.5, rate=4), "samplingRate must be 0, 1, 2 or 3"),
        (streamed(0.5, bufferSize=100), "bufferSize must be 18000 to"),
        (streamed(0.5, bufferSize="big"), "bufferSize must be a whole number"),
    ]
    on_input_2 = streamed(0.5)
    on_input_2["outputs"][0]["inputs"][1] = {"number": 2, "signalType": "stream"}
    bad.append((on_input_2, "input 2: a streamed waveform goes on input 1 only"))
    for body, words in bad:
        r = gen.put("/generator/output", json=body)
        assert r.status_code == 400 and words in r.text, (body, r.text)
    # Back to a built-in waveform: the streamed input's port is closed.
    gen.ok("put", "/generator/output", json=example("generator-output-3160-sine-2ch.json"))
    assert gen.control("get", "info").json()["generator"]["streams"] == []
    with pytest.raises(OutputStreamError, match="cannot connect"):
        OutputStreamer(gen.module.host, ports[0], timeout=2)


def record_streams(
    gen: Api, body: dict, wave: np.ndarray, channels: tuple[int, ...] = (1,)
) -> tuple[dict[int, np.ndarray], dict, int]:
    """Measure ``channels`` while ``wave`` is streamed through output 1 from a start after T0;
    returns (volts per signal id, the stream's state, the measurement's T0)."""
    measuring(gen, channels=channels)
    reader = StreamReader(gen.module.host, gen.ok("get", "/destination/socket").json()["tcpPort"])
    gen.ok("post", "/measurements")
    deadline = time.monotonic() + 5
    while len(reader.data) < 1000:  # the measurement's T0 has passed: data flows
        assert time.monotonic() < deadline, "no data from the measurement"
        time.sleep(0.01)
    gen.ok("put", "/generator/prepare", json=ONE)
    gen.ok("put", "/generator/output", json=body)
    port = gen.ok("get", "/generator/output").json()["outputs"][0]["inputs"][0]["port"]
    streamer = OutputStreamer(gen.module.host, port)
    slices = array_slices(wave)
    streamer.feed(slices, until=PRIME_SAMPLES)
    feeder = threading.Thread(target=streamer.feed, args=(slices,))
    feeder.start()
    gen.ok("put", "/generator/start", json=ONE)
    feeder.join(10)
    streamer.close()
    rate = stream_info(gen)["sampleRate"]
    info = wait_until(gen, lambda s: s["played"] > wave.size + rate // 8)
    gen.ok("put", "/measurements/stop")
    gen.ok("put", "/generator/stop", json=ONE)
    t0 = gen.control("get", "info").json()["measurement"]["t0"]
    report = check_stream(reader.wait_closed(), keep_values=True)
    volts = {
        sid: sig.values() * sig.descriptors["scale_factor"] / 2**23
        for sid, sig in report.signals.items()
    }
    return volts, info, t0


def record_stream(gen: Api, body: dict, wave: np.ndarray) -> tuple[np.ndarray, dict, int]:
    volts, info, t0 = record_streams(gen, body, wave)
    return volts[1], info, t0


def test_streamed_chirp_reaches_the_loopback_input_sample_by_sample(gen: Api) -> None:
    gain, input_gain = 0.5, 0.8
    wave = np.concatenate([chirp(1.5), np.zeros(FS // 4)])
    recorded, info, t0 = record_stream(gen, streamed(gain, input_gain), wave)
    assert info["received"] == wave.size and info["underruns"] == 0 and info["ended"]
    # Where the output's first sample must sit: its start tick on the input's sample grid.
    assert (info["startTick"] - t0) * FS % TICKS_PER_SECOND == 0
    lag = (info["startTick"] - t0) * FS // TICKS_PER_SECOND
    expected = 10.0 * gain * input_gain * np.rint(wave * FULL_SCALE_COUNTS) / 2**23
    got = recorded[lag : lag + wave.size]
    assert got.size == wave.size, (lag, recorded.size)
    residual = got - expected
    assert np.sqrt(np.mean(residual**2)) < 1.3 * NOISE_FLOOR_VOLTS  # only the noise floor
    assert np.max(np.abs(residual)) < 8 * NOISE_FLOOR_VOLTS
    before = recorded[max(0, lag - 2000) : lag]
    assert np.max(np.abs(before)) < 8 * NOISE_FLOOR_VOLTS  # silent before the start
    # One sample off would leave a residual of the chirp's slope, far above the noise.
    shifted = recorded[lag + 1 : lag + 1 + wave.size] - expected
    assert np.sqrt(np.mean(shifted**2)) > 100 * NOISE_FLOOR_VOLTS


def test_at_half_the_rate_each_output_sample_lasts_two_input_samples(gen: Api) -> None:
    out_rate = FS // 2
    wave = 0.8 * np.sin(2 * np.pi * 1000.0 * np.arange(out_rate) / out_rate)
    recorded, info, t0 = record_stream(gen, streamed(0.5, rate=1), wave)
    assert info["sampleRate"] == out_rate and info["underruns"] == 0
    lag = (info["startTick"] - t0) * FS // TICKS_PER_SECOND
    expected = np.repeat(10.0 * 0.5 * np.rint(wave * FULL_SCALE_COUNTS) / 2**23, 2)
    residual = recorded[lag : lag + expected.size] - expected
    assert residual.size == expected.size
    assert np.sqrt(np.mean(residual**2)) < 1.3 * NOISE_FLOOR_VOLTS
    # Played at 65536 Hz, the 1000 Hz of the samples stays 1000 Hz at the input.
    segment = recorded[lag : lag + expected.size]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size)))
    assert np.argmax(spectrum) * FS / segment.size == pytest.approx(1000.0, abs=1.0)


def test_a_stream_through_the_simulated_resonance(start_rig) -> None:
    api = Api(start_rig(1, module_type="3160", loopbacks=("1>1", "1>2:1000:0.05")).modules[0])
    wave = 0.1 * np.sin(2 * np.pi * 1000.0 * np.arange(FS // 2) / FS)
    volts, info, t0 = record_streams(api, streamed(0.5), wave, channels=(1, 2))
    lag = (info["startTick"] - t0) * FS // TICKS_PER_SECOND
    # After the transient (time constant 1/(ζ·ωn) = 3.2 ms): the steady state at fn.
    drive, response = (v[lag + FS // 4 : lag + FS // 2] for v in (volts[1], volts[2]))
    line = int(round(1000.0 * drive.size / FS))
    h = np.fft.rfft(response)[line] / np.fft.rfft(drive)[line]
    assert abs(h) == pytest.approx(1 / (2 * 0.05), rel=0.01)  # Q = 10 at fn
    assert np.degrees(np.angle(h)) == pytest.approx(-90.0, abs=1.0)


def test_a_late_client_underruns_and_the_output_plays_on_delayed(gen: Api) -> None:
    measuring(gen)
    gen.ok("put", "/generator/prepare", json=ONE)
    gen.ok("put", "/generator/output", json=streamed(0.5, bufferSize=20000))
    port = gen.ok("get", "/generator/output").json()["outputs"][0]["inputs"][0]["port"]
    streamer = OutputStreamer(gen.module.host, port)
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(FS) / FS)
    # More than the FIFO holds: the rest waits in the sockets, nothing plays before the start.
    sender = threading.Thread(target=streamer.feed, args=(array_slices(tone[:60000]),))
    sender.start()
    held = wait_until(gen, lambda s: s["buffered"] >= 20000 - 4096)
    assert held["buffered"] <= 20000 and held["played"] == 0 and held["received"] <= 20000
    gen.ok("put", "/generator/start", json=ONE)
    sender.join(5)
    assert not sender.is_alive()
    late = wait_until(gen, lambda s: s["underruns"] == 1)  # 60000 samples last 0.46 s
    assert late["buffered"] == 0 and not late["ended"]
    time.sleep(0.1)  # the client is late by at least this
    streamer.feed(array_slices(tone[60000:]))
    streamer.close()  # the client ends: playing out the FIFO and then silence is no underrun
    resumed = wait_until(gen, lambda s: s["ended"] and s["buffered"] == 0)
    assert resumed["underruns"] == 1
    assert resumed["underrunSamples"] >= 0.1 * FS * 0.9
    assert resumed["received"] == FS
    # played = what arrived + the silent slots of the underrun (+ the silence after the end).
    assert resumed["played"] >= FS + resumed["underrunSamples"]
    time.sleep(0.05)
    assert stream_info(gen)["underruns"] == 1
    gen.ok("put", "/generator/stop", json=ONE)
    assert not stream_info(gen)["running"] and not stream_info(gen)["connected"]


def test_waveform_file_slices_and_rates(tmp_path) -> None:
    path = tmp_path / "sweep.wav"
    wave = chirp(0.2)
    soundfile.write(path, np.stack([wave, -wave], axis=1), 65536, subtype="FLOAT")
    f = WaveformFile(path, channel=2)
    assert f.sampling_rate_exponent == 1 and f.frames == wave.size
    got = np.concatenate(list(f.slices(1000)))
    assert np.allclose(got, -wave, atol=1e-7)
    soundfile.write(tmp_path / "cd.wav", wave, 44100)
    with pytest.raises(OutputStreamError, match="streams at 131072, 65536, 32768, 16384 Hz"):
        WaveformFile(tmp_path / "cd.wav")
    with pytest.raises(OutputStreamError, match="channel 3"):
        WaveformFile(path, channel=3)
    assert rate_exponent(16384) == 3
    assert EXAMPLES  # the example bodies' folder is shared with the generator tests
