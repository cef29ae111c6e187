"""One rule for generator settings on every path: the capture settings (the ``capture``
command's ``--generator`` files) refuse a waveform without its fields, or with a field out of
range, in the same words as the dashboard's HTTP and Socket.IO requests
(tests/web/test_generator_control.py), before any module is contacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.capture.test_capture_emulated import run_cli
from webapp.capture.settings import CaptureSettings, SettingsError

ADDRESS = "127.0.0.1:9"  # never contacted: the settings are refused first


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ([{"number": 1, "signalType": "logsweep", "start_frequency": 10, "stop_frequency": 1000}],
         "inputs[0].decades_sec", ", input 1: a logsweep waveform needs decades_sec"),
        ([{"number": 1, "signalType": "random", "bandwidth": 100, "gen_number": 16}],
         "inputs[0].gen_number", ", input 1: gen_number must be 15 or less"),
        ([{"number": 1, "signalType": "sine", "frequency": 100, "phase": 360}],
         "inputs[0].phase", ", input 1: phase must be less than 360"),
        ([{"number": 1, "signalType": "dc", "gain": 0.1}, {"number": 1, "signalType": "none"}],
         "inputs", ": each input needs its own number 1 or 2"),
    ],
)  # fmt: skip
def test_settings_refuse_bad_waveforms(inputs, field, message) -> None:
    settings = CaptureSettings(
        modules=[ADDRESS], generators={ADDRESS: [{"number": 2, "inputs": inputs}]}
    )
    with pytest.raises(SettingsError) as caught:
        settings.validate()
    assert caught.value.field == f"generators.{ADDRESS}[0].{field}"
    assert caught.value.message == f"{ADDRESS} output 2{message}"


def test_capture_command_refuses_a_bad_generator_file(tmp_path: Path) -> None:
    body = tmp_path / "sweep.json"
    sweep = {"number": 1, "inputs": [{"number": 1, "signalType": "linsweep",
                                      "start_frequency": 20, "stop_frequency": 2000}]}  # fmt: skip
    body.write_text(json.dumps({"outputs": [sweep]}))
    result = run_cli(ADDRESS, "-o", str(tmp_path / "out"), "--generator", f"1:{body}", timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{ADDRESS} output 1, input 1: a linsweep waveform needs hz_second" in (
        result.stdout + result.stderr
    )
