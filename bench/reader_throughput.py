"""Capture reader throughput beside a plain read of the same files, and its peak memory.

Synthesises a multi-module capture (default 4 modules × 4 channels at 131072 S/s, 256 MB of
stream files) into a temporary folder, then, in the same run:

* plain read: every file read front to back into a reused 4 MiB buffer, the files one after
  another and also two at a time (as the reader's index pass reads them); the faster of the two
  is the I/O limit the reader is compared with;
* reader: every channel of every module read as calibrated float32 arrays through
  ``iter_windows`` (what the exports do), in a child process whose peak resident memory
  (ru_maxrss) and peak Python/numpy heap (tracemalloc) are reported. Both ways of opening:
  ``Capture.open(folder, background=True)`` (each window decoded as soon as every file is
  indexed past it: one pass over the disk; the ratio is this one's) and ``Capture.open(folder)``
  (index every message, then decode). The latter is also timed with the pages dropped again
  between the index pass and the decoding (the clock stopped meanwhile), which is what it costs
  on a capture larger than memory: the disk read twice.

Everything is measured cold (the files' pages dropped from the kernel's cache with
``posix_fadvise(DONTNEED)`` first: read from disk) and warm (pages cached: the plain read is
then a memory copy). Plain reads and reader alternate in every repetition, each after its own
eviction; the table shows the best of the repetitions and the spread (slowest–fastest MB/s)
beside it, since the disk is shared. The temporary folder is removed at the end.
Usage: python bench/reader_throughput.py [--mb 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.analysis.reader import SCAN_WORKERS, Capture  # noqa: E402
from webapp.analysis.synthetic import (  # noqa: E402
    SynthChannel,
    SynthModule,
    calibrator_channel,
    write_capture,
)

RATE = 131072
BYTES_PER_SECOND_PER_CHANNEL = RATE * 3 * (12324 / 12288)


def synthesise(folder: Path, mb: float, modules: int, channels: int) -> None:
    seconds = mb * 1e6 / (BYTES_PER_SECOND_PER_CHANNEL * modules * channels)
    mods = []
    for m in range(1, modules + 1):
        chans = [calibrator_channel(1)] + [
            SynthChannel(c, "tone", frequency=100 * c + m, amplitude=1.0)
            for c in range(2, channels + 1)
        ]
        mods.append(SynthModule(m, chans))
    write_capture(folder, mods, seconds=seconds, sample_rate=RATE, name="bench")


def files_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.stream"))


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the kernel's cache (they are clean: written and synced)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_file(path: Path) -> None:
    buf = bytearray(1 << 22)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def plain_read(paths: list[Path], workers: int = 1) -> float:
    """Seconds to read every file (``workers`` files at a time)."""
    start = time.perf_counter()
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(read_file, paths))
    else:
        for p in paths:
            read_file(p)
    return time.perf_counter() - start


MODES = {
    "background": "reader, background index",
    "index": "reader, whole index first",
    "index-evicted": "  same, pages gone before decoding",
}


def read_capture(folder: Path, mode: str) -> tuple[float, int]:
    start = time.perf_counter()
    samples = 0
    with Capture.open(folder, background=mode == "background") as cap:
        if mode == "index-evicted":  # the clock does not run while the pages are dropped
            paused = time.perf_counter()
            evict(files_of(folder))
            start += time.perf_counter() - paused
        for window in cap.iter_windows(chunk=1 << 18, dtype=np.float32, reuse=True):
            for _i0, values in window.parts.values():
                samples += len(values)
    return time.perf_counter() - start, samples


def child(folder: Path, cold: bool, heap: bool, mode: str) -> None:
    if cold:
        evict(files_of(folder))
    if heap:
        tracemalloc.start()
    seconds, samples = read_capture(folder, mode)
    peak_heap = tracemalloc.get_traced_memory()[1] if heap else None
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps({"seconds": seconds, "samples": samples, "rss_kib": rss_kib, "heap": peak_heap})
    )


def run_child(folder: Path, cold: bool, heap: bool = False, mode: str = "background") -> dict:
    cmd = [sys.executable, __file__, "--child", str(folder), "--mode", mode]
    cmd += ["--cold"] if cold else []
    cmd += ["--heap"] if heap else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=256.0, help="size of the capture (>= 200)")
    parser.add_argument("--modules", type=int, default=4)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each figure")
    parser.add_argument("--dir", help="parent folder for the temporary capture")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child), args.cold, args.heap, args.mode)
        return

    tmp = Path(tempfile.mkdtemp(prefix="lanxi-bench-", dir=args.dir))
    try:
        t = time.perf_counter()
        synthesise(tmp, args.mb, args.modules, args.channels)
        paths = files_of(tmp)
        total = sum(p.stat().st_size for p in paths)
        mb = total / 1e6
        print(
            f"capture: {mb:.1f} MB in {len(paths)} files ({args.modules} modules × "
            f"{args.channels} channels at {RATE} S/s), synthesised in {time.perf_counter() - t:.1f} s"
        )
        plain_label = f"plain, {SCAN_WORKERS} at once"
        times: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.repeat):
            for cold in (True, False):
                for label, workers in (("plain, serial", 1), (plain_label, SCAN_WORKERS)):
                    if cold:
                        evict(paths)
                    else:
                        plain_read(paths)  # make sure every page is cached
                    times.setdefault((label, cold), []).append(plain_read(paths, workers))
                for mode, label in MODES.items():
                    if not cold and mode == "index-evicted":
                        continue
                    if cold:
                        evict(paths)  # again in the child, just before its clock starts
                    else:
                        plain_read(paths)
                    seconds = run_child(tmp, cold, mode=mode)["seconds"]
                    times.setdefault((label, cold), []).append(seconds)
        mem = run_child(tmp, cold=False, heap=True)
        rss = run_child(tmp, cold=True)

        def rate(key: tuple[str, bool]) -> str:
            t = times.get(key)
            return f"{mb / min(t):.0f} ({mb / max(t):.0f}–{mb / min(t):.0f})" if t else "–"

        print(f"MB/s, best of {args.repeat} (spread):\n{'':36} {'cold':>20} {'warm':>22}")
        for label in ("plain, serial", plain_label, *MODES.values()):
            print(f"{label:36} {rate((label, True)):>20} {rate((label, False)):>22}")
        ratios = []
        for cold in (True, False):
            best = min(min(times[("plain, serial", cold)]), min(times[(plain_label, cold)]))
            ratios.append(f"{best / min(times[(MODES['background'], cold)]):.2f}x")
        print(f"{'reader (background) / best plain':36} {ratios[0]:>20} {ratios[1]:>22}")
        samples = mem["samples"]
        print(
            f"reader output: {samples / 1e6:.1f} M calibrated float32 samples "
            f"({samples * 4 / 1e6:.0f} MB) per pass"
        )
        print(
            f"peak memory of the reader process: heap {mem['heap'] / 1e6:.1f} MB (tracemalloc), "
            f"resident {rss['rss_kib'] / 1024:.1f} MiB (ru_maxrss, cold pass; includes the "
            "interpreter and numpy)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
