"""HBK's own ``loopback.py`` (hbk-world/LAN-XI-Open-API-python-examples) against an emulated 3160.

The example ships without a licence, so the repository does not carry it: the test runs a
checkout of HBK's python examples from ``$LANXI_HBK_PYTHON_EXAMPLES`` or, by default, the shared
reference folder beside the repository (``shared/seed/LAN-XI-Open-API-python-examples``), and
skips with the reason when it is not there. The script runs unmodified except for its
hard-coded address: a copy in the test's temporary folder has exactly that one line changed
(checked with a diff). It talks to ``lanxi-dashboard emulate`` on port 80 of a loopback address,
as to a real module, with its own Kaitai parser, and plots with matplotlib (non-interactive
backend). A small wrapper runs it with ``runpy`` and reads the spectrum the script computed
itself (its ``freq`` and ``s_dbfs``, dBV re 1 V): the peak must be its 20 kHz sine at the level
the emulated rig predicts, 10 V × 0.75 = 7.5 V peak, i.e. 20·log10(7.5/√2) = 14.49 dB re 1 V.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.net import port_bindable
from tests.support.processes import REPO, Emulate

DEFAULT_EXAMPLES = REPO.parent / "shared" / "seed" / "LAN-XI-Open-API-python-examples"
ADDRESS = "127.0.1.61"
ADDRESS_LINE = 'ip = "10.100.36.196"'

WRAPPER = """
import json, runpy
import numpy as np
g = runpy.run_path("loopback.py", run_name="__main__")
k = int(np.argmax(g["s_dbfs"][1:])) + 1
print("RESULT " + json.dumps({
    "peakHz": float(g["freq"][k]), "peakDb": float(g["s_dbfs"][k]),
    "binHz": float(g["freq"][1]), "samples": int(g["array"].size),
    "sampleRate": int(g["sample_rate"]),
    "floorDb": float(np.median(g["s_dbfs"])),
}))
"""


def _examples() -> Path:
    root = Path(os.environ.get("LANXI_HBK_PYTHON_EXAMPLES", DEFAULT_EXAMPLES))
    if not (root / "loopback.py").is_file():
        pytest.skip(
            f"HBK's python examples are not at {root} (set LANXI_HBK_PYTHON_EXAMPLES to a checkout"
            " of hbk-world/LAN-XI-Open-API-python-examples; it has no licence, so it is not"
            " carried in the repository)"
        )
    for module in ("kaitaistruct", "matplotlib", "pkg_resources"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"HBK's loopback.py needs {module} (test extras)")
    return root


@pytest.mark.port80
def test_hbk_loopback_example_measures_its_20_khz_sine(tmp_path: Path) -> None:
    examples = _examples()
    if not port_bindable(ADDRESS, 80):
        pytest.skip(f"port 80 of {ADDRESS} cannot be bound here (needs root or a free port)")
    work = tmp_path / "examples"
    shutil.copytree(examples, work, ignore=shutil.ignore_patterns(".git", "*.png"))
    original = (examples / "loopback.py").read_text()
    assert original.count(ADDRESS_LINE + "\n") == 1, "loopback.py's address line has changed"
    patched = original.replace(ADDRESS_LINE, f'ip = "{ADDRESS}"')
    (work / "loopback.py").write_text(patched)
    changed = [
        line
        for line in difflib.unified_diff(original.splitlines(), patched.splitlines(), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [f"-{ADDRESS_LINE}", f'+ip = "{ADDRESS}"'], changed

    emulate = Emulate(
        "--modules", "1", "--type", "3160", "--address", ADDRESS, "--port", "80",
        "--teds-seconds", "0.3", "--buffer-seconds", "20",
    )  # fmt: skip
    try:
        ready = emulate.ready(1)
        assert ready and ready[0].startswith("module 1: BK3160"), (ready, emulate.stderr())
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        run = subprocess.run(
            [sys.executable, "-c", WRAPPER],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        log = requests.get(f"http://{ADDRESS}/emulator/requests", timeout=5).json()
    finally:
        assert emulate.stop() == 0

    assert "Spectrum saved as loopback-spectrum.png" in run.stdout
    assert (work / "loopback-spectrum.png").stat().st_size > 10_000
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert result["sampleRate"] == 131072  # 51.2 kHz bandwidth, the 3160's default
    assert result["samples"] >= 5 * 131072
    assert abs(result["peakHz"] - 20000.0) <= result["binHz"]
    assert result["peakDb"] == pytest.approx(20 * math.log10(7.5 / math.sqrt(2)), abs=0.05)
    assert result["floorDb"] < -120  # the 50 µV noise floor, no other line
    # Every request it sent was answered 200, its bodiless generator/stop included.
    statuses = {(e["method"], e["path"]): e["status"] for e in log}
    assert statuses[("PUT", "/rest/rec/generator/stop")] == 200
    assert set(statuses.values()) == {200}, statuses
