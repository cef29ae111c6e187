"""What each "auto" of the user's setup stood for, read from the setup as PUT to the module."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from webapp.capture.setup import applied_channels, build_setup

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "openapi" / "examples"
DEFAULT = {
    "channels": [
        {"channel": n, "enabled": True, "range": "10 Vpeak", "filter": "7.0 Hz", "ccld": False,
         "polvolt": False, "transducer": {"sensitivity": 1, "unit": "V", "serialNumber": 0,
                                           "type": {"prefix": "", "number": "None", "model": "",
                                                    "variant": ""}}}
        for n in (1, 2)
    ]
}  # fmt: skip
MIC = {
    "sensitivity": 0.0502,
    "unit": "Pa",
    "serialNumber": 3021100,
    "requiresCcld": 1,
    "requires200V": 0,
    "type": {"prefix": "", "number": "4189", "model": "A", "variant": "021"},
}


def test_detected_transducer_and_module_defaults_are_what_auto_used():
    setup = build_setup(copy.deepcopy(DEFAULT), [MIC, None], {}, "25.6 kHz", False)
    got = applied_channels(setup)
    assert got[0] == {
        "channel": 1, "enabled": True, "range": "10 Vpeak", "filter": "7.0 Hz", "ccld": True,
        "polvolt": False, "sensitivity": 0.0502, "unit": "Pa", "transducer": "4189-A-021",
        "serial": 3021100,
    }  # fmt: skip
    assert got[1]["transducer"] is None and got[1]["unit"] == "V" and not got[1]["ccld"]


def test_a_real_module_setup_body_reads():
    path = EXAMPLES / "input-setup-3050-6ch-51k2-socket.json"
    if not path.exists():
        pytest.skip(f"{path} is not beside this checkout")
    got = applied_channels(json.loads(path.read_text()))
    assert [c["channel"] for c in got] == [1, 2, 3, 4, 5, 6]
    assert got[0]["range"] == "10 Vpeak" and got[0]["filter"] == "7.0 Hz"
