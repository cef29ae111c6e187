"""Dashboard viewers during a full-bandwidth capture, in one process or scaled out over Redis.

Runs, on loopback only and bounded in time:

* the emulator in its own process: 4 Type 3050 modules at full bandwidth (6 × 131072 S/s);
* three configurations of the dashboard, one after the other (``--configs``):

  - ``embedded``: one process, ``python -m webapp serve`` (the default deployment);
  - ``redis-1``: ``python -m webapp engine --message-queue URL`` (the capture engine apart)
    and one ``serve --message-queue URL`` web process;
  - ``redis-2``: the same engine and two web processes, the viewers split evenly between
    them (each viewer connects straight to its process's port: no proxy);

  with Debian's ``/usr/bin/redis-server`` started on a free loopback port without persistence
  (killed at the end), or the Redis given by ``--redis-url``;
* for each configuration, a run per count of ``--viewers`` (e.g. ``1,200,1000``), each with
  its own capture of ``--seconds``. Each viewer is a light Socket.IO client speaking the
  Engine.IO v4 / Socket.IO v5 protocol directly over websocket-client, one thread each; the
  viewers are spread over client processes (``--viewers-per-client-process``, 250 by default)
  so that one interpreter's lock does not hold a thousand of them back. They connect at
  200 a second in all, each retrying for up to a minute as a browser would.

With ``--baseline TREE`` (a checkout of an earlier commit, e.g. ``git worktree add /tmp/base
HEAD~3``) every configuration also runs from that tree, just before this one's, on the same
emulator and the same machine load: its rows are named ``CONFIG@base``.

It prints one table, a row per configuration and viewer count: the status latency (from the
wall-clock time the engine stamps on its ``recording-time`` event to the wall-clock time a
viewer receives it; every process runs on this host, so one clock) p50/p99/max over all viewers;
packets and bytes received per viewer; the CPU time while recording (from the first
``/api/state`` poll, every 0.25 s, that shows the phase ``recording`` to the first that does
not; ``--json`` also gives the whole capture's ``capture_wall_s``), in seconds and percent of
one core, of the web processes (summed), of the engine (apart only), of the client processes (so
a figure limited by the clients shows as such) and of the emulator; how much of that time some
task of the machine waited for a CPU (``/proc/pressure/cpu``) and the load average (on a shared
machine, the latencies are only as good as these); and the capture-data checks, which must all
hold: outcome completed; every stream file's size equals the bytes ``capture.json`` records; no
data-quality overrun flag in the timeline; the emulator dropped no block for a slow reader (its
``/emulator/info``, polled while recording); and the integrity report of the analysis package
(every file read back: no gap, no overrun, no framing error, checksums) says ``ok``. The exit
status is 1 when any check failed.

Each viewer behaves like a browser tab on the live page: it receives every topic and the
waveform of the master's first channel about five times a second.

    python bench/viewers.py [--viewers 1,200,1000] [--configs embedded,redis-1,redis-2]
                            [--seconds 8] [--modules 4] [--address 127.0.3.41] [--port 0]
                            [--host 127.0.0.1] [--dashboard-ports 0,0] [--redis-port 0]
                            [--redis-url redis://HOST:PORT/DB]
                            [--viewers-per-client-process 250] [--baseline TREE] [--json]
                            [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import websocket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EMULATOR_BASE = "127.0.3.41"  # this area's loopback block; module i on .41 + i
REDIS_SERVER = "/usr/bin/redis-server"
CONFIGS = ("embedded", "redis-1", "redis-2")
MAX_VIEWERS = 2000
CONNECT_TIMEOUT_S = 60.0
"""How long all of one run's viewers may take to connect (retrying)."""
CONNECT_RATE = 200.0
"""New viewers a second, over all client processes (a thousand at once time out)."""
CAPTURE_GRACE_S = 120.0
"""How long past its duration a capture may take to end (and the clients wait)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Viewer(threading.Thread):
    """A Socket.IO client with no library: handshake, ping/pong, events, binary attachments.

    It retries a failed connection (10 s per attempt, as a browser would) until
    ``connect_by`` (time.monotonic); ``error`` keeps the last failure, and a viewer whose
    connection broke after it had connected ends with ``lost`` set."""

    def __init__(self, url: str, stop: threading.Event, connect_by: float | None = None):
        super().__init__(daemon=True)
        self.url = url
        self.stop = stop
        self.connect_by = time.monotonic() + 30 if connect_by is None else connect_by
        self.latencies: list[float] = []
        self.packets = 0
        self.bytes = 0
        self.events: dict[str, int] = {}
        """Socket.IO events received, by name."""
        self.connected = threading.Event()
        self.error: str | None = None
        self.lost = False

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._session()
                return
            except Exception as exc:  # any failure of the connection ends or retries it
                self.error = f"{type(exc).__name__}: {exc}"
                if self.connected.is_set():
                    self.lost = True
                    return
                if time.monotonic() > self.connect_by:
                    return
                time.sleep(0.5)

    def _count(self, body: str) -> None:
        if body.startswith('["'):
            name = body[2 : body.find('"', 2)]
            self.events[name] = self.events.get(name, 0) + 1

    def _session(self) -> None:
        ws = websocket.create_connection(
            self.url, timeout=10, skip_utf8_validation=True, enable_multithread=True
        )
        try:
            ws.recv()  # Engine.IO open packet "0{...}"
            ws.send("40")  # Socket.IO connect to "/"
            ws.settimeout(2)  # from here on, only to look at self.stop now and then
            attachments = 0
            while not self.stop.is_set():
                try:
                    frame = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                now = time.time()  # arrival, before any parsing
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
                    self._count(frame[frame.index("-") + 1 :])
                    continue
                if frame.startswith("42"):
                    self._count(frame[2:])
                payload = None
                if frame.startswith('42["update"') and '"recording-time"' in frame:
                    payload = json.loads(frame[2:])[1]["topics"].get("recording-time")
                elif frame.startswith('42["recording-time"'):  # a tree from before `update`
                    payload = json.loads(frame[2:])[1]
                if payload and payload.get("t"):
                    self.latencies.append(now - payload["t"])
        finally:
            ws.close()


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}:\n{output(proc)}")
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


def client_worker(urls: list[str], conn: Any, stop: Any, seconds: float, rate: float) -> None:
    """One client process: a :class:`Viewer` thread per URL, started at ``rate`` a second;
    reports when all are connected (or gave up), then, once ``stop`` is set (or after
    ``seconds`` at most), every viewer's figures."""
    threading.stack_size(256 * 1024)  # a thousand threads need no 8 MB stacks
    halt = threading.Event()
    connect_by = time.monotonic() + CONNECT_TIMEOUT_S
    clients = [Viewer(url, halt, connect_by) for url in urls]
    for c in clients:
        c.start()
        time.sleep(1 / rate)
    for c in clients:
        c.connected.wait(max(0.0, connect_by + 10 - time.monotonic()))
    conn.send({"connected": sum(c.connected.is_set() for c in clients)})
    stop.wait(seconds)
    halt.set()
    for c in clients:
        c.join(5)
    conn.send(
        {
            "latencies": [x for c in clients for x in c.latencies],
            "packets": [c.packets for c in clients],
            "bytes": [c.bytes for c in clients],
            "lost": [c.error for c in clients if c.lost],
            "events": [c.events for c in clients],
        }
    )
    conn.close()


class ClientPool:
    """Viewers spread over several client processes (spawned), so a thousand clients are not
    held back by one interpreter's lock; their own CPU is measured beside the server's."""

    def __init__(self, urls: list[str], processes: int, seconds: float):
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        for i in range(processes):
            share = urls[i::processes]
            if not share:
                continue
            mine, theirs = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=client_worker,
                args=(share, theirs, self.stop, seconds, CONNECT_RATE / processes),
                daemon=True,
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.conns.append(mine)

    def wait_connected(self) -> int:
        total = 0
        for conn in self.conns:
            if not conn.poll(CONNECT_TIMEOUT_S + 30):
                raise SystemExit("a client process did not report within its connect timeout")
            total += conn.recv()["connected"]
        return total

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def finish(self) -> dict[str, list]:
        self.stop.set()
        out: dict[str, list] = {
            "latencies": [],
            "packets": [],
            "bytes": [],
            "lost": [],
            "events": [],
        }
        for conn in self.conns:
            if conn.poll(60):
                for key, values in conn.recv().items():
                    out[key] += values
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        return out


@dataclass
class Servers:
    """The processes of one configuration: the URL of each web process and whose CPU counts."""

    name: str
    data_dir: Path
    web_urls: list[str]
    web_pids: list[int]
    engine_pid: int | None = None


def start_profiles(
    folder: Path | None, servers: Servers, viewers: int, seconds: float
) -> list[subprocess.Popen]:
    """py-spy on each server process for the capture's length (bounded by its duration)."""
    if folder is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    named = [(f"web{i}", pid) for i, pid in enumerate(servers.web_pids)]
    if servers.engine_pid:
        named.append(("engine", servers.engine_pid))
    py_spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds) + 2),
                "--rate",
                "50",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(folder / f"{servers.name}-{viewers}-{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for name, pid in named
    ]


def events_per_viewer(counts: list[dict[str, int]], viewers: int) -> dict[str, float]:
    total: dict[str, int] = {}
    for one in counts:
        for name, n in one.items():
            total[name] = total.get(name, 0) + n
    return {name: round(n / viewers, 1) for name, n in sorted(total.items(), key=lambda x: -x[1])}


def summarise(problems: list[str]) -> list[str]:
    """The same problem on many channels once, with its count ("overrun on 24 channels")."""
    kinds: dict[str, int] = {}
    for p in problems:
        kind = p.split(" on ")[0] if p.startswith("overrun on ") else p
        if p.startswith("integrity "):
            kind = "integrity: samples missing" if "samples missing" in p else p
        kinds[kind] = kinds.get(kind, 0) + 1
    return [k if n == 1 else f"{k} ({n} channels or gaps)" for k, n in kinds.items()]


def cpu_pressure_s() -> float:
    """Seconds so far during which some runnable task of this machine waited for a CPU (Linux
    pressure stall information; NaN where the kernel has none)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return float("nan")
    return int(line.rsplit("total=", 1)[1]) / 1e6


def cpu_total(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def run_once(
    servers: Servers,
    viewers: int,
    seconds: float,
    modules: list[str],
    emulator_pid: int,
    client_processes: int,
    profile: Path | None = None,
) -> dict:
    base = servers.web_urls[0]
    ws = [
        u.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        for u in servers.web_urls
    ]
    urls = [ws[i % len(ws)] for i in range(viewers)]  # split evenly over the web processes
    limit = seconds + CONNECT_TIMEOUT_S + CAPTURE_GRACE_S
    pool = ClientPool(urls, min(client_processes, viewers), limit)
    try:
        connected = pool.wait_connected()
        watch_stop = threading.Event()
        drops = DropWatch(modules, watch_stop)
        drops.start()
        engine = [servers.engine_pid] if servers.engine_pid else []

        def marks() -> tuple[float, ...]:
            return (
                cpu_total(servers.web_pids),
                cpu_total(engine),
                cpu_total(pool.pids()),
                cpu_seconds(emulator_pid),
                time.monotonic(),
                cpu_pressure_s(),
            )

        begin = marks()
        recording: list[tuple[float, ...]] = []  # marks when recording began, then ended
        samplers = start_profiles(profile, servers, viewers, seconds)
        r = requests.post(
            f"{base}/api/capture/start",
            json={"name": f"bench {servers.name.replace('@', ' ')} {viewers}", "duration_s": seconds,
                  "modules": modules},
            timeout=60,
        )  # fmt: skip
        r.raise_for_status()
        capture_id = r.json()["capture_id"]
        deadline = time.monotonic() + seconds + CAPTURE_GRACE_S
        while time.monotonic() < deadline:
            state = requests.get(f"{base}/api/state", timeout=10).json()
            phase = state["phase"]["phase"]
            if (phase == "recording") == (len(recording) == 0) and len(recording) < 2:
                recording.append(marks())  # recording began (none yet) or ended (one)
            last = state["capture"]["last"]
            if last and last.get("id") == capture_id and not state["control"]["busy"]:
                break
            time.sleep(0.25)
        else:
            raise SystemExit(f"capture {capture_id} did not end within {seconds} s + grace")
        end = marks()
        first, then = (recording[0], recording[1]) if len(recording) == 2 else (begin, end)
        wall = then[4] - first[4]
        web_cpu, engine_cpu, client_cpu, emulator_cpu = (then[i] - first[i] for i in range(4))
        waited = then[5] - first[5]
        capture_wall = end[4] - begin[4]
        watch_stop.set()
        drops.join(5)
        for sampler in samplers:
            sampler.wait(30)
    finally:
        got = pool.finish()
    latencies = got["latencies"]
    problems = check_capture(servers.data_dir, capture_id)
    dropped = sum(drops.dropped.values())
    if dropped:
        problems.append(f"the emulator dropped {dropped} blocks for a slow reader")
    if not drops.sent:
        problems.append("no emulator measurement was seen while recording")
    problems = summarise(problems)
    if connected < viewers:
        problems.append(f"{viewers - connected} viewers failed to connect")
    if got["lost"]:
        problems.append(f"{len(got['lost'])} viewers lost their connection ({got['lost'][0]})")
    return {
        "config": servers.name,
        "viewers": viewers,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "samples": len(latencies),
        "packets_per_viewer": sum(got["packets"]) / viewers,
        "kbytes_per_viewer": sum(got["bytes"]) / viewers / 1e3,
        "events_per_viewer": events_per_viewer(got["events"], viewers),
        "wall_s": wall,
        "cpu_over": "recording" if len(recording) == 2 else "capture",
        "capture_wall_s": capture_wall,
        "web_cpu_s": web_cpu,
        "engine_cpu_s": engine_cpu if servers.engine_pid else None,
        "client_cpu_s": client_cpu,
        "client_processes": len(pool.procs),
        "emulator_cpu_s": emulator_cpu,
        "cpu_wait_pct": 100 * waited / wall,
        "load_1min": os.getloadavg()[0],
        "problems": problems,
    }


def start(
    args: list[str], env: dict[str, str], procs: list[subprocess.Popen], cwd: Path = ROOT
) -> subprocess.Popen:
    """A server process (``python -m webapp`` of the tree ``cwd``), its output kept in a
    temporary file and shown if it fails."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    procs.append(proc)
    return proc


def output(proc: subprocess.Popen) -> str:
    log = getattr(proc, "log", None)
    if log is None:
        return ""
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


def stop(proc: subprocess.Popen, procs: list[subprocess.Popen]) -> None:
    """SIGTERM (a capture engine ends its capture cleanly), then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    procs.remove(proc)


def start_redis(host: str, port: int, folder: Path, procs: list[subprocess.Popen]) -> str:
    """Debian's redis-server on loopback, no persistence; its URL once it answers."""
    import redis

    start(
        [REDIS_SERVER, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        dict(os.environ), procs,
    )  # fmt: skip
    url = f"redis://{host}:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            return url
        except redis.RedisError:
            time.sleep(0.1)
    raise SystemExit(f"{REDIS_SERVER} did not answer on {host}:{port} within 10 s")


def wait_engine(base: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    """Until the web process at ``base`` sees a capture engine answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the capture engine exited with {proc.returncode}")
        state = requests.get(f"{base}/api/state", timeout=10).json()
        if "engine" not in state["control"]:
            return
        time.sleep(0.3)
    raise SystemExit(f"no capture engine answered {base} within {seconds} s")


def cpu_cell(cpu_s: float | None, wall_s: float) -> str:
    return "-" if cpu_s is None else f"{cpu_s:.1f}s {100 * cpu_s / wall_s:3.0f}%"


def print_header(args: argparse.Namespace) -> None:
    print(
        f"{args.modules} emulated Type 3050 modules at full bandwidth (6 x 131072 S/s), "
        f"{args.seconds:g} s per capture; status latency = the engine's recording-time event "
        "(its wall clock) to its arrival at a viewer (same host clock); CPU while recording, s "
        "and % of one core (client CPU/n: n client processes); wait% = share of that time "
        "some task of this machine waited for a CPU (/proc/pressure/cpu); load = 1-min load "
        "average at the end"
    )
    print(
        f"{'config':<14} {'viewers':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'samples':>7} {'pkt/vw':>7} {'kB/vw':>7} {'web CPU':>11} {'engine CPU':>11} "
        f"{'client CPU/n':>13} {'emu CPU':>11} {'wait%':>5} {'load':>5}  capture data"
    )


def print_row(res: dict) -> None:
    wall = res["wall_s"]
    verdict = "ok" if not res["problems"] else "; ".join(res["problems"])
    print(
        f"{res['config']:<14} {res['viewers']:>7} {res['p50_ms']:>7.1f} {res['p99_ms']:>7.1f} "
        f"{res['max_ms']:>7.1f} {res['samples']:>7} {res['packets_per_viewer']:>7.0f} "
        f"{res['kbytes_per_viewer']:>7.0f} {cpu_cell(res['web_cpu_s'], wall):>11} "
        f"{cpu_cell(res['engine_cpu_s'], wall):>11} "
        f"{cpu_cell(res['client_cpu_s'], wall) + '/' + str(res['client_processes']):>13} "
        f"{cpu_cell(res['emulator_cpu_s'], wall):>11} {res['cpu_wait_pct']:>5.0f} "
        f"{res['load_1min']:>5.1f}  {verdict}",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="1,200", help="viewer counts, e.g. 1,200,1000")
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"which of {','.join(CONFIGS)} to run, in that order (default all)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="capture length")
    parser.add_argument("--modules", type=int, default=4)
    parser.add_argument(
        "--address", default=EMULATOR_BASE, help="first emulated module's loopback address"
    )
    parser.add_argument("--port", type=int, default=0, help="modules' HTTP port (0: a free one)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address of the web processes and Redis"
    )
    parser.add_argument(
        "--dashboard-ports",
        default="0,0",
        help="ports of the first and second web process (0: a free one)",
    )
    parser.add_argument("--redis-port", type=int, default=0, help="own Redis's port (0: free)")
    parser.add_argument(
        "--redis-url", help="use this Redis (redis://HOST:PORT/DB) instead of starting one"
    )
    parser.add_argument(
        "--viewers-per-client-process",
        type=int,
        default=250,
        help="viewers per client process (default 250)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="TREE",
        help="also run every configuration from this checkout (e.g. a git worktree of an "
        "earlier commit), just before this tree's, its rows named CONFIG@base",
    )
    parser.add_argument("--json", action="store_true", help="also print every row as JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record each server process with py-spy during each capture (collapsed stacks "
        "in DIR/<config>-<viewers>-<process>.txt; adds the sampler's own CPU)",
    )
    args = parser.parse_args()
    args.viewer_counts = [int(v) for v in args.viewers.split(",") if v]
    args.config_list = [c for c in args.configs.split(",") if c]
    args.ports = [int(p) for p in args.dashboard_ports.split(",")] + [0, 0]
    if not all(1 <= n <= MAX_VIEWERS for n in args.viewer_counts) or not 1 <= args.seconds <= 60:
        raise SystemExit(f"bounded: 1..{MAX_VIEWERS} viewers, 1..60 s")
    if unknown := set(args.config_list) - set(CONFIGS):
        raise SystemExit(f"unknown configs {sorted(unknown)}; choose from {CONFIGS}")
    if not 1 <= args.viewers_per_client_process <= MAX_VIEWERS:
        raise SystemExit(f"--viewers-per-client-process: 1..{MAX_VIEWERS}")
    return args


def run_counts(
    args: argparse.Namespace, servers: Servers, modules: list[str], emulator_pid: int
) -> list[dict]:
    rows = []
    for n in args.viewer_counts:
        processes = -(-n // args.viewers_per_client_process)
        res = run_once(servers, n, args.seconds, modules, emulator_pid, processes, args.profile)
        print_row(res)
        if args.json:
            print(json.dumps(res), flush=True)
        rows.append(res)
    return rows


def run_config(
    args: argparse.Namespace,
    config: str,
    tree: Path,
    suffix: str,
    tmp: Path,
    bases: list[str],
    ports: list[int],
    modules: list[str],
    emulator_pid: int,
    env: dict[str, str],
    procs: list[subprocess.Popen],
) -> list[dict]:
    """One configuration's servers, started from the tree ``tree`` (its rows named
    ``config + suffix``), every viewer count run against them, then the servers stopped."""
    py = [sys.executable, "-m", "webapp"]
    name = config + suffix
    data_dir = Path(tmp, name)
    if config == "embedded":
        web = start(
            [*py, "serve", "--host", args.host, "--port", str(ports[0]),
             "--data-dir", str(data_dir)],
            env, procs, tree,
        )  # fmt: skip
        wait_http(f"{bases[0]}/api/state", web)
        rows = run_counts(
            args, Servers(name, data_dir, bases[:1], [web.pid]), modules, emulator_pid
        )
        stop(web, procs)
        return rows
    n = 2 if config == "redis-2" else 1
    url = args.redis_url or start_redis(
        args.host, args.redis_port or free_port(args.host), tmp, procs
    )
    redis_proc = procs[-1] if not args.redis_url else None
    queue = ["--message-queue", url, "--data-dir", str(data_dir)]
    engine = start([*py, "engine", *queue], env, procs, tree)
    webs = []
    for i in range(n):
        webs.append(
            start(
                [*py, "serve", *queue, "--host", args.host, "--port", str(ports[i])],
                env,
                procs,
                tree,
            )  # fmt: skip
        )
        wait_http(f"{bases[i]}/api/state", webs[i])
        wait_engine(bases[i], engine)
    servers = Servers(name, data_dir, bases[:n], [w.pid for w in webs], engine.pid)
    rows = run_counts(args, servers, modules, emulator_pid)
    for w in webs:
        stop(w, procs)
    stop(engine, procs)
    if redis_proc is not None:
        stop(redis_proc, procs)
    elif args.redis_url:
        import redis

        redis.Redis.from_url(url).flushdb()  # the next configuration starts from nothing
    return rows


def main() -> int:
    args = parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    py = [sys.executable, "-m", "webapp"]
    emu_port = args.port or free_port(args.address)
    procs: list[subprocess.Popen] = []
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            emulator = start(
                [*py, "emulate", "--modules", str(args.modules), "--address", args.address,
                 "--port", str(emu_port), "--ptp-lock-seconds", "1"],
                env, procs,
            )  # fmt: skip
            first = args.address.rsplit(".", 1)
            modules = [f"{first[0]}.{int(first[1]) + i}:{emu_port}" for i in range(args.modules)]
            wait_http(f"http://{modules[0]}/rest/rec/module/info", emulator)
            ports = [p or free_port(args.host) for p in args.ports[:2]]
            bases = [f"http://{args.host}:{p}" for p in ports]
            print_header(args)

            trees = [(ROOT, "")]
            if args.baseline is not None:
                trees.insert(0, (args.baseline.resolve(), "@base"))
            for config in args.config_list:
                for tree, suffix in trees:  # the baseline tree first, then this one
                    rows += run_config(
                        args, config, tree, suffix, Path(tmp), bases, ports, modules,
                        emulator.pid, env, procs,
                    )  # fmt: skip
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
