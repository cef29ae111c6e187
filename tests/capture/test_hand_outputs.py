"""Generator outputs by hand and the live FRF, on emulated 3160s.

Two 3160s in one PTP session; module 1's output 1 is cabled to its input 1 and, through the
emulator's resonance (fn 1000 Hz, ζ 0.05), to input 2. Monitoring, random noise started by hand
on module 1 (with module 2's output 1 started in the same request: slaves first, ``apply`` to the
master alone); the live FRF input 1 → input 2 (and → module 2's input 3, the cross-module case)
averaged from the CrossSpectra events finds the resonance within 1 % and |H1(fn)| = 1/(2ζ)
within 0.2 dB with coherence > 0.99; stopping by hand, and the recorder's close, stop the
outputs; an idle rig starts them at once (no apply); a refusal names module, output, request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.capture.fakes import Recorder
from tests.capture.test_capture_emulated import request_log
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings, ChannelSettings
from webapp.capture.trigger import RecordPlan
from webapp.dsp.frf import peak
from webapp.emulator import EmulatedRig
from webapp.openapi.client import ModuleError

FN, ZETA = 1000.0, 0.05
RANDOM = {
    "number": 1,
    "gain": 0.05,
    "inputs": [
        {"number": 1, "signalType": "random", "center_frequency": 2000.0, "bandwidth": 4000.0,
         "gain": 0.999, "gen_number": 3},
        {"number": 2, "signalType": "none"},
    ],
}  # fmt: skip
SINE = {"number": 1, "inputs": [{"number": 1, "signalType": "sine", "frequency": 200.0,
                                 "gain": 0.5}]}  # fmt: skip


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(2, types="3160", loopbacks=("1>1", f"1>2:{FN:g}:{ZETA:g}"), **FAST)
    yield rig
    rig.stop()


def settings(rig: EmulatedRig) -> CaptureSettings:
    return CaptureSettings(
        modules=list(rig.addresses),
        bandwidth="6.4 kHz",
        channels={
            a: [ChannelSettings(channel=c, enabled=c <= 3) for c in range(1, 5)]
            for a in rig.addresses
        },
    )


def average(events: list, responses: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """H1 and coherence per response from CrossSpectra events, as a viewer averages them."""
    lines = events[0].lines
    gxx = np.zeros(lines + 1)
    gyy = np.zeros((responses, lines + 1))
    gxy = np.zeros((responses, lines + 1), complex)
    count = 0
    for e in events:
        d = np.frombuffer(e.data, "<f4").astype(float).reshape(1 + 3 * responses, lines + 1)
        gxx += d[0] * e.segments
        for r in range(responses):
            gyy[r] += d[1 + 3 * r] * e.segments
            gxy[r] += (d[2 + 3 * r] + 1j * d[3 + 3 * r]) * e.segments
        count += e.segments
    h1 = gxy / gxx
    coherence = np.abs(gxy) ** 2 / (gxx * gyy)
    return np.arange(lines + 1) * events[0].df, h1, coherence, count


def test_hand_outputs_while_monitoring_and_the_live_frf(rig: EmulatedRig, tmp_path: Path) -> None:
    bus = EventBus()
    orch, rec = Orchestrator(bus, tmp_path), Recorder(bus)
    a, b = rig.addresses
    orch.monitor(settings(rig))
    rec.wait_until(lambda: orch.phase == Phase.MONITORING)
    key = ((a, 1), ((a, 2), (b, 3)), 1600)
    orch.watch_frfs([key])
    orch.start_outputs({a: [RANDOM], b: [SINE]}, [a, b])

    def generator_requests() -> list[tuple[str, str]]:
        return [(x, p) for _t, x, _m, p in request_log(rig) if p.startswith(("gen", "apply"))]

    rec.wait_until(lambda: len(generator_requests()) >= 7)  # logged once answered
    assert generator_requests() == [
        (b, "generator/prepare"), (b, "generator/output"), (b, "generator/start"),
        (a, "generator/prepare"), (a, "generator/output"), (a, "generator/start"),
        (a, "apply"),
    ]  # fmt: skip
    changed = [e for e in rec.events if e.kind == "generator"]
    assert {(e.module, e.number, e.running, e.how) for e in changed} == {
        (a, 1, True, "hand"),
        (b, 1, True, "hand"),
    }
    assert orch.outputs.snapshot()[a][1]["inputs"][0]["signalType"] == "random"
    # Spectra of blocks the output drives (its start is 50 ms after apply): skip the first.
    rec.wait_until(lambda: len(rec.kinds("frf")) >= 2)
    first = len(rec.kinds("frf"))
    rec.wait_until(lambda: sum(e.segments for e in rec.kinds("frf")[first:]) >= 40)
    events = rec.kinds("frf")[first:]
    assert events[0].key == f"{a}/1>{a}/2,{b}/3@1600"
    assert events[0].df == pytest.approx(16384 / 4096)
    f, h1, coh, count = average(events, 2)
    assert count >= 40
    found = peak(f, h1[0], 100, 3000)
    assert abs(found - FN) / FN < 0.01, found
    at = int(np.argmin(np.abs(f - FN)))
    assert 20 * np.log10(abs(h1[0][at])) == pytest.approx(20 * np.log10(1 / (2 * ZETA)), abs=0.2)
    band = (f >= 100) & (f <= 3500)
    assert np.min(coh[0][band]) > 0.99
    # Module 2's input 3 is its 160 Hz sine, unrelated to module 1's noise: incoherent.
    assert np.median(coh[1][band]) < 0.1

    # A recording cut from the monitoring says which outputs ran by hand (what drove the
    # structure), and keeps none of the live FRF's cross spectra in its timeline.
    orch.record_window(RecordPlan(name="window", duration_s=0.3))
    rec.wait_until(lambda: rec.kinds("capture-finished"))
    [meta] = [json.loads(f.read_text()) for f in (tmp_path / "captures").glob("*/capture.json")]
    by_hand = {m["address"]: m["generator_by_hand"] for m in meta["modules"]}
    assert by_hand == {a: [RANDOM], b: [SINE]}
    assert all(m["generator"] is None for m in meta["modules"])
    assert not [e for e in meta["events"] if e["kind"] in ("frf", "spectrum", "sound-levels")]

    orch.stop_outputs({a: [1]}, [a, b])
    assert set(orch.outputs.snapshot()) == {b}
    assert rig.modules[0].emulator.generator.snapshot()["running"] == []
    assert rig.modules[1].emulator.generator.snapshot()["running"] == [1]
    orch.disarm()
    assert orch.wait(30)
    # The recorder's close stopped module 2's output: the state says so, and why.
    assert orch.outputs.snapshot() == {}
    last = [e for e in rec.events if e.kind == "generator"][-1]
    assert (last.module, last.running) == (b, False) and "closed" in last.note


def test_idle_rig_starts_at_once_and_refusals_name_the_output(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    orch = Orchestrator(EventBus(), tmp_path)
    a, b = rig.addresses
    orch.start_outputs({a: [SINE]}, [a, b])
    assert rig.modules[0].emulator.generator.snapshot()["running"] == [1]
    assert not any(p == "apply" for _t, _a, _m, p in request_log(rig))
    with pytest.raises(ModuleError) as refused:
        orch.start_outputs(
            {b: [{"number": 2, "inputs": [{"number": 1, "signalType": "p_random"}]}]}, [a, b]
        )
    text = str(refused.value)
    assert text.startswith(f"module 2 ({b}) output 2: PUT /rest/rec/generator/output failed")
    assert "not emulated" in text
    orch.stop_outputs(None, [a, b])
    assert rig.modules[0].emulator.generator.snapshot()["running"] == []
