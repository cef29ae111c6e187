"""Many dashboard viewers during a full-bandwidth capture: no data loss, status latency.

Runs, on loopback only and bounded in time:

* the emulator in its own process: 4 Type 3050 modules at full bandwidth (6 × 131072 S/s);
* the dashboard (``python -m webapp serve``) in its own process;
* first 1 viewer (the baseline), then 50 viewers, each a light Socket.IO client speaking the
  Engine.IO v4 / Socket.IO v5 protocol directly over websocket-client;
* one capture of ``--seconds`` per run.

It prints, per run, the status latency (wall-clock time from the orchestrator's
``recording-time`` event to its arrival at a viewer) p50/p99 over all viewers, the packets and
bytes the viewers received, the dashboard's CPU time, and checks the capture for data loss:
outcome completed; every stream file's size equals the bytes ``capture.json`` records; no
data-quality overrun flag in the timeline; the emulator dropped no block for a slow reader
(its ``/emulator/info``, polled while recording); and the integrity report of the analysis
package (every file read back: no gap, no overrun, no framing error, checksums) says ``ok``.

Each viewer behaves like a browser tab on the live page: it receives every topic and the
waveform of the master's first channel about five times a second.

    python bench/viewers.py [--viewers 50] [--seconds 8] [--modules 4]
                            [--address 127.0.3.41] [--port 0] [--dashboard-port 0]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import websocket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EMULATOR_BASE = "127.0.3.41"  # this area's loopback block; module i on .41 + i


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Viewer(threading.Thread):
    """A Socket.IO client with no library: handshake, ping/pong, events, binary attachments."""

    def __init__(self, url: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.url = url
        self.stop = stop
        self.latencies: list[float] = []
        self.packets = 0
        self.bytes = 0
        self.connected = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            ws = websocket.create_connection(
                self.url, timeout=2, skip_utf8_validation=True, enable_multithread=True
            )
        except Exception as exc:
            self.error = str(exc)
            return
        try:
            ws.recv()  # Engine.IO open packet "0{...}"
            ws.send("40")  # Socket.IO connect to "/"
            attachments = 0
            while not self.stop.is_set():
                try:
                    frame = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                self.packets += 1
                self.bytes += len(frame)
                if isinstance(frame, bytes):
                    attachments -= 1
                    continue
                if frame == "2":  # ping
                    ws.send("3")
                    continue
                if frame.startswith("40"):
                    self.connected.set()
                    continue
                if frame.startswith("45"):  # binary event: "45<n>-[...]", n attachments follow
                    attachments = int(frame[2 : frame.index("-")])
                    continue
                if frame.startswith('42["recording-time"'):
                    now = time.time()
                    payload = json.loads(frame[2:])[1]
                    if payload.get("t"):
                        self.latencies.append(now - payload["t"])
        finally:
            ws.close()


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds} s")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def check_capture(data_dir: Path, capture_id: str) -> list[str]:
    from webapp.analysis.integrity import build_report
    from webapp.analysis.reader import Capture

    folder = data_dir / "captures" / capture_id
    manifest = json.loads((folder / "capture.json").read_text())
    problems = []
    if manifest.get("outcome") != "completed":
        problems.append(f"outcome {manifest.get('outcome')}: {manifest.get('reason')}")
    for module in manifest.get("modules", []):
        for f in module.get("files", []):
            size = (folder / f["file"]).stat().st_size
            if size != f["bytes"]:
                problems.append(f"{f['file']}: {size} bytes on disk, {f['bytes']} recorded")
    for event in manifest.get("events", []):
        if event.get("kind") == "data-quality" and "overrun" in event.get("flags", []):
            problems.append(f"overrun on {event.get('module')} channel {event.get('channel')}")
    with Capture.open(folder) as cap:
        report = build_report(cap)
    if report["verdict"] != "ok":
        problems += [
            f"integrity {p['severity']}: {p.get('where', '')} {p['message']}"
            for p in report["problems"]
            if p["severity"] != "info"
        ]
    return problems


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DropWatch(threading.Thread):
    """Polls every module's /emulator/info while recording: blocks the emulator had to drop
    because the dashboard read too slowly (kept as the largest count seen per port)."""

    def __init__(self, modules: list[str], stop: threading.Event):
        super().__init__(daemon=True)
        self.modules = modules
        self.stop = stop
        self.dropped: dict[tuple[str, int], int] = {}
        self.sent: dict[tuple[str, int], int] = {}

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for address in self.modules:
                try:
                    info = requests.get(f"http://{address}/emulator/info", timeout=2).json()
                except (requests.RequestException, ValueError):
                    continue
                for port in (info.get("measurement") or {}).get("ports", []):
                    key = (address, port["port"])
                    self.dropped[key] = max(self.dropped.get(key, 0), port["droppedBlocks"])
                    self.sent[key] = max(self.sent.get(key, 0), port["sentBlocks"])


def run_once(
    base: str, data_dir: Path, viewers: int, seconds: float, modules: list[str], pid: int
) -> dict:
    stop = threading.Event()
    port = base.rsplit(":", 1)[1]
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    clients = [Viewer(url, stop) for _ in range(viewers)]
    for c in clients:
        c.start()
    for c in clients:
        c.connected.wait(10)
    failed = [c.error for c in clients if not c.connected.is_set()]
    watch_stop = threading.Event()
    drops = DropWatch(modules, watch_stop)
    drops.start()
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    r = requests.post(
        f"{base}/api/capture/start",
        json={"name": f"bench {viewers}", "duration_s": seconds, "modules": modules},
        timeout=60,
    )
    r.raise_for_status()
    capture_id = r.json()["capture_id"]
    deadline = time.monotonic() + seconds + 120
    while time.monotonic() < deadline:
        state = requests.get(f"{base}/api/state", timeout=5).json()
        last = state["capture"]["last"]
        if last and last.get("id") == capture_id and not state["control"]["busy"]:
            break
        time.sleep(0.5)
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    watch_stop.set()
    drops.join(5)
    stop.set()
    for c in clients:
        c.join(5)
    latencies = [x for c in clients for x in c.latencies]
    problems = check_capture(data_dir, capture_id)
    dropped = sum(drops.dropped.values())
    if dropped:
        problems.append(f"the emulator dropped {dropped} blocks for a slow reader")
    if not drops.sent:
        problems.append("no emulator measurement was seen while recording")
    return {
        "viewers": viewers,
        "connect_failures": len(failed),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "samples": len(latencies),
        "packets": sum(c.packets for c in clients),
        "mbytes": sum(c.bytes for c in clients) / 1e6,
        "cpu_pct": 100 * cpu / wall,
        "problems": problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--modules", type=int, default=4)
    parser.add_argument(
        "--address", default=EMULATOR_BASE, help="first emulated module's loopback address"
    )
    parser.add_argument("--port", type=int, default=0, help="modules' HTTP port (0: a free one)")
    parser.add_argument(
        "--dashboard-port", type=int, default=0, help="the dashboard's port (0: a free one)"
    )
    args = parser.parse_args()
    if not 1 <= args.viewers <= 200 or not 1 <= args.seconds <= 60:
        raise SystemExit("bounded: 1..200 viewers, 1..60 s")

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    emu_port = args.port or free_port(args.address)
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        try:
            emulator = subprocess.Popen(
                [sys.executable, "-m", "webapp", "emulate", "--modules", str(args.modules),
                 "--address", args.address, "--port", str(emu_port), "--ptp-lock-seconds", "1"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(emulator)
            first = args.address.rsplit(".", 1)
            modules = [f"{first[0]}.{int(first[1]) + i}:{emu_port}" for i in range(args.modules)]
            wait_http(f"http://{modules[0]}/rest/rec/module/info", emulator)
            port = args.dashboard_port or free_port()
            dashboard = subprocess.Popen(
                [sys.executable, "-m", "webapp", "serve", "--port", str(port),
                 "--data-dir", str(data_dir)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(dashboard)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/api/state", dashboard)

            print(
                f"{args.modules} emulated Type 3050 modules at full bandwidth (6 x 131072 S/s), "
                f"{args.seconds:g} s per capture; status latency = recording-time event to viewer"
            )
            print(
                f"{'viewers':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'samples':>8} "
                f"{'packets':>8} {'MB out':>7} {'CPU %':>6}  data loss"
            )
            for n in (1, args.viewers):
                res = run_once(base, data_dir, n, args.seconds, modules, dashboard.pid)
                verdict = "none" if not res["problems"] else "; ".join(res["problems"])
                if res["connect_failures"]:
                    verdict += f"; {res['connect_failures']} viewers failed to connect"
                print(
                    f"{res['viewers']:>8} {res['p50_ms']:>8.1f} {res['p99_ms']:>8.1f} "
                    f"{res['max_ms']:>8.1f} {res['samples']:>8} {res['packets']:>8} "
                    f"{res['mbytes']:>7.1f} {res['cpu_pct']:>6.0f}  {verdict}",
                    flush=True,
                )
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
