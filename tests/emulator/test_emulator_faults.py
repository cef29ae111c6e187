"""Fault injection: spec syntax, channel faults in status and stream, HTTP and network faults."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests
from streamcheck import check_stream

from webapp.emulator.faults import (
    ChannelFaultTimeline,
    FaultKind,
    FaultSpecError,
    parse_fault_spec,
)

from .conftest import Api, StreamReader

FULL = 1 << 23


def test_fault_spec_syntax() -> None:
    spec = parse_fault_spec("2:overload:3@1.5+2")
    assert (spec.module, spec.fault.kind, spec.fault.channel) == (2, FaultKind.OVERLOAD, 3)
    assert (spec.at_seconds, spec.duration) == (1.5, 2.0)
    spec = parse_fault_spec("1:http-500:/rest/rec/Measurements/Stop")
    assert spec.fault.arg == "measurements/stop" and spec.at_seconds is None
    assert parse_fault_spec("3:unreachable@4").at_seconds == 4.0
    for bad in [
        "overload:1",
        "0:overload:1",
        "1:overload",
        "1:overload:x",
        "1:melt",
        "1:unreachable:2",
        "1:http-500",
    ]:
        with pytest.raises(FaultSpecError):
            parse_fault_spec(bad)


def test_timeline_answers_for_past_blocks() -> None:
    tl = ChannelFaultTimeline()
    tl.set(FaultKind.OVERLOAD, 1, True, 100)
    tl.set(FaultKind.CMOL, 2, True, 200)
    tl.set(FaultKind.OVERLOAD, 1, False, 300)
    assert tl.at(50) == frozenset()
    assert tl.at(100) == {(FaultKind.OVERLOAD, 1)}
    assert tl.at(250) == {(FaultKind.OVERLOAD, 1), (FaultKind.CMOL, 2)}
    assert tl.at(300) == {(FaultKind.CMOL, 2)}
    tl.prune(260)
    assert tl.at(260) == {(FaultKind.OVERLOAD, 1), (FaultKind.CMOL, 2)}
    assert tl.at(400) == {(FaultKind.CMOL, 2)}


def record(api: Api, seconds: float, during=None) -> tuple[dict, list[dict]]:
    """Run a measurement, calling during(api) half way; returns (stream report, statuses)."""
    reader = StreamReader(api.module.host, api.ok("get", "/destination/socket").json()["tcpPort"])
    api.ok("post", "/measurements")
    statuses = []
    time.sleep(seconds / 2)
    if during:
        statuses.extend(during(api) or [])
    time.sleep(seconds / 2)
    api.ok("put", "/measurements/stop")
    statuses.append(api.status())
    return check_stream(reader.wait_closed(), keep_values=True), statuses


def fault(api: Api, **body) -> dict:
    r = api.control("post", "faults", json=body)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(
    ("kind", "field", "flag"),
    [("overload", "anol", 0x02), ("cable-fault", "cf", 0x08), ("cmol", "cmol", 0x08)],
)
def test_channel_fault_in_status_and_stream(api: Api, kind: str, field: str, flag: int) -> None:
    api.configure()

    def during(api: Api) -> list[dict]:
        fault(api, kind=kind, arg=3)
        curr = api.status()
        time.sleep(0.3)
        snapshot = fault(api, kind=kind, arg=3, clear=True)
        assert snapshot["active"] == []
        return [curr, api.status()]

    report, (curr, prev, after) = record(api, 1.2, during)
    assert curr["recordingStatus"]["channelStatus"][2][field] == "curr"
    assert prev["recordingStatus"]["channelStatus"][2][field] == "prev"
    assert after["recordingStatus"]["channelStatus"][2][field] == "prev"
    assert curr["recordingStatus"]["channelStatus"][1][field] == "none"
    sig = report.signal(3)
    flags = [f for _t, f in sig.qualities]
    assert flags == [flag, 0], "one message when the fault starts, one when it ends"
    (t_on, _), (t_off, _) = sig.qualities
    assert all(not s.qualities for sid, s in report.signals.items() if sid != 3)
    values = sig.values()
    period = sig.period_ticks
    start = (t_on - sig.first_time) // period
    end = (t_off - sig.first_time) // period
    inside, outside = values[start:end], np.concatenate([values[:start], values[end:]])
    assert outside.max() < FULL // 2  # the 1 V tone at 10 Vpeak
    if kind == "overload":
        assert inside.max() == FULL - 1 and inside.min() == -FULL  # really clipped
    elif kind == "cable-fault":
        assert not inside.any()  # nothing arrives
    else:
        # common-mode overload: the samples are the same signal (flagged only)
        assert abs(int(inside.max()) - int(outside.max())) < 0.01 * outside.max()


def test_signal_beyond_the_range_clips_by_itself(api: Api) -> None:
    setup = api.configure()
    setup["channels"][2]["range"] = "0.316 Vpeak"  # the 1 V tone does not fit
    api.ok("put", "/finish")
    api.ok("put", "/create")
    api.ok("put", "/channels/input", json=setup)
    report, (status,) = record(api, 0.4)
    assert status["recordingStatus"]["channelStatus"][2]["anol"] == "curr"
    assert [f for _t, f in report.signal(3).qualities] == [0x02]
    assert report.signal(3).values().max() == FULL - 1


def test_scheduled_fault_from_a_spec(start_rig) -> None:
    rig = start_rig(1, faults=["1:overload:1@0.3+0.3"])
    api = Api(rig.modules[0])
    assert api.control("get", "faults").json()["scheduled"][0]["fault"] == "overload:1"
    api.configure()
    report, _ = record(api, 1.2)
    (t_on, f_on), (t_off, f_off) = report.signal(1).qualities
    t0 = report.signal(1).first_time
    assert (f_on, f_off) == (0x02, 0)
    assert 0.25 < (t_on - t0) / 2**32 < 0.45
    assert 0.25 < (t_off - t_on) / 2**32 < 0.45
    assert api.control("get", "faults").json()["active"] == []


def test_http_500_on_one_path(start_rig) -> None:
    api = Api(start_rig(1, faults=["1:http-500:create"]).modules[0])
    api.ok("put", "/open")
    r = api.put("/create")
    assert r.status_code == 500 and "create" in r.text
    assert api.status()["moduleState"] == "RecorderOpened"
    fault(api, kind="http-500", arg="/rest/rec/create", clear=True)
    api.ok("put", "/create")


def test_unreachable_module_answers_nothing_until_cleared(api: Api) -> None:
    api.configure()
    reader = StreamReader(api.module.host, api.module.stream_port)
    api.ok("post", "/measurements")
    fault(api, kind="unreachable")
    with pytest.raises(requests.RequestException):
        requests.get(api.base + "/onchange", timeout=0.3)
    size = len(reader.data)
    time.sleep(0.3)
    assert len(reader.data) - size < 100_000, "the stream stalls too"
    fault(api, kind="unreachable", clear=True)
    assert api.status()["moduleState"] == "RecorderRecording"
    api.ok("put", "/measurements/stop")
    report = check_stream(reader.wait_closed())
    assert report.signal(1).samples > 0


def test_stream_drop_then_reconnect_flags_the_loss(api: Api) -> None:
    api.configure()
    first = StreamReader(api.module.host, api.module.stream_port)
    api.ok("post", "/measurements")
    time.sleep(0.3)
    fault(api, kind="stream-drop")
    lost = first.wait_closed(timeout=2)
    assert lost, "data flowed before the drop"
    time.sleep(0.2)
    second = StreamReader(api.module.host, api.module.stream_port)
    time.sleep(0.3)
    api.ok("put", "/measurements/stop")
    report = check_stream(second.wait_closed())
    assert report.order[:6] == ["interpretation"] * 6
    for sig in report.signals.values():
        assert sig.qualities[0][1] & 0x10, "the new connection hears of the lost data"


def test_ptp_no_lock(start_rig) -> None:
    rig = start_rig(2, faults=["2:ptp-no-lock"], ptp_lock_seconds=0.2)
    master, slave = (Api(m) for m in rig.modules)
    for api, preferred in ((master, True), (slave, False)):
        api.ok(
            "put",
            "/syncmode",
            json={"synchronization": {"mode": "ptp", "domain": 5, "preferredMaster": preferred}},
        )
    master.wait_for("ptpStatus", "Locked")
    time.sleep(0.4)
    assert slave.status()["ptpStatus"] == "Unlocked"
    fault(slave, kind="ptp-no-lock", clear=True)
    slave.wait_for("ptpStatus", "Locked", timeout=3)


def test_fault_endpoint_rejects_nonsense(api: Api) -> None:
    assert api.control("post", "faults", json={"kind": "meltdown"}).status_code == 400
    assert api.control("post", "faults", json={"kind": "overload"}).status_code == 400
    assert api.control("post", "faults", data="[").status_code == 400
    assert api.control("get", "nothing").status_code == 404
    fault(api, kind="cmol", arg=1)
    fault(api, kind="ptp-no-lock")
    assert sorted(api.control("get", "faults").json()["active"]) == ["cmol:1", "ptp-no-lock"]
    assert api.control("delete", "faults").json()["active"] == []


@pytest.mark.parametrize(
    ("module_type", "body", "field"),
    [
        ("3050", {"kind": "overload", "channel": 7}, "channel"),
        ("3050", {"kind": "cable-fault", "arg": 7, "at": 1}, "arg"),
        ("3160", {"kind": "cmol", "channel": 5}, "channel"),
    ],
)
def test_fault_endpoint_rejects_a_channel_the_module_does_not_have(
    start_rig, module_type: str, body: dict, field: str
) -> None:
    api = Api(start_rig(1, module_type=module_type).modules[0])
    channels = 6 if module_type == "3050" else 4
    r = api.control("post", "faults", json=body)
    assert r.status_code == 400
    assert r.text.startswith(f"{field}: ")
    assert f"channel {body.get('channel', body.get('arg'))}" in r.text
    assert f"Type {module_type} has input channels 1 to {channels}" in r.text
    snapshot = api.control("get", "faults").json()
    assert snapshot["active"] == [] and snapshot["scheduled"] == []
    # The module's last channel is a channel like any other.
    assert fault(api, kind=body["kind"], channel=channels)["active"] == [
        f"{body['kind']}:{channels}"
    ]


def test_fault_endpoint_names_the_field_of_other_mistakes(api: Api) -> None:
    r = api.control("post", "faults", json={"kind": "meltdown"})
    assert r.status_code == 400 and r.text.startswith("kind: ")
    r = api.control("post", "faults", json={"kind": "overload", "channel": 0})
    assert r.status_code == 400 and r.text.startswith("channel: ")
    r = api.control("post", "faults", json={"kind": "overload", "channel": 1, "at": "soon"})
    assert r.status_code == 400 and r.text.startswith("at: ")
    r = api.control("post", "faults", json={"kind": "overload", "channel": 1, "duration": -1})
    assert r.status_code == 400 and r.text.startswith("duration: ")
    assert api.control("get", "faults").json()["active"] == []


def test_rig_refuses_a_fault_spec_for_a_channel_the_module_lacks(start_rig) -> None:
    with pytest.raises(FaultSpecError, match="Type 3160 has input channels 1 to 4") as exc:
        start_rig(2, types=["3050", "3160"], faults=["2:overload:5"])
    assert exc.value.field == "arg"
    rig = start_rig(2, types=["3050", "3160"], faults=["1:overload:6", "2:overload:4"])
    assert [Api(m).control("get", "faults").json()["active"] for m in rig.modules] == [
        ["overload:6"],
        ["overload:4"],
    ]


def test_fault_endpoint_aliases(start_rig) -> None:
    api = Api(start_rig(1, module_type="3160").modules[0])
    assert api.ok("get", "/module/info").json()["module"]["type"]["number"] == "3160"
    assert fault(api, kind="overload", channel=2, active=True)["active"] == ["overload:2"]
    assert fault(api, kind="overload", channel=2, active=False)["active"] == []
    assert fault(api, kind="http-500", path="open")["active"] == ["http-500:open"]
