"""``lanxi-dashboard emulate`` as a command: addresses, types, faults, clean exit."""

from __future__ import annotations

import re

import requests

from tests.support.processes import Emulate, run_webapp


def test_emulate_command_runs_modules_on_consecutive_addresses() -> None:
    emulate = Emulate(
        "--modules", "2", "--address", "127.0.1.51", "--port", "0",
        "--type", "3160,3677", "--fault", "1:http-500:create",
    )  # fmt: skip
    try:
        lines = emulate.ready(2)
        urls = [re.search(r"at (http://\S+/rest/rec)", line).group(1) for line in lines]  # type: ignore[union-attr]
        assert urls[0].startswith("http://127.0.1.51:") and urls[1].startswith("http://127.0.1.52:")
        types = [
            requests.get(u + "/module/info", timeout=5).json()["module"]["type"]["number"]
            for u in urls
        ]
        assert types == ["3160", "3677"]
        assert requests.put(urls[0] + "/open", timeout=5).status_code == 200
        assert requests.put(urls[0] + "/create", timeout=5).status_code == 500
        assert requests.put(urls[1] + "/open", timeout=5).status_code == 200
        assert requests.put(urls[1] + "/create", timeout=5).status_code == 200
    finally:
        rc = emulate.stop()
    assert rc == 0
    log = emulate.stderr()
    assert re.search(r"127\.0\.1\.51:\d+ PUT /rest/rec/create 500", log), log


def test_emulate_rejects_a_bad_fault_spec() -> None:
    run = run_webapp("emulate", "--port", "0", "--fault", "1:meltdown", timeout=30)
    assert run.returncode == 2
    assert "unknown fault kind" in run.stderr


def test_emulate_rejects_a_bad_loopback_wire() -> None:
    run = run_webapp("emulate", "--port", "0", "--loopback", "1>2:1000", timeout=30)
    assert run.returncode == 2
    assert "--loopback" in run.stderr and "OUTPUT>INPUT:FN_HZ:DAMPING" in run.stderr


def test_emulate_rejects_a_fault_on_a_channel_the_module_lacks() -> None:
    """A Type 3050 has six input channels: overload on channel 7 is refused before any module
    starts, like a malformed spec."""
    run = run_webapp(
        "emulate", "--port", "0", "--address", "127.0.1.55", "--fault", "1:overload:7", timeout=30
    )
    assert run.returncode == 2
    assert "--fault: module 1: overload on channel 7" in run.stderr
    assert "Type 3050 has input channels 1 to 6" in run.stderr
    assert run.stdout == ""  # no module was started


def test_emulate_help_puts_module_1_on_address_itself() -> None:
    run = run_webapp("emulate", "--help", timeout=30)
    assert run.returncode == 0
    text = " ".join(run.stdout.split())  # argparse wraps lines
    assert "module 1 listens on ADDRESS itself, module i on ADDRESS + i - 1" in text
    assert "ADDRESS+i " not in text


def test_emulate_prints_each_module_start_line_once() -> None:
    emulate = Emulate("--modules", "2", "--address", "127.0.44.61", "--port", "0")
    try:
        lines = emulate.ready(2)
        assert lines[0].startswith("module 1: ") and "http://127.0.44.61:" in lines[0]
        assert lines[1].startswith("module 2: ") and "http://127.0.44.62:" in lines[1]
    finally:
        rc = emulate.stop()
    assert rc == 0
    assert emulate.proc.stdout is not None
    output = "".join(lines) + emulate.proc.stdout.read() + emulate.stderr()
    assert len(re.findall(r"module 1: .*127\.0\.44\.61", output)) == 1, output
    assert len(re.findall(r"module 2: .*127\.0\.44\.62", output)) == 1, output
