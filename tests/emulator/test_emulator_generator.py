"""The emulated generator (PROTOCOL.md §3.8, §5.7): every endpoint, the state rules, the
example bodies, every waveform, and what a looped-back input measures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamcheck import check_stream

from webapp.emulator.waveforms import OUTPUT_FULL_SCALE_VOLTS, OutputSetup, Waveform

from .conftest import Api, StreamReader
from .tutorial_clients import loopback_flow

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "openapi" / "examples"
ONE = {"outputs": [{"number": 1}]}
BOTH = {"outputs": [{"number": 1}, {"number": 2}]}
FS = 131072


def example(name: str) -> dict:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"the example bodies are not at {EXAMPLES}")
    return json.loads(path.read_text())


def sine_output(number: int, frequency: float, gain: float, phase: float = 0.0) -> dict:
    return {
        "number": number,
        "gain": gain,
        "inputs": [
            {"number": 1, "signalType": "sine", "frequency": frequency, "gain": 0.999,
             "phase": phase},
            {"number": 2, "signalType": "none"},
        ],
    }  # fmt: skip


def record(api: Api, seconds: float, during=None) -> dict[int, np.ndarray]:
    """A measurement of ``seconds``; returns volts per signal id (during(api) half way)."""
    reader = StreamReader(api.module.host, api.ok("get", "/destination/socket").json()["tcpPort"])
    api.ok("post", "/measurements")
    time.sleep(seconds / 2)
    if during:
        during(api)
    time.sleep(seconds / 2)
    api.ok("put", "/measurements/stop")
    report = check_stream(reader.wait_closed(), keep_values=True)
    return {
        sid: sig.values() * sig.descriptors["scale_factor"] / 2**23
        for sid, sig in report.signals.items()
    }


def tone(v: np.ndarray, fs: int = FS) -> tuple[float, float]:
    """(frequency of the strongest line, its peak amplitude) with a flat-top window."""
    win = np.hanning(v.size)
    spectrum = np.abs(np.fft.rfft(v * win)) * 2 / win.sum()
    k = int(np.argmax(spectrum[1:])) + 1
    return k * fs / v.size, float(np.max(np.abs(v)))


@pytest.fixture
def gen(start_rig) -> Api:
    api = Api(start_rig(1, module_type="3160").modules[0])
    return api


# --- endpoints and state rules ---------------------------------------------------------------


def test_default_setup_and_get_before_any_put(gen: Api) -> None:
    default = gen.ok("get", "/generator/output/default").json()
    assert [o["number"] for o in default["outputs"]] == [1, 2]
    first = default["outputs"][0]
    assert first["mixfunction"] == "sum" and first["gain"] == 1.0
    assert first["inputs"][0]["signalType"] == "sine" and first["inputs"][0]["gain"] == 0.0
    assert first["inputs"][1] == {"number": 2, "signalType": "none"}
    assert gen.ok("get", "/generator/output").json() == default


def test_every_request_is_accepted_in_idle_and_every_open_state(gen: Api) -> None:
    body = example("generator-output-3160-sine-2ch.json")

    def sequence() -> None:
        state = gen.status()["moduleState"]
        gen.ok("put", "/generator/prepare", json=example("generator-outputs-1-2.json"))
        gen.ok("put", "/generator/output", json=body)
        gen.ok("put", "/generator/start", json=BOTH)
        gen.ok("put", "/generator/stop", json=BOTH)
        gen.ok("put", "/apply")
        assert gen.status()["moduleState"] == state  # generator requests keep the state

    sequence()  # Idle
    gen.ok("put", "/open", json={"performTransducerDetection": False})
    sequence()  # RecorderOpened
    gen.ok("put", "/create")
    sequence()  # RecorderConfiguring
    setup = gen.ok("get", "/channels/input/default").json()
    for ch in setup["channels"]:
        ch["destinations"] = ["socket"]
    gen.ok("put", "/channels/input", json=setup)
    sequence()  # RecorderStreaming
    gen.ok("post", "/measurements")
    sequence()  # RecorderRecording
    gen.ok("put", "/measurements/stop")


def test_get_answers_the_setup_put(gen: Api) -> None:
    body = example("generator-output-3160-sine-0-180deg.json")
    gen.ok("put", "/generator/output", json=body)
    got = gen.ok("get", "/generator/output").json()["outputs"]
    assert got[1]["inputs"][0]["phase"] == 180 and got[1]["gain"] == 0.9
    assert got[0]["inputs"][0]["frequency"] == 128


@pytest.mark.parametrize(
    "name",
    [
        "generator-output-1ch-sine.json",
        "generator-output-1ch-square.json",
        "generator-output-1ch-dc.json",
        "generator-output-1ch-linsweep.json",
        "generator-output-1ch-logsweep.json",
        "generator-output-1ch-random.json",
        "generator-output-1ch-burst.json",
        "generator-output-3160-sine-2ch.json",
        "generator-output-3160-sine-2ch-levelchange.json",
        "generator-output-3160-sine-0-180deg.json",
    ],
)
def test_example_bodies_are_accepted(gen: Api, name: str) -> None:
    gen.ok("put", "/generator/output", json=example(name))


def test_refusals_say_what_is_wrong(gen: Api, start_rig) -> None:
    cases = [
        ({"outputs": [{"number": 3}]}, "output number must be 1 to 2"),
        ({"outputs": []}, "must be"),
        ({"outputs": [{"number": 1, "mixfunction": "div"}]}, "mixfunction"),
        ({"outputs": [{"number": 1, "inputs": [{"number": 1, "signalType": "saw"}]}]},
         "unknown signalType"),
        ({"outputs": [{"number": 1, "inputs": [{"number": 1, "signalType": "sine",
                                                 "frequency": "fast"}]}]}, "frequency"),
    ]  # fmt: skip
    for body, words in cases:
        r = gen.put("/generator/output", json=body)
        assert r.status_code == 400 and words in r.text, (body, r.text)
        assert "PUT /rest/rec/generator/output" in r.text
    p_random = example("generator-output-1ch-pseudorandom.json")
    r = gen.put("/generator/output", json=p_random)
    assert r.status_code == 400 and "pseudo-random waveforms are not emulated" in r.text
    r = gen.put("/generator/start", json=ONE)
    assert r.status_code == 400 and "output 1 is not prepared" in r.text
    r = gen.put("/generator/prepare", json={"outputs": [{"number": 0}]})
    assert r.status_code == 400
    no_outputs = Api(start_rig(1, module_type="3050").modules[0])
    r = no_outputs.put("/generator/prepare", json=ONE)
    assert r.status_code == 400 and "no generator outputs" in r.text


# --- what the looped-back input measures -----------------------------------------------------


def measuring(api: Api, **channel) -> None:
    """Open, create and stream input 1 (the 3160's loop-back input) to the socket."""
    api.ok("put", "/open", json={"performTransducerDetection": False})
    api.ok("put", "/create")
    setup = api.ok("get", "/channels/input/default").json()
    for ch in setup["channels"]:
        ch["destinations"] = ["socket"]
        ch["enabled"] = ch["channel"] in channel.get("channels", (1,))
    api.ok("put", "/channels/input", json=setup)


def test_loopback_sine_level_frequency_then_stop(gen: Api) -> None:
    measuring(gen)
    gen.ok("put", "/generator/prepare", json=ONE)
    gen.ok("put", "/generator/output", json={"outputs": [sine_output(1, 1000.0, 0.5)]})
    gen.ok("put", "/generator/start", json=ONE)
    v = record(gen, 1.0)[1]
    f, peak = tone(v)
    assert f == pytest.approx(1000.0, abs=1.0)
    assert peak == pytest.approx(0.5 * 0.999 * OUTPUT_FULL_SCALE_VOLTS, rel=1e-3)
    gen.ok("put", "/generator/stop", json=ONE)
    quiet = record(gen, 0.4)[1]
    assert np.sqrt(np.mean(quiet**2)) < 1e-3  # the open input's noise floor


def test_level_change_while_running(gen: Api) -> None:
    measuring(gen)
    gen.ok("put", "/generator/prepare", json=ONE)
    gen.ok("put", "/generator/output", json={"outputs": [sine_output(1, 500.0, 0.5)]})
    gen.ok("put", "/generator/start", json=ONE)

    def louder(api: Api) -> None:
        api.ok("put", "/generator/output", json={"outputs": [sine_output(1, 500.0, 0.25)]})

    v = record(gen, 1.2, during=louder)[1]
    first, last = v[: v.size // 4], v[-v.size // 4 :]
    assert np.max(np.abs(first)) == pytest.approx(0.5 * 0.999 * 10, rel=1e-3)
    assert np.max(np.abs(last)) == pytest.approx(0.25 * 0.999 * 10, rel=1e-3)


def test_two_outputs_in_antiphase(start_rig) -> None:
    api = Api(start_rig(1, module_type="3160", loopbacks=("1>1", "2>2")).modules[0])
    measuring(api, channels=(1, 2))
    api.ok("put", "/generator/prepare", json=BOTH)
    api.ok("put", "/generator/output", json=example("generator-output-3160-sine-0-180deg.json"))
    api.ok("put", "/generator/start", json=BOTH)
    sig = record(api, 0.6)
    a, b = sig[1], sig[2]
    assert np.max(np.abs(a)) == pytest.approx(0.9 * 0.999 * 10, rel=1e-3)
    assert np.max(np.abs(a + b)) < 1e-3  # 180° apart, started together


def test_start_waits_for_apply_on_a_multi_module_session(gen: Api) -> None:
    gen.ok("put", "/open", json={"performTransducerDetection": False, "singleModule": False})
    gen.ok("put", "/generator/prepare", json=ONE)
    gen.ok("put", "/generator/start", json=ONE)
    info = gen.control("get", "info").json()["generator"]
    assert info["waiting"] == [1] and info["running"] == []
    gen.ok("put", "/apply")
    info = gen.control("get", "info").json()["generator"]
    assert info["waiting"] == [] and info["running"] == [1]
    gen.ok("put", "/close")
    assert gen.control("get", "info").json()["generator"]["running"] == []


# --- waveforms, sample by sample -------------------------------------------------------------


def volts(body: dict, seconds: float = 1.0) -> np.ndarray:
    return OutputSetup.parse(body["outputs"][0], 2).volts(FS, int(FS * seconds))


def test_waveform_sine_square_dc() -> None:
    sine = volts(example("generator-output-1ch-sine.json"))
    t = np.arange(sine.size) / FS
    expected = 10 * 0.5 * 0.999 * np.sin(2 * np.pi * 1024 * t + np.pi)
    assert np.max(np.abs(sine - expected)) < 1e-9
    square = volts(example("generator-output-1ch-square.json"))
    levels = np.unique(np.round(square, 9))
    assert list(levels) == pytest.approx([-4.995, 4.995])
    # dutycycle 20 % of 128 samples a period, to the sample
    assert np.mean(square > 0) == pytest.approx(0.20, abs=1 / 128)
    dc = volts(example("generator-output-1ch-dc.json"))
    assert np.all(dc == pytest.approx(10 * 0.5 * 0.99999))


@pytest.mark.parametrize("kind", ["linsweep", "logsweep"])
def test_sweep_instantaneous_frequency(kind: str) -> None:
    body = example(f"generator-output-1ch-{kind}.json")
    w = Waveform.parse(body["outputs"][0]["inputs"][0], "test")
    t = np.arange(int(FS * w.period())) / FS
    phase = np.unwrap(w._sweep_phase(t))
    f = np.diff(phase) * FS / (2 * np.pi)
    if kind == "linsweep":  # saw-tooth 1024 -> 5000 Hz at 1500 Hz/s
        assert w.period() == pytest.approx((5000 - 1024) / 1500)
        assert f[0] == pytest.approx(1024, abs=0.1) and f[-1] == pytest.approx(5000, abs=0.1)
        assert np.diff(f).mean() * FS == pytest.approx(1500, rel=1e-3)
    else:  # up-down 1024 -> 5000 -> 1024 Hz at 2 decades/s
        half = np.log10(5000 / 1024) / 2
        assert w.period() == pytest.approx(2 * half)
        mid = f.size // 2
        assert f[0] == pytest.approx(1024, rel=1e-3) and f[mid] == pytest.approx(5000, rel=1e-3)
        assert f[-1] == pytest.approx(1024, rel=1e-3)
        quarter = int(FS * half / 2)
        assert f[quarter] == pytest.approx(1024 * 10 ** (2 * half / 2), rel=1e-3)


def test_random_band_level_and_burst() -> None:
    body = example("generator-output-1ch-random.json")
    v = volts(body, 8.0)
    assert np.sqrt(np.mean(v**2)) == pytest.approx(10 * 0.5 * 0.999 / np.sqrt(2), rel=1e-3)
    power = np.abs(np.fft.rfft(v)) ** 2
    f = np.fft.rfftfreq(v.size, 1 / FS)
    band = (f >= 8192 - 1024) & (f <= 8192 + 1024)
    assert power[band].sum() / power.sum() > 0.999999
    burst = {"outputs": [{"number": 1, "gain": 0.5, "mixfunction": "mul", "inputs": [
        {"number": 1, "signalType": "random", "bandwidth": 20000, "center_frequency": 10000,
         "gain": 0.999},
        {"number": 2, "signalType": "square", "frequency": 4, "highlevel": 1, "lowlevel": 0,
         "dutycycle": 25},
    ]}]}  # fmt: skip
    b = volts(burst, 1.0)
    quarter = FS // 16  # one burst: on for 1/16 s of every 1/4 s
    assert np.all(b[quarter + 10 : FS // 4 - 10] == 0) and np.std(b[: quarter - 10]) > 1


def test_hbk_loopback_example_flow_measures_its_20_khz_sine(gen: Api) -> None:
    """The request sequence of HBK's loopback.py against the default rig's 3160 (output 1
    cabled to input 1): a 20 kHz sine of 0.75 × 0.999999 × 10 V peak."""
    values, setup, info = loopback_flow(gen.module.address, 1.0)
    assert setup["channels"][0]["bandwidth"] == "51.2 kHz"
    v = np.asarray(values)
    f, peak = tone(v[-FS:])
    assert f == pytest.approx(20000.0, abs=1.0)
    assert peak == pytest.approx(0.75 * 0.999999 * OUTPUT_FULL_SCALE_VOLTS, rel=1e-3)
    assert gen.control("get", "info").json()["generator"]["running"] == []


def test_open_api_client_generator_calls(start_rig) -> None:
    """webapp.openapi.client against the emulator: every generator call, two modules in one
    PTP trigger domain started together by ``apply`` to the master, errors naming module,
    request and the module's message."""
    from webapp.openapi.client import ModuleClient, ModuleError

    rig = start_rig(2, types="3160")
    master, slave = (ModuleClient(m.address) for m in rig.modules)
    for client, is_master in ((slave, False), (master, True)):
        client.set_ptp(domain=7, preferred_master=is_master)
        client.open(single_module=False)
    setup = master.generator_default()["outputs"]
    setup[0]["inputs"][0]["gain"] = 0.5
    for client in (slave, master):
        client.prepare_generator([1])
        client.set_generator([setup[0]])
        client.start_generator([1])
    infos = [Api(m).control("get", "info").json()["generator"] for m in rig.modules]
    assert [i["waiting"] for i in infos] == [[1], [1]]
    master.apply()
    infos = [Api(m).control("get", "info").json()["generator"] for m in rig.modules]
    assert [i["running"] for i in infos] == [[1], [1]]
    assert master.generator_setup()["outputs"][0]["inputs"][0]["gain"] == 0.5
    with pytest.raises(ModuleError) as caught:
        master.start_generator([3])
    text = str(caught.value)
    assert rig.modules[0].address in text and "PUT /rest/rec/generator/start" in text
    assert "output number must be 1 to 2" in text
    for client in (master, slave):
        client.stop_generator([1])
        client.close()
