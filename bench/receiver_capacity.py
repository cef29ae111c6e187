"""How many full-bandwidth modules the capture receivers take, beside a bare receiver.

Runs, on loopback only and bounded in time:

* the emulator in its own process: as many Type 3050 modules as the largest step, at full bandwidth
  (6 signals × 131072 S/s, about 2.37 MB/s each), every module on a free port of 127.0.2.1;
* in this process, under eventlet as in production, for a rising number N of modules, two
  recordings of ``--seconds`` each on the same armed modules (the same emulated load):

  - **bare**: one green thread per stream socket, ``recv_into`` and ``os.write``, nothing else;
  - **capture**: the orchestrator's own recording (:class:`StreamReceiver`: raw bytes to file,
    running SHA-256, message framing, live levels and waveforms for every channel at ~5 Hz,
    data-quality tracking, stream statistics, fsync once a second);
  - **monitor**: the orchestrator monitoring the same modules (the same live view, a ring of
    each stream's last 2 s instead of a file, the message index) with a level detector on one
    channel of every module (the trigger's code, every block of that channel decoded and
    compared; a level never reached), and a window recorded by hand across the middle half of
    the run (so the window writers' cost is in the figure too). Its line also gives the ring
    buffers' memory at the end (their bytes held, per module).

A run passes when the emulator dropped no block (no Overrun) and the receivers had no backlog:
at the end of the recording every module's bytes are within ``--max-lag`` seconds of what the
module produced since its first byte. A failed step is run once more (the machine is shared;
a load spike is not a limit). The largest passing N of each receiver is reported with CPU use
of both processes. A single emulator process tops out at about 120 modules on one core.

With ``--workers 1,2`` the capture receivers are measured once per number of receiver worker
processes (``capture/1``: in the engine, as small rigs run; ``capture/2``: two worker processes,
:mod:`webapp.capture.workers`), each beside the bare receiver of the same step.

    python bench/receiver_capacity.py [--seconds 4] [--steps 10,25,50,75,90,105,120]
                                      [--receivers bare,capture,monitor] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webapp import cli as entry  # noqa: E402

entry._monkey_patch()  # production runs the receivers on eventlet; so does this benchmark

import requests  # noqa: E402

from webapp import runtime  # noqa: E402
from webapp.capture.events import Event, EventBus  # noqa: E402
from webapp.capture.orchestrator import Orchestrator  # noqa: E402
from webapp.capture.phases import Order, ordered  # noqa: E402
from webapp.capture.session import parallel  # noqa: E402
from webapp.capture.settings import CaptureSettings  # noqa: E402

HOST = "127.0.2.1"
RATE_PER_MODULE = 6 * (28 + 8 + 3 * 4096) * 131072 / 4096
"""Bytes per second a full-bandwidth 3050 sends: 6 SignalData messages per 4096-sample block."""
CHUNK = 256 * 1024


@dataclass
class Flow:
    """What one module delivered to one receiver."""

    bytes: int = 0
    first: float | None = None
    end: threading.Event = field(default_factory=threading.Event)

    def lag_s(self, now: float) -> float:
        """How far the received bytes trail what the module produced since its first byte."""
        if self.first is None:
            return 0.0
        return (now - self.first) - self.bytes / RATE_PER_MODULE


@dataclass
class Result:
    receiver: str
    modules: int
    seconds: float
    bytes: int
    dropped_blocks: int
    overrun_flags: int
    lag_s: float
    drain_s: float
    cpu_self: float
    cpu_emulator: float
    error: str = ""
    hub_p99_ms: float = 0.0
    hub_max_ms: float = 0.0
    ring_bytes: int = 0

    def ok(self, max_lag: float) -> bool:
        return (
            not self.error
            and self.dropped_blocks == 0
            and self.overrun_flags == 0
            and self.lag_s <= max_lag
        )

    def row(self, max_lag: float) -> str:
        verdict = "ok" if self.ok(max_lag) else f"FAIL {self.error}".strip()
        per_module_s = self.bytes / self.modules / RATE_PER_MODULE if self.modules else 0.0
        return (
            f"{self.receiver:10} N={self.modules:4d}  {self.bytes / 1e6:7.1f} MB "
            f"({per_module_s:4.1f} s/module)  "
            f"lag {self.lag_s:6.3f} s  "
            f"drain {self.drain_s:5.2f} s  dropped {self.dropped_blocks:5d}  overrun flags "
            f"{self.overrun_flags:3d}  hub lag p99 {self.hub_p99_ms:5.1f} ms "
            f"max {self.hub_max_ms:6.1f} ms  CPU this {self.cpu_self * 100:5.1f} %  emulator "
            f"{self.cpu_emulator * 100:5.1f} %  load {os.getloadavg()[0]:4.1f}  {verdict}"
            + (
                f"  rings {self.ring_bytes / 1e6:.1f} MB ({self.ring_bytes / self.modules / 1e6:.2f}"
                " MB/module)"
                if self.ring_bytes
                else ""
            )
        )


# --- the emulator in its own process ------------------------------------------------------


class Emulator:
    def __init__(self, modules: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "webapp",
            "emulate",
            "--modules",
            str(modules),
            "--address",
            HOST,
            "--port",
            "0",
            "--type",
            "3050",
            "--ptp-lock-seconds",
            "0.5",
            "--teds-seconds",
            "0.1",
            "--settle-seconds",
            "0.1",
        ]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env
        )
        self.addresses: list[str] = []
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while len(self.addresses) < modules:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator did not start")
            match = re.search(r"at http://([^/]+)/rest/rec", line)
            if match:
                self.addresses.append(match.group(1))

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def dropped_blocks(self, addresses: list[str]) -> int:
        total = 0
        for address in addresses:
            info = requests.get(f"http://{address}/emulator/info", timeout=10).json()
            measurement = info.get("measurement") or {}
            total += sum(p.get("droppedBlocks", 0) for p in measurement.get("ports", []))
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- the two receivers --------------------------------------------------------------------


def bare_receiver(sock, path: Path, flow: Flow) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        while True:
            try:
                n = sock.recv_into(buf)
            except OSError:
                break
            if n == 0:
                break
            if flow.first is None:
                flow.first = time.monotonic()
            done = 0
            while done < n:
                done += os.write(fd, view[done:n])
            flow.bytes += n
            if n == CHUNK:
                runtime.sleep(0)
    finally:
        os.close(fd)
        flow.end.set()


def record_bare(
    orch: Orchestrator, seconds: float, folder: Path
) -> tuple[list[Flow], float, float]:
    """A recording on the orchestrator's armed modules, received by bare receivers."""
    session = orch._session
    assert session is not None and session.armed
    flows, socks = [], []
    for m in session.modules:
        sock = m.client.connect_stream(m.ports[0])
        flow = Flow()
        flows.append(flow)
        socks.append(sock)
        runtime.spawn(bare_receiver, sock, folder / f"bare.{m.number}.stream", flow)
    # the same requests in the same way as the orchestrator: slaves concurrently, master last
    for batch in ordered(session.modules, Order.MASTER_LAST):
        parallel(batch, lambda m: m.client.start_measurement())
    time.sleep(seconds)
    now = time.monotonic()
    lag = max(f.lag_s(now) for f in flows)
    for batch in ordered(session.modules, Order.MASTER_LAST):
        parallel(batch, lambda m: m.client.stop_measurement())
    drain = _drain(flows)
    for sock in socks:
        sock.close()
    return flows, lag, drain


def _drain(flows: list[Flow]) -> float:
    """Seconds until every stream has been quiet for 0.3 s (or closed) after the stop."""
    started = time.monotonic()
    last = [f.bytes for f in flows]
    quiet_since = time.monotonic()
    while time.monotonic() - started < 30:
        time.sleep(0.05)
        now_bytes = [f.bytes for f in flows]
        if now_bytes != last:
            last, quiet_since = now_bytes, time.monotonic()
        elif time.monotonic() - quiet_since >= 0.3 or all(f.end.is_set() for f in flows):
            break
    return max(0.0, quiet_since - started)


class CaptureProbe:
    """Watches the orchestrator's recording: first byte per module, overrun flags."""

    def __init__(self, bus: EventBus) -> None:
        self.overrun_flags = 0
        bus.subscribe(self.on_event)

    def on_event(self, e: Event) -> None:
        if e.kind == "data-quality" and "overrun" in e.flags:  # type: ignore[attr-defined]
            self.overrun_flags += 1


class LagTracker:
    """How far the worst module's received bytes trail what it produced since its first byte
    (seconds); call it often, it notes each module's first byte when it sees it."""

    def __init__(self, session) -> None:
        self.session = session
        self.firsts: dict[int, float] = {}

    def __call__(self) -> float:
        now = time.monotonic()
        worst = 0.0
        for m in self.session.modules:
            if m.live is None:
                continue
            if m.number not in self.firsts and m.live.bytes_received:
                self.firsts[m.number] = now
            first = self.firsts.get(m.number)
            if first is not None:
                worst = max(worst, (now - first) - m.live.bytes_received / RATE_PER_MODULE)
        return worst


def record_capture(
    orch: Orchestrator, probe: CaptureProbe, seconds: float
) -> tuple[int, float, float, str]:
    session = orch._session
    assert session is not None
    probe.overrun_flags = 0
    lag_now = LagTracker(session)
    lag = 0.0
    stop_seen = threading.Event()

    def on_event(e: Event) -> None:
        nonlocal lag
        if e.kind == "phase" and e.phase == "stopping":  # type: ignore[attr-defined]
            lag = lag_now()
            stop_seen.set()

    unsubscribe = orch.bus.subscribe(on_event)
    orch.start()  # the armed settings: same modules, ``seconds`` long
    # first-byte times are sampled often, as the bare receivers take them on arrival
    while orch.busy and not stop_seen.is_set():
        lag_now()
        time.sleep(0.01)
    stopped = time.monotonic()
    orch.wait(120)
    unsubscribe()
    total = sum(m.live.bytes_received for m in session.modules if m.live)
    error = "" if orch.last_outcome == "completed" else f"{orch.last_outcome}: {orch.last_error}"
    return total, lag, time.monotonic() - stopped, error


def record_monitor(
    orch: Orchestrator, probe: CaptureProbe, seconds: float
) -> tuple[int, float, float, str, int]:
    """Monitor for ``seconds`` with a level detector per module and a window by hand."""
    from webapp.capture.trigger import LevelDetector, RecordPlan, TriggerSpec

    session = orch._session
    assert session is not None
    probe.overrun_flags = 0
    orch.monitor()
    deadline = time.monotonic() + 60
    while orch.phase != "monitoring" and time.monotonic() < deadline:
        time.sleep(0.01)
    for m in session.modules:
        r = m.receivers[0]
        sid = 2
        state: dict[str, LevelDetector] = {}

        def watched(signal: int, t: int, raw, _r=r, _m=m, _state=state) -> None:
            det = _state.get("d")
            if det is None:
                interp = _r.tap.interpretations.get(signal)
                if interp is None or not _r.tap.tps(signal):
                    return
                spec = TriggerSpec(_m.number, 2, "rising", 1e12)  # never reached
                det = _state["d"] = LevelDetector(
                    spec, interp.scale_factor, interp.offset, _r.tap.tps(signal)
                )
            det.feed(t, raw)

        r.watch(sid, "bench", watched)
    lag_now = LagTracker(session)

    started = time.monotonic()
    window_asked = False
    while time.monotonic() - started < seconds:
        lag_now()
        if not window_asked and time.monotonic() - started >= seconds / 4:
            window_asked = True
            orch.record_window(RecordPlan(name="bench-window", duration_s=seconds / 2))
        time.sleep(0.01)
    lag = lag_now()
    rings = sum(r.ring.bytes_held for m in session.modules for r in m.receivers if r.ring)
    total = sum(m.live.bytes_received for m in session.modules if m.live)
    stopped = time.monotonic()
    orch.stop()
    orch.wait(120)
    error = (
        "" if orch.last_outcome == "completed" else f"window {orch.last_outcome}: {orch.last_error}"
    )
    return total, lag, time.monotonic() - stopped, error, rings


# --- one step of the ladder ---------------------------------------------------------------


class HubLag:
    """How late a green thread that asks to sleep 5 ms wakes up while the receivers run.

    Every greenlet (stream receivers, long polls, Socket.IO pushes) shares one hub, so a long
    CPU-bound slice anywhere shows up here as lateness; this is the responsiveness the
    dashboard's viewers and status polls get under that load."""

    PERIOD = 0.005

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = runtime.spawn(self._run, name="hub-lag")

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.late_ms) < 200_000:
            asked = time.monotonic()
            time.sleep(self.PERIOD)
            self.late_ms.append((time.monotonic() - asked - self.PERIOD) * 1000)

    def stop(self) -> tuple[float, float]:
        """(p99, max) lateness in milliseconds."""
        self._stop.set()
        self._thread.join(5)
        if not self.late_ms:
            return 0.0, 0.0
        ordered_ms = sorted(self.late_ms)
        return ordered_ms[int(0.99 * (len(ordered_ms) - 1))], ordered_ms[-1]


def _own_cpu() -> float:
    """CPU seconds of this process and of its ended children (the receiver workers; the
    emulator is counted apart and ends last)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _measure(
    name: str, n: int, seconds: float, emulator: Emulator, addresses: list[str], run
) -> Result:
    cpu0, emu0, t0 = _own_cpu(), emulator.cpu_seconds(), time.monotonic()
    hub = HubLag()
    rings = 0
    try:
        total, lag, drain, flags, error, *extra = run()
        rings = extra[0] if extra else 0
    except Exception as exc:  # an overloaded emulator may stop answering: that is a result too
        total, lag, drain, flags, error = 0, 0.0, 0.0, 0, f"{type(exc).__name__}: {exc}"
    hub_p99, hub_max = hub.stop()
    wall = time.monotonic() - t0
    try:
        dropped = emulator.dropped_blocks(addresses)
    except Exception as exc:
        dropped, error = 0, error or f"emulator info: {exc}"
    return Result(
        name,
        n,
        seconds,
        total,
        dropped,
        flags,
        lag,
        drain,
        (_own_cpu() - cpu0) / wall,
        (emulator.cpu_seconds() - emu0) / wall,
        error,
        hub_p99,
        hub_max,
        rings,
    )


def step(
    emulator: Emulator, n: int, seconds: float, work: Path, receivers: list[str]
) -> list[Result]:
    """Arm N modules, record with each receiver in ``receivers`` on them, disarm."""
    addresses = emulator.addresses[:n]
    bus = EventBus()
    probe = CaptureProbe(bus)
    orch = Orchestrator(bus, work, live_levels=True, waveforms="all")
    settings = CaptureSettings(
        modules=addresses, duration_s=seconds, ptp_timeout_s=60, state_timeout_s=60
    )
    try:
        orch.arm(settings)
    except Exception as exc:
        return [Result(r, n, seconds, 0, 0, 0, 0, 0, 0, 0, f"arming: {exc}") for r in receivers]
    orch.wait(180)
    if not orch.armed:
        error = f"arming failed: {orch.last_error}"
        return [Result(r, n, seconds, 0, 0, 0, 0, 0, 0, 0, error) for r in receivers]
    results = []

    def bare() -> tuple[int, float, float, int, str]:
        folder = work / f"bare-{n}"
        folder.mkdir(exist_ok=True)
        try:
            flows, lag, drain = record_bare(orch, seconds, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return sum(f.bytes for f in flows), lag, drain, 0, ""

    def capture() -> tuple[int, float, float, int, str]:
        total, lag, drain, error = record_capture(orch, probe, seconds)
        folder = orch.last_folder
        if folder is not None and folder.is_dir():
            meta = json.loads((folder / "capture.json").read_text())
            for m in meta["modules"]:
                for f in m["files"]:
                    size = (folder / f["file"]).stat().st_size
                    if size != f["bytes"]:
                        error = f"{f['file']}: {size} bytes on disk, {f['bytes']} recorded"
            shutil.rmtree(folder, ignore_errors=True)
        return total, lag, drain, probe.overrun_flags, error

    def monitor() -> tuple[int, float, float, int, str, int]:
        total, lag, drain, error, rings = record_monitor(orch, probe, seconds)
        folder = orch.last_folder
        if folder is not None and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        return total, lag, drain, probe.overrun_flags, error, rings

    runs = {"bare": bare, "capture": capture, "monitor": monitor}
    try:
        for name in receivers:
            if not orch.armed:
                results.append(Result(name, n, seconds, 0, 0, 0, 0, 0, 0, 0, "not armed"))
                continue
            kind, _, workers = name.partition("/")
            orch.receiver_workers = int(workers) if workers else 1
            run = runs[kind]
            results.append(_measure(name, n, seconds, emulator, addresses, run))
    finally:
        orch.disarm()
        orch.wait(120)
        if any(r.error for r in results):
            # A stop that failed under load leaves modules recording: back to Idle for the
            # next step (one overloaded step must not fail every later one).
            def idle(address: str) -> None:
                try:
                    orch.return_to_idle(address)
                except Exception as exc:
                    print(f"  {address}: not returned to Idle: {exc}", flush=True)

            parallel(addresses, idle)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="length of each recording")
    p.add_argument("--steps", default="10,25,50,75,90,105,120", help="numbers of modules")
    p.add_argument("--max-lag", type=float, default=0.5, help="seconds of backlog allowed")
    p.add_argument("--time-limit", type=float, default=300.0, help="stop climbing after this")
    p.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--receivers", default="bare,capture,monitor", help="which receivers to compare")
    p.add_argument(
        "--workers",
        default="",
        help="receiver worker processes to measure the capture receivers with, e.g. 1,2 "
        "(1: in this process)",
    )
    args = p.parse_args()
    steps = sorted(int(s) for s in args.steps.split(","))
    work = Path(args.dir or tempfile.mkdtemp(prefix="receiver-capacity-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"cores: {os.cpu_count()}, {args.seconds:g} s per recording, backlog allowed "
        f"{args.max_lag:g} s; a failed step is run once more to tell a load spike on this "
        "shared machine from a limit",
        flush=True,
    )
    print(f"starting {max(steps)} emulated Type 3050 modules ...", flush=True)
    started = time.monotonic()
    emulator = Emulator(max(steps))
    kinds = [k.strip() for k in args.receivers.split(",") if k.strip()]
    if args.workers and "capture" in kinds:
        at = kinds.index("capture")
        counts = [f"capture/{int(w)}" for w in args.workers.split(",") if w.strip()]
        kinds[at : at + 1] = counts
    best = dict.fromkeys(kinds, 0)
    climbing = list(kinds)
    try:
        for n in steps:
            if time.monotonic() - started > args.time_limit:
                print(f"time limit reached before N={n}")
                break
            results = step(emulator, n, args.seconds, work, climbing)
            for r in results:
                print(r.row(args.max_lag), flush=True)
            again = [r.receiver for r in results if not r.ok(args.max_lag)]
            if again:
                for r in step(emulator, n, args.seconds, work, again):
                    print(r.row(args.max_lag) + "  (second try)", flush=True)
                    if not r.ok(args.max_lag):
                        climbing.remove(r.receiver)
            for name in kinds:
                if name in climbing and any(r.receiver == name for r in results):
                    best[name] = n
            if not climbing:
                break
    finally:
        emulator.stop()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    limit = " (the largest N tried)" if climbing else ""
    names = {
        **{
            k: f"capture receivers, {k.split('/')[1]} worker process(es) (levels and waveforms on)"
            if k != "capture/1"
            else "capture receivers in this process (levels and waveforms on)"
            for k in kinds
            if k.startswith("capture/")
        },
        "bare": "bare receiver",
        "capture": "capture receivers (levels and waveforms of every channel on)",
        "monitor": "monitoring (ring, a level detector per module, one window)",
    }
    print(
        "largest N without overrun or backlog: "
        + ", ".join(f"{names[k]} {best[k]}{limit if k in climbing else ''}" for k in kinds)
    )
    if best.get("bare"):
        for k in kinds:
            if k != "bare":
                print(f"{k} / bare: {best[k] / best['bare']:.2f}")
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
