"""CPU of the live sound level meter per displayed channel at full rate, beside the plain level
path that every channel gets (one block per signal about five times a second), same run.

For each LAN-XI rate, one channel's worth of 4096-sample blocks for ``--seconds`` of signal:

* **levels**: ``LiveModule.block`` on one block per 0.2 s (what every channel costs);
* **meter**: ``LiveAcoustics.analyse`` on every block, weighting and time weighting only;
* **meter + bands**: the same with the 1/1- and 1/3-octave filter banks (what a displayed
  channel costs).

Figures are CPU seconds per second of signal, in percent of one core.

    python bench/sound_levels.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webapp.capture.acoustics import LiveAcoustics  # noqa: E402
from webapp.capture.levels import LiveModule  # noqa: E402
from webapp.dsp.slm import SoundLevelMeter  # noqa: E402
from webapp.openapi.stream import SignalInterpretation  # noqa: E402

BLOCK = 4096


def blocks(rate: int, seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    n = int(rate * seconds / BLOCK)
    t = np.arange(BLOCK) / rate
    tone = (0.1 * (1 << 23) * np.sin(2 * np.pi * 1000 * t)).astype(np.int32)
    return [tone + rng.integers(-1000, 1000, BLOCK, dtype=np.int32) for _ in range(n)]


def cpu(fn, items) -> float:
    start = time.process_time()
    for item in items:
        fn(item)
    return time.process_time() - start


def measure(rate: int, seconds: float) -> tuple[float, float, float]:
    """CPU seconds of the three paths over ``seconds`` of one channel at ``rate``."""
    data = blocks(rate, seconds)
    interp = SignalInterpretation(1, scale_factor=247.6, sample_rate=rate, unit="Pa")
    live = LiveModule("bench", lambda e: None)
    every = max(1, round(0.2 * rate / BLOCK))
    plain = cpu(lambda raw: live.block(1, raw, 247.6, 0.0, "Pa", rate), data[::every])
    acoustics = LiveAcoustics("bench", lambda e: None)
    acoustics.meters[1] = SoundLevelMeter(rate, "Pa", octaves=False)
    meter = cpu(lambda raw: acoustics.analyse(1, raw, interp), data)
    full = LiveAcoustics("bench", lambda e: None)
    bands = cpu(lambda raw: full.analyse(1, raw, interp), data)
    return plain, meter, bands


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    print(
        f"{'rate':>8}  {'levels':>8}  {'meter':>8}  {'meter+bands':>12}   (CPU % of one core per channel)"
    )
    for rate in (16384, 32768, 65536, 131072):
        plain, meter, bands = measure(rate, args.seconds)
        scale = 100 / args.seconds
        print(f"{rate:8d}  {plain * scale:7.2f}%  {meter * scale:7.2f}%  {bands * scale:11.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
