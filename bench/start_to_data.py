"""Start-to-data: from launching a capture command to its first stream bytes on disk.

Runs, on loopback only and bounded in time, for ``--runs`` rounds (alternating, so both clients
see the same machine):

* a fresh emulator process per run (``lanxi-dashboard emulate``: 3 Type 3050 modules on port 80
  of ``--address`` and the next two addresses, with the timings below), so every run waits for
  PTP lock from scratch;
* **dashboard**: ``python -m webapp capture -t 1 ADDR ADDR ADDR`` in a fresh interpreter;
* **tutorial** (the same-run baseline): HBK's multi-module tutorial script
  (``--tutorial``, default ../shared/seed/streaming_multi_module.py), unmodified, the same
  addresses, ``-t 1``.

The time is taken from the launch of the process to the moment the first ``*.stream`` file
holds a byte (polled every 2 ms). The modules' own delays are the emulator's timings that lie
on the path of any client, one after the other: PTP lock (``--ptp-lock-seconds``), transducer
detection (``--teds-seconds``), settling after the setup (``--settle-seconds``) and the start
latency (0.05 s). **Overhead** is the time minus those delays: what the client itself costs,
Python start-up and imports included. The import line gives, for the same interpreter, the
time of ``import webapp.capture.cli`` beside ``python -c pass`` (median of ``--runs``).

    python bench/start_to_data.py [--address 127.0.0.61] [--port 80] [--runs 5]
                                  [--ptp-lock-seconds 1] [--teds-seconds 0.2]
                                  [--settle-seconds 0.3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_LATENCY_S = 0.05
"""The emulator's fixed delay from the measurement's start to its first sample."""
RUN_LIMIT_S = 60.0
"""A run that shows no data by then is stopped and reported as failed."""


def start_emulator(args: argparse.Namespace, folder: Path) -> subprocess.Popen[str]:
    log = open(folder / "emulator.log", "w")  # noqa: SIM115 - handed to the process
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "webapp", "emulate",
            "--modules", "3",
            "--address", args.address,
            "--port", str(args.port),
            "--ptp-lock-seconds", str(args.ptp_lock_seconds),
            "--teds-seconds", str(args.teds_seconds),
            "--settle-seconds", str(args.settle_seconds),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for _ in range(3):  # one line per module once it listens
        if not proc.stdout.readline():
            proc.kill()
            raise SystemExit(f"the emulator did not start; see {folder / 'emulator.log'}")
    return proc


def addresses(first: str, port: int) -> list[str]:
    base = IPv4Address(first)
    suffix = "" if port == 80 else f":{port}"
    return [f"{base + i}{suffix}" for i in range(3)]


def time_to_first_byte(command: list[str], cwd: Path, watch: Path) -> float | None:
    """Seconds from launching ``command`` to the first byte in a ``*.stream`` file under
    ``watch``; the command then runs to its end (bounded by :data:`RUN_LIMIT_S`)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    first: float | None = None
    while first is None and time.perf_counter() - t0 < RUN_LIMIT_S:
        if any(p.stat().st_size > 0 for p in watch.rglob("*.stream")):
            first = time.perf_counter() - t0
            break
        if proc.poll() is not None:
            break
        time.sleep(0.002)
    try:
        _, err = proc.communicate(timeout=max(1.0, RUN_LIMIT_S - (time.perf_counter() - t0)))
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if first is None or proc.returncode != 0:
        print(f"  run failed (exit {proc.returncode}): {err.strip()[-400:]}", file=sys.stderr)
        return None
    return first


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="127.0.0.61", help="module 1's address (loopback)")
    p.add_argument("--port", type=int, default=80, help="the modules' HTTP port (default 80)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--ptp-lock-seconds", type=float, default=1.0)
    p.add_argument("--teds-seconds", type=float, default=0.2)
    p.add_argument("--settle-seconds", type=float, default=0.3)
    p.add_argument(
        "--tutorial",
        type=Path,
        default=ROOT.parent / "shared" / "seed" / "streaming_multi_module.py",
        help="HBK's multi-module tutorial script (the baseline); skipped when absent",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if not IPv4Address(args.address).is_loopback:
        p.error("--address must be a loopback address (127.0.0.0/8)")
    if args.port != 80 and args.tutorial.exists():
        print("note: HBK's tutorial only talks to port 80; it is left out", file=sys.stderr)
    with_tutorial = args.tutorial.exists() and args.port == 80

    delays = args.ptp_lock_seconds + args.teds_seconds + args.settle_seconds + START_LATENCY_S
    addrs = addresses(args.address, args.port)
    results: dict[str, list[float]] = {"dashboard": [], "tutorial": []}
    with tempfile.TemporaryDirectory(prefix="start-to-data-") as tmp:
        for run in range(args.runs):
            clients = ["dashboard", "tutorial"] if with_tutorial else ["dashboard"]
            if run % 2:
                clients.reverse()
            for client in clients:
                folder = Path(tmp) / f"{client}-{run}"
                folder.mkdir()
                emulator = start_emulator(args, folder)
                try:
                    if client == "dashboard":
                        out = folder / "capture"
                        command = [
                            sys.executable, "-m", "webapp", "capture",
                            "-t", "1", "-n", "bench", "-o", str(out), *addrs,
                        ]  # fmt: skip
                        cwd = ROOT
                    else:
                        command = [sys.executable, str(args.tutorial), "-t", "1", *addrs]
                        cwd = folder
                    env_t = time_to_first_byte(command, cwd, folder)
                finally:
                    emulator.terminate()
                    emulator.wait(timeout=20)
                if env_t is not None:
                    results[client].append(env_t)
                    print(f"  run {run + 1} {client:9s} {env_t:6.3f} s", file=sys.stderr)

    pass_s = median_seconds([sys.executable, "-c", "pass"], args.runs)
    import_s = median_seconds([sys.executable, "-c", "import webapp.capture.cli"], args.runs)
    figures: dict[str, object] = {
        "modules_delays_s": round(delays, 3),
        "python_pass_s": round(pass_s, 3),
        "import_capture_cli_s": round(import_s, 3),
    }
    for client, times in results.items():
        if times:
            med = statistics.median(times)
            figures[client] = {
                "runs": len(times),
                "median_s": round(med, 3),
                "min_s": round(min(times), 3),
                "overhead_median_s": round(med - delays, 3),
            }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"modules' own delays on the path: {delays:.3f} s")
    print(f"{'client':10s} {'runs':>4s} {'median':>8s} {'min':>8s} {'overhead':>9s}")
    for client in ("dashboard", "tutorial"):
        f = figures.get(client)
        if isinstance(f, dict):
            print(
                f"{client:10s} {f['runs']:4d} {f['median_s']:7.3f}s {f['min_s']:7.3f}s"
                f" {f['overhead_median_s']:8.3f}s"
            )
    print(
        f"python -c pass {pass_s:.3f} s; import webapp.capture.cli {import_s:.3f} s "
        f"(+{import_s - pass_s:.3f} s)"
    )
    return 0 if results["dashboard"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
