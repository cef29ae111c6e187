"""Run inside a network namespace of its own by ``test_discovery.py`` (loopback with
multicast): real processes only, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.browser import LAPTOP, TABLET, launch_chromium, shoot, wait_js, watch_errors
from tests.support.processes import REPO, run_webapp, serve, webapp_command

pytestmark = pytest.mark.skipif(
    os.environ.get("LANXI_IN_TEST_NETNS") != "1", reason="runs inside test_discovery's namespace"
)

FIRST = "127.0.40.1"
INTERFACE = "127.0.0.1"


@pytest.fixture(scope="module")
def announced(tmp_path_factory) -> Iterator[list[dict]]:
    """Two emulated modules (ports 80) answering mDNS; yields their /emulator/info."""
    log_path = tmp_path_factory.mktemp("emulate") / "emulate.log"
    log = open(log_path, "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        webapp_command(
            "emulate", "--modules", "2", "--type", "3050,3160", "--address", FIRST,
            "--port", "80", "--mdns", INTERFACE,
        ),
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "answering mDNS" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        infos = [
            requests.get(f"http://127.0.40.{i}/emulator/info", timeout=5).json() for i in (1, 2)
        ]
        yield infos
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_discover_lists_every_module_with_its_own_facts(announced) -> None:
    done = run_webapp("discover", "--interface", INTERFACE, "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [f["address"] for f in found] == ["127.0.40.1", "127.0.40.2"]
    for f, info in zip(found, announced, strict=True):
        assert f["name"] == info["name"] == f"BK{info['type']}-{info['serial']:06d}"
        assert (f["type"], f["serial"], f["state"], f["error"]) == (
            info["type"],
            info["serial"],
            "Idle",
            "",
        )
    table = run_webapp("discover", "--interface", INTERFACE)
    assert table.returncode == 0
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == [announced[0]["name"], announced[1]["name"]]
    assert rows[1][1:] == [announced[1]["type"], str(announced[1]["serial"]), "127.0.40.2", "Idle"]


def test_find_modules_through_the_api(announced, tmp_path: Path) -> None:
    with serve(tmp_path, "--mdns-interface", INTERFACE) as base:
        found = requests.post(f"{base}/api/rig/discover", json={}, timeout=60).json()["modules"]
        assert [(m["address"], m["in_rig"]) for m in found] == [
            ("127.0.40.1", False),
            ("127.0.40.2", False),
        ]
        requests.post(f"{base}/api/rig/modules", json={"address": "127.0.40.2"}).raise_for_status()
        again = requests.post(f"{base}/api/rig/discover", json={}, timeout=60).json()["modules"]
        assert [m["in_rig"] for m in again] == [False, True]


@pytest.mark.parametrize("viewport", [LAPTOP, TABLET], ids=["laptop", "tablet"])
def test_find_modules_on_the_rig_page(announced, tmp_path: Path, viewport) -> None:
    with serve(tmp_path, "--mdns-interface", INTERFACE) as base:
        for browser in launch_chromium():
            page = browser.new_page(viewport=viewport)
            errors: list[str] = []
            watch_errors(page, errors)
            page.goto(f"{base}/rig")
            page.click("#find-btn")
            page.wait_for_selector('#found-table tr[data-found="127.0.40.2"]', timeout=30000)
            assert "2 module(s) answered, 2 not in the rig yet" in page.text_content("#found-info")
            row = page.text_content('#found-table tr[data-found="127.0.40.2"]')
            assert "Type 3160" in row and str(announced[1]["serial"]) in row and "Idle" in row
            shoot(page, f"rig-find-modules-{viewport['width']}")
            page.click("#found-add")
            wait_js(
                page,
                "() => document.querySelectorAll('#rig-table tr[data-module]').length === 2",
            )
            rig = requests.get(f"{base}/api/rig", timeout=5).json()
            assert [m["address"] for m in rig["modules"]] == ["127.0.40.1", "127.0.40.2"]
            assert errors == []
            page.close()
