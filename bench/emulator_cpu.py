"""Emulator cost: CPU seconds per emulated full-bandwidth module per second of stream.

Runs ``lanxi-dashboard emulate`` (eventlet, as in production) with N Type 3050 modules on
consecutive loopback addresses, sets every module up for 6 channels at 51.2 kHz bandwidth
(131072 S/s), lets them stream for a few seconds into a bare receiver in another process that
reads and discards, and reads the emulator process's CPU time from /proc around the
measurement. Printed beside it, from the same run:

* the data rate the emulator sustained (MB/s, samples/s) and whether any block was dropped;
* the receiver's CPU time for the same bytes;
* a baseline: the CPU time to synthesise and encode the same blocks naively, one numpy sine and
  one ``encode_signal_data`` per block, as an emulator without precomputed loops would.

Usage: python bench/emulator_cpu.py [--modules 8] [--seconds 5] [--address 127.0.1.61]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

from webapp.openapi.stream import encode_signal_data

REPO = Path(__file__).resolve().parents[1]
RATE = 131072
CHANNELS = 6
BLOCK = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")

RECEIVER = r"""
import json, selectors, socket, sys, time, resource
ports = json.loads(sys.argv[1])
sel = selectors.DefaultSelector()
for host, port in ports:
    s = socket.create_connection((host, port))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
buf = bytearray(1 << 20)
total = 0
open_ = len(ports)
deadline = time.monotonic() + float(sys.argv[2])
while open_ and time.monotonic() < deadline:
    for key, _ in sel.select(1.0):
        n = key.fileobj.recv_into(buf)
        if n == 0:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            open_ -= 1
        total += n
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"bytes": total, "cpu": ru.ru_utime + ru.ru_stime}), flush=True)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def naive_generation_cpu(blocks: int) -> float:
    """CPU to synthesise and encode ``blocks`` 4096-value blocks one by one."""
    t = np.arange(BLOCK) / RATE
    start = time.process_time()
    for k in range(blocks):
        x = 0.7 * np.sin(2 * np.pi * 160.0 * (t + k * BLOCK / RATE))
        x += np.random.default_rng(k).normal(0.0, 1e-4, BLOCK)
        raw = np.clip(np.rint(x * (1 << 23) / 11.88502), -(1 << 23), (1 << 23) - 1).astype(np.int32)
        encode_signal_data(k << 27, 1 + k % CHANNELS, raw)
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--address", default="127.0.1.61")
    args = ap.parse_args()
    n, seconds = args.modules, args.seconds

    emu = subprocess.Popen(
        [sys.executable, "-m", "webapp", "emulate", "--modules", str(n), "--address", args.address,
         "--port", "0", "--type", "3050", "--teds-seconds", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        urls = []
        for _ in range(n):
            line = emu.stdout.readline()  # type: ignore[union-attr]
            match = re.search(r"at (http://\S+/rest/rec)", line)
            if not match:
                raise SystemExit(f"emulator did not start: {line!r}")
            urls.append(match.group(1))
        ports = []
        for url in urls:
            requests.put(url + "/open", json={"performTransducerDetection": False}, timeout=10)
            requests.put(url + "/create", timeout=10)
            setup = requests.get(url + "/channels/input/default", timeout=10).json()
            for ch in setup["channels"]:
                ch["destinations"] = ["socket"]
            requests.put(url + "/channels/input", json=setup, timeout=10).raise_for_status()
            port = requests.get(url + "/destination/socket", timeout=10).json()["tcpPort"]
            ports.append((url.split("//")[1].split(":")[0], port))
        receiver = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, json.dumps(ports), str(seconds + 30)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert receiver.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        cpu0, wall0 = cpu_seconds(emu.pid), time.monotonic()
        for url in urls:
            requests.post(url + "/measurements", timeout=10).raise_for_status()
        time.sleep(seconds)
        for url in urls:
            requests.put(url + "/measurements/stop", timeout=10).raise_for_status()
        wall = time.monotonic() - wall0
        cpu = cpu_seconds(emu.pid) - cpu0
        result = json.loads(receiver.stdout.readline())  # type: ignore[union-attr]
        receiver.wait(10)
        dropped = 0
        for url in urls:
            info = requests.get(url.replace("/rest/rec", "/emulator/info"), timeout=10).json()
            dropped += sum(p["droppedBlocks"] for p in info["measurement"]["ports"])
            requests.put(url + "/finish", timeout=10)
            requests.put(url + "/close", timeout=10)
    finally:
        emu.send_signal(signal.SIGTERM)
        emu.wait(10)

    module_seconds = n * wall
    samples = n * CHANNELS * RATE * wall
    blocks_per_module_second = CHANNELS * RATE // BLOCK
    sample_blocks = blocks_per_module_second * 4  # 4 module-seconds of naive generation
    naive = naive_generation_cpu(sample_blocks) / 4
    print(f"{n} emulated 3050 modules x {CHANNELS} ch x {RATE} S/s for {wall:.1f} s (eventlet)")
    print(f"  data rate          {result['bytes'] / wall / 1e6:8.1f} MB/s   "
          f"{samples / wall / 1e6:6.1f} M samples/s   dropped blocks: {dropped}")  # fmt: skip
    print(f"  emulator CPU       {cpu / module_seconds:8.4f} s per module-second   "
          f"({cpu / wall * 100:.0f}% of one core for all {n})")  # fmt: skip
    print(f"  receiver CPU       {result['cpu'] / module_seconds:8.4f} s per module-second "
          "(bare recv_into, same bytes)")  # fmt: skip
    print(f"  baseline: naive    {naive:8.4f} s per module-second "
          "(numpy synthesis + encode per block)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
