"""``export`` draws a progress bar when stderr is a terminal (a real pty) and stays quiet when
piped; the bar's redraws themselves."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.support.processes import REPO, webapp_command
from webapp.analysis.progressbar import ProgressBar


def _read_all(fd: int, proc: subprocess.Popen, timeout: float = 60.0) -> bytes:
    """Everything written to the pty until the child exits (bounded by ``timeout``)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


def test_export_on_a_terminal_shows_a_progress_bar(clean_capture: Path, tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        webapp_command("export", str(clean_capture), "-f", "csv", "-o", str(tmp_path / "x.csv")),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    try:
        err = _read_all(master, proc).decode()
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "\rexport csv [" in err and "100%" in err, repr(err)
    assert err.rstrip().endswith("100%"), repr(err)
    assert b"\r" not in out and b"wrote" in out  # the summary on stdout stays clean


def test_export_piped_shows_no_progress(clean_capture: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        webapp_command("export", str(clean_capture), "-f", "csv", "-o", str(tmp_path / "x.csv")),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "%" not in run.stderr, repr(run.stderr)
    assert "wrote" in run.stdout


def test_bar_redraws_on_change_at_most_every_interval_and_ends_its_line() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(stream, "export uff", min_interval_s=0.1, clock=lambda: now[0])
    bar(0.0)
    bar(0.5)  # too soon after the last redraw
    now[0] = 0.2
    bar(0.5)
    bar(0.5)  # unchanged
    now[0] = 0.21
    bar(1.0)  # the end is always drawn
    bar.close()
    frames = stream.getvalue().split("\r")[1:]
    assert [f.rstrip("\n")[-4:] for f in frames] == ["  0%", " 50%", "100%"]
    assert stream.getvalue().endswith("100%\n")
    assert ProgressBar.for_stream(io.StringIO(), "x") is None
