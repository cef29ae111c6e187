"""Module discovery by mDNS, where multicast works: a network namespace of its own (as root,
with ``unshare -n``), whose loopback carries multicast. The cases themselves are in
``netns_cases.py``, run by a pytest inside that namespace: the emulator answering mDNS as real
modules do, ``lanxi-dashboard discover``, the dashboard's Find modules (API and page)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.support.processes import REPO

NAMESPACE_SETUP = (
    "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
)


def _namespace_refusal() -> str | None:
    if os.geteuid() != 0:
        return "a network namespace for the multicast test needs root"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare and ip (util-linux, iproute2) are needed for a network namespace"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", NAMESPACE_SETUP], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"cannot make a network namespace with multicast: {probe.stderr.strip()}"
    return None


def test_discovery_in_a_network_namespace() -> None:
    refusal = _namespace_refusal()
    if refusal:
        pytest.skip(refusal)
    done = subprocess.run(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            f"{NAMESPACE_SETUP} && exec {sys.executable} -m pytest -q -p no:cacheprovider "
            "tests/discovery/netns_cases.py",
        ],
        cwd=REPO,
        env={**os.environ, "LANXI_IN_TEST_NETNS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
