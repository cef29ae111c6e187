"""Channel labels and test metadata reach capture.json from the capture settings: a capture,
a second capture of the armed rig described differently, and a recording while monitoring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capture.fakes import Recorder
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.analysis.reader import Capture
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings, ChannelSettings, SettingsError
from webapp.capture.trigger import RecordPlan
from webapp.emulator import EmulatedRig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(2, **FAST)
    yield rig
    rig.stop()


def settings(rig: EmulatedRig, **kw) -> CaptureSettings:
    first, second = rig.addresses
    return CaptureSettings(
        modules=list(rig.addresses),
        duration_s=0.3,
        bandwidth="6.4 kHz",
        channels={a: [ChannelSettings(channel=c, enabled=c <= 2) for c in range(1, 7)]
                  for a in rig.addresses},
        labels={first: [{"channel": 2, "name": "Gearbox 1X+", "point": "gearbox:1:+x"}],
                second: [{"channel": 1, "name": "Driver's ear", "point": "cabin:7",
                          "group": "acoustics"}]},
        **kw,
    )  # fmt: skip


def meta(folder: Path) -> dict:
    return json.loads((folder / "capture.json").read_text())


def test_labels_and_test_metadata_in_capture_json(rig: EmulatedRig, tmp_path: Path) -> None:
    bus = EventBus()
    orch = Orchestrator(bus, tmp_path)
    first = settings(rig, name="run", test={"object": "Car 7", "tags": "nvh, road"})
    orch.arm(first)
    assert orch.wait(30) and orch.armed, orch.last_error
    one = orch.start(first)
    assert orch.wait(30) and orch.armed, orch.last_error
    second = settings(rig, name="run", test={"object": "Car 8", "operator": "Ada"})
    second.labels = {rig.addresses[0]: [{"channel": 1, "name": "Hub", "direction": "z"}]}
    two = orch.start(second)
    assert orch.wait(30) and orch.armed, orch.last_error
    doc = meta(tmp_path / "captures" / one)
    assert doc["title"] == ""
    assert doc["test"] == {"object": "Car 7", "operator": "", "notes": "", "tags": ["nvh", "road"]}
    assert doc["channels"] == [
        {"module": 1, "channel": 2, "name": "Gearbox 1X+", "point": "gearbox:1",
         "direction": "+X", "group": "", "note": ""},
        {"module": 2, "channel": 1, "name": "Driver's ear", "point": "cabin:7",
         "direction": "", "group": "acoustics", "note": ""},
    ]  # fmt: skip
    with Capture.open(tmp_path / "captures" / one) as cap:
        assert cap.channel("m1-ch2").name == "Gearbox 1X+"
        assert cap.channel("m2-ch1").metadata()["group"] == "acoustics"
    doc = meta(tmp_path / "captures" / two)  # the armed rig, described as the request said
    assert doc["test"]["object"] == "Car 8" and doc["test"]["operator"] == "Ada"
    assert [(c["module"], c["channel"], c["direction"]) for c in doc["channels"]] == [(1, 1, "+Z")]

    rec = Recorder(bus)
    orch.monitor(None)
    rec.wait_until(lambda: orch.phase == Phase.MONITORING)
    orch.record_window(RecordPlan(name="win", duration_s=0.2, test={**first.test, "notes": "w"}))
    rec.wait_until(lambda: rec.kinds("capture-finished"))
    (window,) = [p for p in (tmp_path / "captures").iterdir() if p.name.endswith("-win")]
    doc = meta(window)
    assert doc["test"]["notes"] == "w" and doc["test"]["object"] == "Car 7"
    assert len(doc["channels"]) == 2  # the armed settings' labels
    orch.stop()
    rec.wait_until(lambda: orch.phase == Phase.ARMED)
    orch.disarm()
    assert orch.wait(30)


def test_bad_labels_are_refused_before_anything_is_sent(rig: EmulatedRig) -> None:
    bad = settings(rig)
    bad.labels[rig.addresses[0]][0]["point"] = "gearbox:first"
    with pytest.raises(SettingsError) as caught:
        bad.validate()
    assert caught.value.field == f"labels.{rig.addresses[0]}[0].point"
    assert caught.value.message.startswith(f"{rig.addresses[0]} channel 2: point node 'first'")
    bad = settings(rig, test={"tags": 5})
    with pytest.raises(SettingsError, match="tags must be a list"):
        bad.validate()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webapp", "capture", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


def test_capture_command_takes_a_channel_table_and_test_metadata(rig: EmulatedRig, tmp_path):
    first, second = rig.addresses
    table = tmp_path / "table.csv"
    table.write_text(f"module,channel,name,point,direction\n{first},1,Hub,hub:4,-z\n"
                     f"{second},2,Mic,cabin:7,\n")  # fmt: skip
    out = tmp_path / "out"
    result = run_cli(first, second, "-t", "0.3", "--bandwidth", "6.4 kHz", "-o", str(out),
                     "--channel-table", str(table), "--object", "Car 7", "--tag", "nvh",
                     "--tag", "road")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((out / "capture.json").read_text())
    assert doc["test"] == {"object": "Car 7", "operator": "", "notes": "", "tags": ["nvh", "road"]}
    assert [(c["module"], c["channel"], c["name"], c["point"], c["direction"])
            for c in doc["channels"]] == [(1, 1, "Hub", "hub:4", "-Z"), (2, 2, "Mic", "cabin:7", "")]  # fmt: skip
    # A bad row is refused with its row and column, before any module is contacted.
    table.write_text(f"module,channel,point\n{first},1,hub:4\n127.0.0.9,1,x:1\n")
    result = run_cli(first, "-t", "0.3", "-o", str(tmp_path / "bad"), "--channel-table", str(table))
    assert result.returncode == 2
    assert (
        f"error: {table}: row 3, column module: 127.0.0.9 is not one of the modules"
        in result.stdout
    )
    assert not (tmp_path / "bad").exists()
