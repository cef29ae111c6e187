"""CPU of the live sound level meter per displayed channel, beside the plain level path that
every channel gets (one block per signal about five times a second), and beside the
implementation of ``--baseline`` (a git revision), same run.

For each LAN-XI rate, one channel's worth of 4096-sample blocks for ``--seconds`` of signal:

* **levels**: ``LiveModule.block`` on one block per 0.2 s (what every channel costs);
* **meter**: ``LiveAcoustics.analyse`` on every block, weighting and time weighting only;
* **meter + bands**: the same with the 1/1- and 1/3-octave filter banks (what a displayed
  channel costs);
* **bands**: the two octave banks alone (``OctaveBank.feed``);
* **max block**: the longest single ``analyse`` call of a block (meter + bands), in ms;
* **base meter+bands**, **base bands**: the same with ``webapp/dsp`` as it was at
  ``--baseline`` (read with ``git show`` into a temporary package; ``--baseline ''``: none).

Figures are CPU seconds per second of signal, in percent of one core.

    python bench/sound_levels.py [--seconds 3] [--rates 131072] [--baseline REV]
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webapp.capture.acoustics import LiveAcoustics  # noqa: E402
from webapp.capture.levels import LiveModule  # noqa: E402
from webapp.dsp.octaves import OctaveBank  # noqa: E402
from webapp.dsp.slm import SoundLevelMeter  # noqa: E402
from webapp.openapi.stream import SignalInterpretation  # noqa: E402

BLOCK = 4096
BASELINE = "77b4aa2"
"""The single-rate octave bank (every band's filter on every sample) and the meter before."""
DSP_MODULES = ("weighting", "octaves", "slm")


def blocks(rate: int, seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    n = int(rate * seconds / BLOCK)
    t = np.arange(BLOCK) / rate
    tone = (0.1 * (1 << 23) * np.sin(2 * np.pi * 1000 * t)).astype(np.int32)
    return [tone + rng.integers(-1000, 1000, BLOCK, dtype=np.int32) for _ in range(n)]


def cpu(fn, items) -> tuple[float, float]:
    """Total CPU seconds of ``fn`` over ``items``, and the longest single call."""
    longest = 0.0
    start = time.process_time()
    for item in items:
        t0 = time.process_time()
        fn(item)
        longest = max(longest, time.process_time() - t0)
    return time.process_time() - start, longest


def baseline_dsp(rev: str) -> types.SimpleNamespace:
    """``webapp.dsp``'s meter and bank as at ``rev``, as a temporary package ``baseline_dsp``."""
    folder = Path(tempfile.mkdtemp(prefix="baseline_dsp_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    package = folder / "baseline_dsp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in DSP_MODULES:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:webapp/dsp/{name}.py"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        (package / f"{name}.py").write_text(source.replace("webapp.dsp.", "baseline_dsp."))
    sys.path.insert(0, str(folder))
    slm = importlib.import_module("baseline_dsp.slm")
    octaves = importlib.import_module("baseline_dsp.octaves")
    return types.SimpleNamespace(SoundLevelMeter=slm.SoundLevelMeter, OctaveBank=octaves.OctaveBank)


def analyse_all(meter, data: list[np.ndarray], interp: SignalInterpretation) -> tuple[float, float]:
    acoustics = LiveAcoustics("bench", lambda e: None)
    acoustics.meters[1] = meter
    return cpu(lambda raw: acoustics.analyse(1, raw, interp), data)


def bank_feed(bank_class, rate: int, data: list[np.ndarray]) -> float:
    banks = [bank_class(b, rate) for b in (1, 3)]
    scaled = [raw * (247.6 / (1 << 23)) for raw in data]

    def feed(x: np.ndarray) -> None:
        for bank in banks:
            bank.feed(x)

    return cpu(feed, scaled)[0]


def measure(rate: int, seconds: float, base: types.SimpleNamespace | None) -> dict[str, float]:
    """CPU seconds of each path over ``seconds`` of one channel at ``rate``."""
    data = blocks(rate, seconds)
    interp = SignalInterpretation(1, scale_factor=247.6, sample_rate=rate, unit="Pa")
    live = LiveModule("bench", lambda e: None)
    every = max(1, round(0.2 * rate / BLOCK))
    out = {"levels": cpu(lambda raw: live.block(1, raw, 247.6, 0.0, "Pa", rate), data[::every])[0]}
    out["meter"] = analyse_all(SoundLevelMeter(rate, "Pa", octaves=False), data, interp)[0]
    out["meter+bands"], out["max block"] = analyse_all(SoundLevelMeter(rate, "Pa"), data, interp)
    out["bands"] = bank_feed(OctaveBank, rate, data)
    if base is not None:
        out["base meter+bands"] = analyse_all(base.SoundLevelMeter(rate, "Pa"), data, interp)[0]
        out["base bands"] = bank_feed(base.OctaveBank, rate, data)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rates", type=int, nargs="+", default=[16384, 32768, 65536, 131072])
    p.add_argument("--baseline", default=BASELINE, help="git revision to compare with ('': none)")
    args = p.parse_args()
    base = baseline_dsp(args.baseline) if args.baseline else None
    columns = ["levels", "meter", "meter+bands", "bands"]
    if base is not None:
        columns += ["base meter+bands", "base bands"]
    print("CPU % of one core per channel (CPU seconds per second of signal × 100); max block in ms")
    print(f"{'rate':>8}" + "".join(f"  {c:>16}" for c in columns) + f"  {'max block':>10}")
    for rate in args.rates:
        got = measure(rate, args.seconds, base)
        scale = 100 / args.seconds
        row = "".join(f"  {got[c] * scale:15.2f}%" for c in columns)
        print(f"{rate:8d}{row}  {got['max block'] * 1e3:8.2f}ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
