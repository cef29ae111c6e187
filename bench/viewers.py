"""Many dashboard viewers during a full-bandwidth capture: no data loss, status latency.

Runs, on loopback only and bounded in time:

* the emulator in its own process: 4 Type 3050 modules at full bandwidth (6 × 131072 S/s);
* the dashboard (``python -m webapp serve``) in its own process;
* first 1 viewer (the baseline), then 50 viewers, each a light Socket.IO client speaking the
  Engine.IO v4 / Socket.IO v5 protocol directly over websocket-client;
* one capture of ``--seconds`` per run.

It prints, per run, the status latency (wall-clock time from the orchestrator's
``recording-time`` event to its arrival at a viewer) p50/p99 over all viewers, the packets and
bytes the viewers received, and checks the capture: outcome completed, every stream file's size
equals the bytes ``capture.json`` records, no data-quality overrun flag in the timeline.

    python bench/viewers.py [--viewers 50] [--seconds 8] [--modules 4]
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
EMULATOR_BASE = "127.0.3.41"


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
    manifest = json.loads((data_dir / "captures" / capture_id / "capture.json").read_text())
    problems = []
    if manifest.get("outcome") != "completed":
        problems.append(f"outcome {manifest.get('outcome')}: {manifest.get('reason')}")
    for module in manifest.get("modules", []):
        for f in module.get("files", []):
            size = (data_dir / "captures" / capture_id / f["file"]).stat().st_size
            if size != f["bytes"]:
                problems.append(f"{f['file']}: {size} bytes on disk, {f['bytes']} recorded")
    for event in manifest.get("events", []):
        if event.get("kind") == "data-quality" and any(
            "overrun" in str(flag).lower() for flag in event.get("flags", [])
        ):
            problems.append(f"overrun on {event.get('module')} channel {event.get('channel')}")
    return problems


def run_once(base: str, data_dir: Path, viewers: int, seconds: float, modules: list[str]) -> dict:
    stop = threading.Event()
    port = base.rsplit(":", 1)[1]
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    clients = [Viewer(url, stop) for _ in range(viewers)]
    for c in clients:
        c.start()
    for c in clients:
        c.connected.wait(10)
    failed = [c.error for c in clients if not c.connected.is_set()]
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
    stop.set()
    for c in clients:
        c.join(5)
    latencies = [x for c in clients for x in c.latencies]
    return {
        "viewers": viewers,
        "connect_failures": len(failed),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "samples": len(latencies),
        "packets": sum(c.packets for c in clients),
        "mbytes": sum(c.bytes for c in clients) / 1e6,
        "problems": check_capture(data_dir, capture_id),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--modules", type=int, default=4)
    args = parser.parse_args()
    if not 1 <= args.viewers <= 200 or not 1 <= args.seconds <= 60:
        raise SystemExit("bounded: 1..200 viewers, 1..60 s")

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    emu_port = free_port(EMULATOR_BASE)
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        try:
            emulator = subprocess.Popen(
                [sys.executable, "-m", "webapp", "emulate", "--modules", str(args.modules),
                 "--address", EMULATOR_BASE, "--port", str(emu_port), "--ptp-lock-seconds", "1"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(emulator)
            first = EMULATOR_BASE.rsplit(".", 1)
            modules = [f"{first[0]}.{int(first[1]) + i}:{emu_port}" for i in range(args.modules)]
            wait_http(f"http://{modules[0]}/rest/rec/module/info", emulator)
            port = free_port()
            dashboard = subprocess.Popen(
                [sys.executable, "-m", "webapp", "serve", "--port", str(port),
                 "--data-dir", str(data_dir)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(dashboard)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/api/state", dashboard)

            print(
                f"{args.modules} emulated modules at full bandwidth, {args.seconds:.0f} s per capture"
            )
            print(
                f"{'viewers':>8} {'p50 ms':>8} {'p99 ms':>8} {'samples':>8} {'packets':>8} {'MB':>7}  files"
            )
            for n in (1, args.viewers):
                res = run_once(base, data_dir, n, args.seconds, modules)
                verdict = "ok" if not res["problems"] else "; ".join(res["problems"])
                if res["connect_failures"]:
                    verdict += f"; {res['connect_failures']} viewers failed to connect"
                print(
                    f"{res['viewers']:>8} {res['p50_ms']:>8.1f} {res['p99_ms']:>8.1f} "
                    f"{res['samples']:>8} {res['packets']:>8} {res['mbytes']:>7.1f}  {verdict}"
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
