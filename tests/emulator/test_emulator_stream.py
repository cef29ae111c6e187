"""PTP locking, the multi-module trigger, and the binary stream an emulated module sends."""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np
import pytest
import requests
from streamcheck import check_stream

from webapp.emulator.rig import CALIBRATOR_PA_RMS
from webapp.openapi.model import HEADROOM_MILLIONTHS

from .conftest import Api, StreamReader

BLOCK = 4096 * 32768  # ticks of one 4096-value block at 131072 S/s


def ptp(api: Api, domain: int, master: bool) -> None:
    api.ok(
        "put",
        "/syncmode",
        json={"synchronization": {"mode": "ptp", "domain": domain, "preferredMaster": master}},
    )


def ptp_history(api: Api, timeout: float = 5.0) -> list[str]:
    """Every ptpStatus value the module reports until it is Locked (long polls see each)."""
    seen: list[str] = []
    s = api.status()
    deadline = time.monotonic() + timeout
    while True:
        if not seen or seen[-1] != s["ptpStatus"]:
            seen.append(s["ptpStatus"])
        if s["ptpStatus"] == "Locked" or time.monotonic() > deadline:
            return seen
        s = api.get("/onchange", params={"last": s["lastUpdateTag"]}).json()


def test_ptp_slaves_lock_only_once_a_master_exists(start_rig) -> None:
    rig = start_rig(3, ptp_lock_seconds=0.45)
    master, slave, other = (Api(m) for m in rig.modules)
    ptp(slave, 9, False)
    ptp(other, 10, False)
    assert slave.status()["ptpStatus"] == "Unlocked"
    time.sleep(0.6)
    assert slave.status()["ptpStatus"] == "Unlocked", "no master in the domain: no lock"
    ptp(master, 9, True)
    assert ptp_history(slave) == ["Unlocked", "Settling", "Locking", "Locked"]
    assert master.status()["ptpStatus"] == "Locked"
    assert other.status()["ptpStatus"] == "Unlocked", "another domain has no master"
    # The master leaves the domain: the slave loses its lock.
    master.ok("put", "/syncmode", json={"synchronization": {"mode": "stand-alone"}})
    assert slave.wait_for("ptpStatus", "Unlocked", timeout=2)["ptpStatus"] == "Unlocked"
    assert master.status()["ptpStatus"] == "Locked"  # stand-alone


def test_master_locks_on_its_own(start_rig) -> None:
    api = Api(start_rig(1, ptp_lock_seconds=0.3).modules[0])
    ptp(api, 42, True)
    assert ptp_history(api) == ["Unlocked", "Settling", "Locking", "Locked"]


def multi_module_setup(apis: list[Api], domain: int = 42, **channel: Any) -> None:
    """TUT-M's sequence up to RecorderStreaming; apis[0] is the master."""
    for i, api in enumerate(apis):
        ptp(api, domain, i == 0)
    for api in apis:
        api.wait_for("ptpStatus", "Locked")
    for api in reversed(apis):
        api.ok("put", "/open", json={"singleModule": False, "performTransducerDetection": False})
        api.ok("put", "/create")
        setup = api.ok("get", "/channels/input/default").json()
        assert setup["channels"][0]["destinations"] == ["socket"]  # multi-module default
        for ch in setup["channels"]:
            ch.update(channel)
        api.ok("put", "/channels/input", json=setup)
        assert api.status()["moduleState"] == "RecorderConfiguring"
    for api in reversed(apis):
        api.wait_for("inputStatus", "Settled")
    for api in reversed(apis):
        api.ok("put", "/synchronize")
    for api in reversed(apis):
        assert api.wait_for("inputStatus", "Synchronized")["canStartStreaming"] is True
    for api in reversed(apis):
        api.ok("put", "/startstreaming")
        s = api.status()
        assert (s["moduleState"], s["inputStatus"]) == ("RecorderStreaming", "Streaming")


def connect(api: Api, **kw: Any) -> StreamReader:
    port = api.ok("get", "/destination/socket").json()["tcpPort"]
    return StreamReader(api.module.host, port, **kw)


def test_trigger_gives_identical_start_times(start_rig) -> None:
    rig = start_rig(3, types="3050,3160,3053")
    apis = [Api(m) for m in rig.modules]
    multi_module_setup(apis, bandwidth="25.6 kHz")
    readers = [connect(a) for a in apis]
    for api in reversed(apis[1:]):  # slaves first
        api.ok("post", "/measurements")
        assert api.status()["moduleState"] == "RecorderRecording"
    time.sleep(0.3)
    assert all(not r.data for r in readers), "slaves must not send before the master's start"
    apis[0].ok("post", "/measurements")
    t0s = {a.control("get", "info").json()["measurement"]["t0"] for a in apis}
    assert len(t0s) == 1
    apis[0].wait_for("lastUpdateTag", apis[0].status()["lastUpdateTag"] + 1)
    time.sleep(0.6)
    for api in reversed(apis):
        api.ok("put", "/measurements/stop")
    reports = [check_stream(r.wait_closed()) for r in readers]
    block = 4096 * (1 << 32) // 65536
    firsts = set()
    for report, n in zip(reports, (6, 4, 12), strict=True):
        assert sorted(report.signals) == list(range(1, n + 1))
        assert report.order[:n] == ["interpretation"] * n
        counts = {s.samples for s in report.signals.values()}
        assert len(counts) == 1 and counts.pop() >= 65536 * 0.6
        for sig in report.signals.values():
            assert sig.sample_rate == 65536 and sig.block_sizes == {4096}
            assert not sig.qualities
            firsts.add(sig.first_time)
    assert len(firsts) == 1
    assert firsts.pop() % block == 0, "T0 lies on the absolute block grid"


@pytest.mark.parametrize("master_stops_first", [False, True])  # TUT-M's order, REF17's order
def test_late_slave_joins_on_the_common_grid(start_rig, master_stops_first: bool) -> None:
    rig = start_rig(2)
    master, slave = (Api(m) for m in rig.modules)
    multi_module_setup([master, slave])
    readers = [connect(master), connect(slave)]
    master.ok("post", "/measurements")
    time.sleep(0.3)
    slave.ok("post", "/measurements")  # after the trigger: joins at the next block boundary
    time.sleep(0.3)
    for api in (master, slave) if master_stops_first else (slave, master):
        api.ok("put", "/measurements/stop")
    m_report, s_report = (check_stream(r.wait_closed()) for r in readers)
    t_master = m_report.signal(1).first_time
    t_slave = s_report.signal(1).first_time
    assert t_slave > t_master and (t_slave - t_master) % BLOCK == 0


def test_connect_late_gets_interpretations_then_the_backlog(api: Api) -> None:
    api.configure()
    api.ok("post", "/measurements")
    time.sleep(0.5)
    reader = connect(api)
    time.sleep(0.2)
    api.ok("put", "/measurements/stop")
    report = check_stream(reader.wait_closed())
    t0 = api.control("get", "info").json()["measurement"]["t0"]
    assert report.order[:6] == ["interpretation"] * 6
    assert all(s.first_time == t0 for s in report.signals.values())
    assert report.signal(1).samples >= 0.6 * 131072


def test_connection_before_the_measurement_gets_nothing_until_it_starts(api: Api) -> None:
    api.configure()
    reader = connect(api)
    time.sleep(0.3)
    assert not reader.data
    api.ok("post", "/measurements")
    time.sleep(0.3)
    api.ok("put", "/measurements/stop")
    assert len(reader.wait_closed()) > 0


def test_interpretation_contents_and_signal_levels(api: Api) -> None:
    setup = api.configure()
    reader = connect(api)
    api.ok("post", "/measurements")
    time.sleep(1.1)
    api.ok("put", "/measurements/stop")
    report = check_stream(reader.wait_closed(), keep_values=True)
    mic, acc, volt = report.signal(1), report.signal(2), report.signal(3)
    sens = setup["channels"][0]["transducer"]["sensitivity"]
    assert mic.descriptors["unit"] == "Pa" and acc.descriptors["unit"] == "m/s^2"
    assert volt.descriptors["unit"] == "V"
    assert mic.descriptors["scale_factor"] == 10 * HEADROOM_MILLIONTHS / 1e6 / sens
    assert volt.descriptors["scale_factor"] == 10 * HEADROOM_MILLIONTHS / 1e6
    assert mic.descriptors["period_time"] == (17, 0, 0, 0, 1)
    assert mic.descriptors["data_type"] == 3 and mic.descriptors["offset"] == 0.0
    pa = mic.values() * mic.descriptors["scale_factor"] / 2**23
    spl = 20 * np.log10(np.sqrt(np.mean(pa**2)) / 20e-6)
    assert abs(spl - 94.0) < 0.05
    assert abs(np.sqrt(np.mean(pa**2)) - CALIBRATOR_PA_RMS) < 0.005
    v = volt.values() * volt.descriptors["scale_factor"] / 2**23
    assert abs(np.max(np.abs(v)) - 1.0) < 0.01
    status = api.status()["recordingStatus"]["channelStatus"]
    assert 0 < status[0]["rms"] < status[0]["peak"] < 1


def test_without_ccld_a_ccld_transducer_gives_only_noise(api: Api) -> None:
    api.configure(ccld=False)
    reader = connect(api)
    api.ok("post", "/measurements")
    time.sleep(0.3)
    api.ok("put", "/measurements/stop")
    report = check_stream(reader.wait_closed(), keep_values=True)
    mic = report.signal(1)
    pa = mic.values() * mic.descriptors["scale_factor"] / 2**23
    assert np.sqrt(np.mean(pa**2)) < 0.01


def test_slow_reader_loses_whole_blocks_with_an_overrun_flag(start_rig) -> None:
    api = Api(start_rig(1, buffer_seconds=0.2).modules[0])
    api.configure()
    port = api.ok("get", "/destination/socket").json()["tcpPort"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sock.connect((api.module.host, port))
    api.ok("post", "/measurements")
    time.sleep(1.5)  # not reading: kernel buffers fill, then the module's buffer overflows
    data = bytearray()
    sock.settimeout(5)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        data += sock.recv(1 << 20)
    api.ok("put", "/measurements/stop")
    while chunk := sock.recv(1 << 20):
        data += chunk
    sock.close()
    report = check_stream(bytes(data))
    for sig in report.signals.values():
        assert sig.gaps, "blocks were dropped"
        flags = [f for _t, f in sig.qualities]
        assert flags[0] == 0x10 and flags[1] == 0, flags  # overrun, then valid again
        assert sig.qualities[0][0] == sig.gaps[0][1], (
            "Overrun flagged at the first block after the gap"
        )
        assert {s.samples for s in report.signals.values()} == {sig.samples}
    info = api.control("get", "info").json()["measurement"]["ports"][0]
    assert info["droppedBlocks"] > 0


@pytest.mark.parametrize("spelling", ["multiSocket", "multi-socket"])
def test_multi_socket_one_port_per_enabled_channel(api: Api, spelling: str) -> None:
    api.ok("put", "/open", json={"performTransducerDetection": False})
    api.ok("put", "/create")
    setup = api.ok("get", "/channels/input/default").json()
    for ch in setup["channels"]:
        ch["destinations"] = [spelling]
        ch["enabled"] = ch["channel"] in (1, 3, 4)
    api.ok("put", "/channels/input", json=setup)
    ports = api.ok("get", "/destination/sockets").json()["tcpPorts"]
    assert len(ports) == 3 and ports[0] == api.module.stream_port and len(set(ports)) == 3
    readers = [StreamReader(api.module.host, p) for p in ports]
    api.ok("post", "/measurements")
    time.sleep(0.3)
    api.ok("put", "/measurements/stop")
    reports = [check_stream(r.wait_closed()) for r in readers]
    for sid, report in enumerate(reports, start=1):
        assert list(report.signals) == [sid]  # the single-socket signal id (Q8)
        assert report.order[0] == "interpretation" and report.by_type["interpretation"] == 1
        assert report.signal(sid).samples > 0
    assert len({r.signal(i).first_time for i, r in enumerate(reports, start=1)}) == 1
    api.ok("put", "/finish")
    api.ok("put", "/create")
    for ch in setup["channels"]:
        ch["destinations"] = ["socket"]
    api.ok("put", "/channels/input", json=setup)
    assert api.ok("get", "/destination/sockets").json()["tcpPorts"] == [api.module.stream_port]


def test_second_measurement_is_a_new_stream(api: Api) -> None:
    api.configure()
    t0s = []
    for _ in range(2):
        reader = connect(api)
        api.ok("post", "/measurements")
        time.sleep(0.2)
        api.ok("put", "/measurements/stop")
        report = check_stream(reader.wait_closed())
        assert report.order[:6] == ["interpretation"] * 6
        t0s.append(report.signal(1).first_time)
    assert t0s[1] > t0s[0]


def test_requests_library_address_form(start_rig) -> None:
    rig = start_rig(2)
    assert all(a.startswith("127.0.0.1:") for a in rig.addresses)
    for addr in rig.addresses:
        assert requests.get(f"http://{addr}/rest/rec/onchange", timeout=5).ok
