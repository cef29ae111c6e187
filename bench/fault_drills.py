"""Fault drills: every way out of a capture, on real processes, and what each one leaves.

Starts ``python -m webapp emulate`` (2 modules by default) and, per drill, a real
``python -m webapp capture`` against it, breaks something, and then looks from outside:

* baseline     a clean timed capture (its request log is the list the http-500 drills use)
* sigterm      SIGTERM half-way through an until-stopped capture
* sigint       Ctrl-C (SIGINT) half-way through a timed capture
* sigkill      SIGKILL half-way (nothing can stop the modules: they must be named afterwards)
* disk-full    the capture folder on a small tmpfs that fills half-way (needs mount; skipped
               with the reason otherwise)
* dead-slave   module 2 stops answering (``unreachable``) half-way
* stream-drop  module 2's stream connection is torn down half-way
* http-500     every request of the baseline, in turn, answers 500 on the master and on a slave
* ptp-loss     module 2 loses PTP lock half-way for a quarter of the capture

Per drill it prints: the exit status, the outcome ``inspect`` reads, the verdict, bytes the
capture counted as received beside bytes on disk, SignalData blocks the emulator sent beside
blocks in the files, the modules left non-Idle and whether the capture named them. A drill
*holds* when no byte the capture received is missing from the disk (or it said how many), every
module left non-Idle was named, and the verdict is what the data deserves (baseline ok; a PTP
loss not ok; a killed capture interrupted). Exits 1 when a drill does not hold.

Usage: python bench/fault_drills.py [--address 127.0.30.1] [--port 80] [--modules 2]
       [--seconds 2] [--only sigterm,dead-slave] [--json] [--keep DIR]
Every capture is bounded (``--seconds`` and a hard timeout per process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's webapp, whatever is installed
EMULATOR_TIMINGS = [
    "--ptp-lock-seconds",
    "0.3",
    "--teds-seconds",
    "0.1",
    "--settle-seconds",
    "0.05",
]
BANDWIDTH = "6.4 kHz"
PROCESS_TIMEOUT_S = 90.0
DRILLS = (
    "baseline",
    "sigterm",
    "sigint",
    "sigkill",
    "disk-full",
    "dead-slave",
    "stream-drop",
    "http-500",
    "ptp-loss",
    "monitor-sigterm",
    "monitor-sigkill",
)


def webapp(*args: str) -> list[str]:
    return [sys.executable, "-m", "webapp", *args]


@dataclass
class Row:
    drill: str
    status: int | None = None
    outcome: str = ""
    verdict: str = ""
    received_bytes: int | None = None
    disk_bytes: int = 0
    sent_blocks: int | None = None
    disk_blocks: int = 0
    non_idle: list[str] = field(default_factory=list)
    named: bool = True
    holds: bool = True
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Emulator:
    """``python -m webapp emulate`` as a process, and its HTTP endpoints."""

    def __init__(self, address: str, port: int, modules: int, log: Path) -> None:
        # Its log (a line per request) goes to a file: a pipe nobody reads would fill and
        # stop the emulator.
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            webapp(
                "emulate",
                "--modules",
                str(modules),
                "--address",
                address,
                "--port",
                str(port),
                *EMULATOR_TIMINGS,
            ),
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.log = log
        self.addresses: list[str] = []
        self.before: list[dict[str, Any] | None] = []
        deadline = time.monotonic() + 30
        while len(self.addresses) < modules and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"emulate ended: {log.read_text()[-2000:]}")
            for found in re.finditer(r"at http://(\S+)/rest/rec", log.read_text()):
                if found.group(1) not in self.addresses:
                    self.addresses.append(found.group(1))
            time.sleep(0.05)
        if len(self.addresses) < modules:
            raise SystemExit("emulate did not start its modules within 30 s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def url(self, module: int, path: str) -> str:
        return f"http://{self.addresses[module - 1]}/{path}"

    def fault(self, module: int, kind: str, arg: str | None = None, **when: float) -> None:
        body: dict[str, Any] = {"kind": kind, **when}
        if arg is not None:
            body["arg"] = arg
        requests.post(self.url(module, "emulator/faults"), json=body, timeout=5).raise_for_status()

    def reset(self) -> None:
        """No faults, an empty request log, every module Idle."""
        for m in range(1, len(self.addresses) + 1):
            requests.delete(self.url(m, "emulator/faults"), timeout=5).raise_for_status()
        subprocess.run(
            webapp("capture", "--return-to-idle", *self.addresses),
            cwd=REPO,
            capture_output=True,
            timeout=60,
        )
        for m in range(1, len(self.addresses) + 1):
            requests.delete(self.url(m, "emulator/requests"), timeout=5).raise_for_status()
        self.before = self.measurements()

    def state(self, module: int) -> str:
        try:
            answer = requests.get(self.url(module, "rest/rec/onchange"), timeout=5)
            return str(answer.json().get("moduleState"))
        except (requests.RequestException, ValueError):
            return "not answering"

    def measurements(self) -> list[dict[str, Any] | None]:
        """Each module's current measurement, or the last one it finished."""
        found = []
        for m in range(1, len(self.addresses) + 1):
            info = requests.get(self.url(m, "emulator/info"), timeout=5).json()
            found.append(info.get("measurement") or info.get("lastMeasurement"))
        return found

    def sent_blocks(self, before: list[dict[str, Any] | None]) -> int:
        """Blocks sent in measurements that began after ``before`` was taken."""
        total = 0
        for now, then in zip(self.measurements(), before, strict=True):
            if now and (then is None or now.get("t0") != then.get("t0")):
                total += sum(p["sentBlocks"] for p in now.get("ports", []))
        return total

    def requests_seen(self, module: int) -> list[tuple[str, str]]:
        log = requests.get(self.url(module, "emulator/requests"), timeout=5).json()
        seen: list[tuple[str, str]] = []
        for e in log:
            path = e["path"].split("?")[0]
            if path.startswith("/rest/rec/"):
                entry = (e["method"], path.removeprefix("/rest/rec/"))
                if entry not in seen:
                    seen.append(entry)
        return seen


CAPTURE_OPTIONS: list[str] = []
"""Options every drill's ``capture`` gets (``--receiver-workers N``)."""


class Capture:
    """One ``python -m webapp capture`` process, its output collected."""

    def __init__(self, addresses: list[str], folder: Path, *extra: str) -> None:
        self.folder = folder
        self.log = folder.parent / f"{folder.name}.log"
        self._out = open(self.log, "w+")  # noqa: SIM115 - closed in wait()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            webapp(
                "capture",
                *addresses,
                "-n",
                "drill",
                "-o",
                str(folder),
                "--bandwidth",
                BANDWIDTH,
                *extra,
                *CAPTURE_OPTIONS,
            ),
            cwd=REPO,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_recording(self, timeout: float = 30.0) -> None:
        """Until every module's samples have begun to arrive (a recording time above 0)."""
        self.wait_for(r"Measuring +(?!0\.0 )\d+\.\d s", timeout)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> None:
        """Until the output matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the capture did not start recording:\n{self.output()}")
            time.sleep(0.02)

    def wait(self) -> int | None:
        try:
            return self.proc.wait(PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None
        finally:
            self._out.close()


def inspect(folder: Path) -> dict[str, Any]:
    done = subprocess.run(
        webapp("inspect", str(folder), "--json"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return {"verdict": f"inspect failed ({done.returncode}): {done.stderr.strip()[:200]}"}
    report["exit_status"] = done.returncode
    return report


def measure(row: Row, emulator: Emulator, run: Capture, status: int | None) -> Row:
    """What the drill left, seen from outside: files, capture.json, inspect, the modules."""
    row.status = status
    row.seconds = round(time.monotonic() - run.started, 2)
    folder = run.folder
    row.disk_bytes = sum(p.stat().st_size for p in folder.glob("*.stream"))
    meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((folder / "capture.json").read_text())
    report = inspect(folder) if meta or row.disk_bytes else {}
    row.outcome = str(report.get("capture", {}).get("outcome", meta.get("outcome", "no capture")))
    row.verdict = str(report.get("verdict", "no files"))
    # The emulator counts a block once for all the signals of its port; a file holds one
    # SignalData message per signal and block.
    row.disk_blocks = sum(
        int(f.get("blocks", 0)) // max(1, len(f.get("channels") or [1]))
        for f in report.get("files", [])
    )
    if meta.get("outcome") not in (None, "running"):
        row.received_bytes = sum(int(m.get("bytes", 0)) for m in meta.get("modules", []))
    row.sent_blocks = emulator.sent_blocks(emulator.before)
    said = run.output() + json.dumps(meta.get("left_non_idle", []))
    for m, address in enumerate(emulator.addresses, start=1):
        state = emulator.state(m)
        if state != "Idle":
            row.non_idle.append(f"module {m} ({address}): {state}")
            if f"module {m} ({address}" not in said and not (
                row.outcome == "interrupted" and address in json.dumps(meta.get("modules", []))
            ):
                row.named = False
    lost = None if row.received_bytes is None else row.received_bytes - row.disk_bytes
    if lost:
        row.notes.append(f"{lost} received bytes are not on disk")
    row.holds = not lost and row.named
    return row


def measure_windows(row: Row, emulator: Emulator, run: Capture, status: int | None) -> Row:
    """A monitored run: one capture folder per segment under the run's folder, each measured
    as a capture of its own; the drill holds when every one of them does."""
    folders = sorted(p for p in run.folder.glob("*") if p.is_dir()) if run.folder.is_dir() else []
    if not folders:
        return measure(row, emulator, run, status)
    parts = []
    for folder in folders:
        part = types.SimpleNamespace(folder=folder, started=run.started, output=run.output)
        parts.append(measure(Row(row.drill), emulator, part, status))  # type: ignore[arg-type]
    last = parts[-1]
    row.status, row.seconds, row.non_idle, row.named = (
        status,
        last.seconds,
        last.non_idle,
        last.named,
    )
    row.outcome = "/".join(sorted({p.outcome for p in parts}))
    row.verdict = "/".join(sorted({p.verdict for p in parts}))
    row.disk_bytes = sum(p.disk_bytes for p in parts)
    received = [p.received_bytes for p in parts if p.received_bytes is not None]
    row.received_bytes = sum(received) if received else None
    row.disk_blocks = sum(p.disk_blocks for p in parts)
    row.sent_blocks = last.sent_blocks
    # Every segment keeps what it received; only the last one (open when the run ended) can
    # have left the modules recording, and the run must have said so.
    kept = all(p.received_bytes is None or p.received_bytes == p.disk_bytes for p in parts)
    row.holds = kept and last.named
    row.notes.append(f"{len(parts)} segment captures")
    for p in parts:
        row.notes.extend(n for n in p.notes if n not in row.notes)
    return row


def recorded(row: Row, run: Capture) -> Row:
    """A drill that must record: one that never got to is no evidence, and does not hold."""
    if row.outcome == "no capture":
        row.holds = False
        said = [line for line in run.output().splitlines() if line.startswith("error:")]
        row.notes.append("did not get to record: " + (said[-1] if said else "see its log"))
    return row


def expect(row: Row, verdict_ok: bool | None = None, outcome: str | None = None) -> None:
    if verdict_ok is not None and (row.verdict == "ok") != verdict_ok:
        row.holds = False
        row.notes.append(f"verdict {row.verdict!r} where {'ok' if verdict_ok else 'not ok'} is due")
    if outcome is not None and row.outcome != outcome:
        row.holds = False
        row.notes.append(f"outcome {row.outcome!r} where {outcome!r} is due")


class Drills:
    def __init__(self, emulator: Emulator, work: Path, seconds: float) -> None:
        self.emulator = emulator
        self.work = work
        self.seconds = seconds
        self.baseline_requests: list[tuple[int, str, str]] = []
        self._n = 0

    def folder(self, name: str) -> Path:
        self._n += 1
        return self.work / f"{self._n:02d}-{re.sub(r'[^A-Za-z0-9.-]+', '-', name)}"

    def timed(self, name: str, folder: Path | None = None) -> tuple[Capture, int | None]:
        run = Capture(
            self.emulator.addresses, folder or self.folder(name), "-t", f"{self.seconds:g}"
        )
        return run, run.wait()

    def baseline(self) -> list[Row]:
        self.emulator.reset()
        run, status = self.timed("baseline")
        row = measure(Row("baseline"), self.emulator, run, status)
        expect(row, verdict_ok=True, outcome="completed")
        if status != 0:
            row.holds = False
        self.baseline_requests = [
            (m, method, path)
            for m in (1, len(self.emulator.addresses))
            for method, path in self.emulator.requests_seen(m)
        ]
        return [row]

    def _signalled(self, name: str, signum: int, *extra: str) -> Row:
        self.emulator.reset()
        run = Capture(self.emulator.addresses, self.folder(name), *extra)
        run.wait_recording()
        time.sleep(self.seconds / 2)
        run.proc.send_signal(signum)
        return recorded(measure(Row(name), self.emulator, run, run.wait()), run)

    def sigterm(self) -> list[Row]:
        row = self._signalled("sigterm", signal.SIGTERM, "--until-stopped")
        expect(row, verdict_ok=True, outcome="stopped")
        return [row]

    def sigint(self) -> list[Row]:
        row = self._signalled("sigint", signal.SIGINT, "-t", f"{self.seconds * 4:g}")
        expect(row, verdict_ok=True, outcome="stopped")
        return [row]

    def sigkill(self) -> list[Row]:
        row = self._signalled("sigkill", signal.SIGKILL, "--until-stopped")
        expect(row, outcome="interrupted")
        return [row]

    def disk_full(self) -> list[Row]:
        self.emulator.reset()
        mount_point = Path(tempfile.mkdtemp(prefix="drill-disk-", dir=self.work))
        from webapp.capture.diskspace import reserve_bytes, stream_rate

        # Room for the stop reserve and about half of what the capture writes (6 channels per
        # module at the 6.4 kHz bandwidth's 16384 S/s).
        rate = stream_rate(6 * len(self.emulator.addresses), 16384)
        size_kb = int((reserve_bytes(rate) + rate * self.seconds / 2) / 1024)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
        if mounted.returncode != 0:
            row = Row(
                "disk-full", notes=[f"skipped: cannot mount a tmpfs ({mounted.stderr.strip()})"]
            )
            return [row]
        try:
            run = Capture(
                self.emulator.addresses,
                mount_point / "capture",
                "-t",
                f"{self.seconds:g}",
                "--disk-margin",
                "0",
            )
            row = recorded(measure(Row("disk-full"), self.emulator, run, run.wait()), run)
            row.notes.append(f"{size_kb} kB tmpfs")
            expect(row, outcome="stopped")
            if (mount_point / "capture").is_dir():
                shutil.copytree(mount_point / "capture", self.folder("disk-full"))
        finally:
            subprocess.run(["umount", str(mount_point)], capture_output=True)
        return [row]

    def _faulted(
        self, name: str, module: int, kind: str, arg: str | None = None, **when: float
    ) -> Row:
        self.emulator.reset()
        self.emulator.fault(module, kind, arg, **when)
        run, status = self.timed(name)
        row = measure(Row(name), self.emulator, run, status)
        return row if kind == "http-500" else recorded(row, run)

    def _monitored(self, name: str, signum: int) -> Row:
        """Segments of a third of the drill's length, until a signal half-way."""
        self.emulator.reset()
        segment = f"{self.seconds / 3:g}"
        run = Capture(self.emulator.addresses, self.folder(name), "--segment", segment,
                      "--until-stopped")  # fmt: skip
        try:
            run.wait_for(r'Recording "drill-seg0001"')
        except RuntimeError:
            run.proc.kill()  # a drill never leaves a capture running
            run.wait()
            raise
        time.sleep(self.seconds / 2)
        run.proc.send_signal(signum)
        return recorded(measure_windows(Row(name), self.emulator, run, run.wait()), run)

    def monitor_sigterm(self) -> list[Row]:
        row = self._monitored("monitor-sigterm", signal.SIGTERM)
        if row.status != 0 or not set(row.outcome.split("/")) <= {"completed", "stopped"}:
            row.holds = False
            row.notes.append("segments must end completed (and the last one stopped), exit 0")
        expect(row, verdict_ok=True)
        return [row]

    def monitor_sigkill(self) -> list[Row]:
        row = self._monitored("monitor-sigkill", signal.SIGKILL)
        if "interrupted" not in row.outcome:
            row.holds = False
            row.notes.append("the segment being written must read as interrupted")
        return [row]

    def dead_slave(self) -> list[Row]:
        row = self._faulted("dead-slave", 2, "unreachable", at=self.seconds / 2)
        if row.status == 0:
            row.holds = False
            row.notes.append("a module that stopped answering went unreported")
        return [row]

    def stream_drop(self) -> list[Row]:
        return [self._faulted("stream-drop", 2, "stream-drop", at=self.seconds / 2)]

    def ptp_loss(self) -> list[Row]:
        row = self._faulted(
            "ptp-loss", 2, "ptp-no-lock", at=self.seconds / 2, duration=self.seconds / 4
        )
        expect(row, verdict_ok=False)
        return [row]

    def http_500(self) -> list[Row]:
        if not self.baseline_requests:
            self.baseline()
        rows = []
        for module, method, path in self.baseline_requests:
            if path == "onchange":
                continue  # status polls: a 500 there is the dead-slave drill's neighbour
            print(f"  http-500 m{module} {method} {path}", file=sys.stderr, flush=True)
            row = self._faulted(f"http-500 m{module} {method} {path}", module, "http-500", path)
            # Only a request the teardown may do without (stand-alone) can fail unseen.
            if row.status == 0 and row.outcome == "completed" and path != "syncmode":
                row.notes.append("a failed request went unreported")
                row.holds = False
            rows.append(row)
        return rows


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'drill':34} {'exit':>4} {'outcome':11} {'verdict':8} {'received B':>10} "
        f"{'on disk B':>10} {'sent blk':>8} {'disk blk':>8}  left non-Idle (named)  holds"
    )
    print(head)
    for r in rows:
        left = (
            "; ".join(r.non_idle) + (" (named)" if r.named else " (NOT named)")
            if r.non_idle
            else "–"
        )
        print(
            f"{r.drill[:34]:34} {'' if r.status is None else r.status:>4} {r.outcome[:11]:11} "
            f"{r.verdict[:8]:8} {'' if r.received_bytes is None else r.received_bytes:>10} "
            f"{r.disk_bytes:>10} {'' if r.sent_blocks is None else r.sent_blocks:>8} "
            f"{r.disk_blocks:>8}  {left}  {'yes' if r.holds else 'NO'}"
        )
        for note in r.notes:
            print(f"{'':36}{note}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="127.0.30.1", help="first emulated module's address")
    p.add_argument("--port", type=int, default=80, help="HTTP port of every module (0: free)")
    p.add_argument("--modules", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0, help="length of each capture")
    p.add_argument("--only", default="", help="comma-separated drills: " + ", ".join(DRILLS))
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--keep", type=Path, help="keep every drill's capture folder here")
    p.add_argument(
        "--receiver-workers",
        default="",
        metavar="N",
        help="run every capture's stream receivers in N worker processes (default: capture's)",
    )
    args = p.parse_args(argv)
    chosen = [d for d in args.only.split(",") if d] or list(DRILLS)
    unknown = [d for d in chosen if d not in DRILLS]
    if unknown or args.modules < 2 or not 0.5 <= args.seconds <= 60:
        p.error(f"unknown drill {unknown}" if unknown else "--modules ≥ 2, --seconds 0.5..60")
    if args.receiver_workers:
        CAPTURE_OPTIONS[:] = ["--receiver-workers", args.receiver_workers]
    work = Path(tempfile.mkdtemp(prefix="fault-drills-"))
    emulator = Emulator(args.address, args.port, args.modules, work / "emulate.log")
    drills = Drills(emulator, work, args.seconds)
    rows: list[Row] = []
    try:
        for name in chosen:
            try:
                rows.extend(getattr(drills, name.replace("-", "_"))())
            except RuntimeError as exc:  # a drill that could not be run holds nothing
                rows.append(Row(name, holds=False, notes=[str(exc).splitlines()[0]]))
            if not args.json:
                print(f"  {name}: done", file=sys.stderr, flush=True)
    finally:
        with contextlib.suppress(Exception):
            emulator.reset()
        emulator.stop()
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print_table(rows)
    return 0 if all(r.holds for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
