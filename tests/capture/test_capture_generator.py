"""Generators started with a recording: on two 3160s in one PTP session the orchestrator sends
prepare, output, start to each (slaves first), then apply to the master alone, before the
measurement; the looped-back input records the sine; capture.json holds the settings; the
outputs stop after the recording; an output a module lacks is refused before anything starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.capture.fakes import Recorder
from tests.capture.test_capture_emulated import request_log, run_cli
from tests.streamcheck import check_file
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.capture.events import EventBus
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings, SettingsError
from webapp.emulator import EmulatedRig

SINE = {
    "number": 1,
    "gain": 0.5,
    "inputs": [
        {"number": 1, "signalType": "sine", "frequency": 500.0, "gain": 0.999},
        {"number": 2, "signalType": "none"},
    ],
}


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(2, types="3160", **FAST)
    yield rig
    rig.stop()


def test_generators_start_with_the_recording_in_sync(rig: EmulatedRig, tmp_path: Path) -> None:
    bus = EventBus()
    orch, _events = Orchestrator(bus, tmp_path), Recorder(bus)
    a, b = rig.addresses
    settings = CaptureSettings(modules=[a, b], duration_s=1.0, generators={a: [SINE], b: [SINE]})
    orch.start(settings)
    assert orch.wait(60), orch.last_error
    assert orch.last_outcome == "completed", orch.last_error
    log = [
        (addr, m, p)
        for _t, addr, m, p in request_log(rig)
        if p.startswith(("gen", "apply", "meas"))
    ]
    gen_requests = [e for e in log if e[2] != "measurements"]
    assert gen_requests[:4] == [
        (b, "PUT", "generator/prepare"),
        (b, "PUT", "generator/output"),
        (b, "PUT", "generator/start"),
        (a, "PUT", "generator/prepare"),
    ]
    assert (a, "PUT", "apply") in log and (b, "PUT", "apply") not in log
    assert log.index((a, "PUT", "apply")) < log.index((b, "POST", "measurements"))
    stops = [e for e in log if e[2] == "generator/stop"]
    assert sorted(stops) == sorted([(a, "PUT", "generator/stop"), (b, "PUT", "generator/stop")])
    meta = json.loads((orch.last_folder / "capture.json").read_text())
    assert [m["generator"] for m in meta["modules"]] == [[SINE], [SINE]]
    for module in meta["modules"]:
        report = check_file(orch.last_folder / module["files"][0]["file"], keep_values=True)
        sig = report.signal(1)
        volts = sig.values() * sig.descriptors["scale_factor"] / 2**23
        assert np.max(np.abs(volts)) == pytest.approx(0.5 * 0.999 * 10, rel=1e-3)
    for m in rig.modules:
        assert m.emulator.generator.snapshot()["running"] == []


def test_an_output_the_module_lacks_is_refused_before_anything_starts(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    bus = EventBus()
    orch = Orchestrator(bus, tmp_path)
    a, b = rig.addresses
    with pytest.raises(SettingsError, match=r"module 2 \(.*\) has generator outputs 1 to 2"):
        orch.start(CaptureSettings(modules=[a, b], generators={b: [{**SINE, "number": 3}]}))
    assert not any(e[3].startswith("gen") for e in request_log(rig))


def test_generator_settings_are_checked_like_every_setting() -> None:
    with pytest.raises(SettingsError) as caught:
        CaptureSettings(
            modules=["127.0.0.1:1"], generators={"127.0.0.1:1": [{**SINE, "mixfunction": "div"}]}
        ).validate()
    assert caught.value.field.startswith("generators")
    with pytest.raises(SettingsError, match="not one of the capture's modules"):
        CaptureSettings(modules=["127.0.0.1:1"], generators={"127.0.0.1:2": [SINE]}).validate()


def test_capture_command_generator_option(rig: EmulatedRig, tmp_path: Path) -> None:
    body = tmp_path / "sine.json"
    body.write_text(json.dumps({"outputs": [SINE]}))
    out = tmp_path / "out"
    result = run_cli(rig.addresses[0], "-t", "1", "-o", str(out), "--generator", f"1:{body}")
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((out / "capture.json").read_text())
    assert meta["modules"][0]["generator"] == [SINE]
    bad = run_cli(rig.addresses[0], "-o", str(out), "--generator", f"2:{body}")
    assert bad.returncode == 2 and "N a module number 1 to 1" in bad.stdout
