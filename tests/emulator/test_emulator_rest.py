"""The REST side of an emulated module: states, 403/400/404/405 rules, client quirks, onchange."""

from __future__ import annotations

import threading
import time

import requests

from .conftest import Api


def test_idle_status_and_module_info(api: Api) -> None:
    status = api.status()
    assert status["moduleState"] == "Idle"
    assert status["inputStatus"] == "Unknown"
    assert status["ptpStatus"] == "Locked"  # stand-alone after boot
    assert status["lastUpdateTag"] >= 1
    assert "recordingStatus" not in status
    info = api.ok("get", "/module/info").json()
    assert info["module"]["type"]["number"] == "3050"
    assert info["numberOfInputChannels"] == 6
    assert info["supportedSampleRates"][0] == 131072
    assert info["supportedSampleRates"] == sorted(info["supportedSampleRates"], reverse=True)
    assert len(str(info["module"]["serial"])) == 6
    # PUT module/info answers like GET (a tutorial snippet does it).
    assert api.ok("put", "/module/info").json() == info


def test_single_module_state_machine(api: Api) -> None:
    api.ok("put", "/open", json={"performTransducerDetection": False})
    s = api.status()
    assert (s["moduleState"], s["inputStatus"]) == ("RecorderOpened", "Sampling")
    api.ok("put", "/create")
    s = api.status()
    assert s["moduleState"] == "RecorderConfiguring"
    assert s["recordingStatus"]["timeElapsed"] == "00:00:00"
    setup = api.ok("get", "/channels/input/default").json()
    assert setup["channels"][0]["destinations"] == ["sd"]  # single module: SD card by default
    for ch in setup["channels"]:
        ch["destinations"] = ["socket"]
    api.ok("put", "/channels/input", json=setup)
    s = api.status()
    assert (s["moduleState"], s["inputStatus"]) == ("RecorderStreaming", "Streaming")
    assert api.ok("get", "/destination/socket").json()["tcpPort"] == api.module.stream_port
    assert api.ok("get", "/channels/input").json()["channels"][0]["destinations"] == ["socket"]
    api.ok("post", "/measurements")
    assert api.status()["moduleState"] == "RecorderRecording"
    api.ok("put", "/measurements/stop")
    assert api.status()["moduleState"] == "RecorderStreaming"
    api.ok("put", "/measurements/start")  # REF17's name for a restart: an alias
    api.ok("put", "/measurements/stop")
    api.ok("put", "/finish")
    s = api.status()
    assert (s["moduleState"], s["inputStatus"]) == ("RecorderOpened", "Sampling")
    assert "recordingStatus" not in s
    api.ok("put", "/close")
    s = api.status()
    assert (s["moduleState"], s["inputStatus"]) == ("Idle", "Unknown")


def test_wrong_state_is_403_with_a_message(api: Api) -> None:
    for method, path in [
        ("put", "/create"),
        ("put", "/close"),
        ("put", "/finish"),
        ("post", "/measurements"),
        ("put", "/measurements/stop"),
        ("get", "/destination/socket"),
        ("put", "/synchronize"),
    ]:
        r = getattr(api, method)(path)
        assert r.status_code == 403, path
        assert "Idle" in r.text and r.headers["Content-Type"].startswith("text/plain")
    api.ok("put", "/open")
    assert api.put("/open").status_code == 403
    api.ok("put", "/create")
    assert (
        api.put("/syncmode", json={"synchronization": {"mode": "stand-alone"}}).status_code == 403
    )
    # synchronize/startstreaming belong to multi-module sessions
    assert api.put("/synchronize").status_code == 403
    api.ok("put", "/cancel")
    assert api.status()["moduleState"] == "RecorderOpened"


def test_sd_destination_without_card_is_refused(api: Api) -> None:
    api.configure(destination="sd")
    r = api.post("/measurements")
    assert r.status_code == 403 and "SD card" in r.text


def test_bad_bodies_are_400(api: Api) -> None:
    assert api.put("/syncmode", data="{not json").status_code == 400
    assert api.put("/syncmode", json={"synchronization": {"mode": "gps"}}).status_code == 400
    assert api.put("/syncmode", json={"synchronization": {"mode": "ptp"}}).status_code == 400
    assert api.put("/module/time", data="yesterday").status_code == 400
    assert api.get("/onchange", params={"last": "x"}).status_code == 400
    api.ok("put", "/open", json={"singleModule": True})
    api.ok("put", "/create")
    setup = api.ok("get", "/channels/input/default").json()

    def rejected(change) -> str:
        import copy

        bad = copy.deepcopy(setup)
        change(bad)
        r = api.put("/channels/input", json=bad)
        assert r.status_code == 400, r.text
        return r.text

    assert "bandwidth" in rejected(lambda s: s["channels"][0].update(bandwidth="102.4 kHz"))
    assert "same bandwidth" in rejected(lambda s: s["channels"][1].update(bandwidth="25.6 kHz"))
    assert "range" in rejected(lambda s: s["channels"][0].update(range="3 Vpeak"))
    assert "filter" in rejected(lambda s: s["channels"][0].update(filter="1 Hz"))
    assert "destination" in rejected(lambda s: s["channels"][0].update(destinations=["usb"]))
    assert "same destination" in rejected(
        lambda s: s["channels"][1].update(destinations=["socket"])
    )
    assert "channel 7" in rejected(
        lambda s: s["channels"].append(dict(s["channels"][0], channel=7))
    )
    assert "no channel" in rejected(lambda s: [c.update(enabled=False) for c in s["channels"]])
    assert api.put("/channels/input", data="[]").status_code == 400
    assert api.status()["moduleState"] == "RecorderConfiguring"


def test_unknown_path_404_wrong_method_405_and_case_insensitive_paths(api: Api) -> None:
    assert api.get("/no/such/thing").status_code == 404
    r = api.session.delete(api.base + "/channels/input", timeout=5)
    assert r.status_code == 405
    assert api.post("/open").status_code == 405
    assert api.session.put(api.module.url + "/REST/Rec/Open", timeout=5).status_code == 200
    assert api.get("/OnChange").json()["moduleState"] == "RecorderOpened"


def test_client_quirks(api: Api) -> None:
    # Extra closing braces after the JSON (HBK's C# examples) and a UTF-8 BOM.
    body = '\ufeff{"synchronization": {"mode": "stand-alone" } } }'
    api.ok("put", "/syncmode", data=body.encode(), headers={"Content-Type": "application/json"})
    # module/time: bare digits, any content type, also as a form field.
    api.ok("put", "/module/time", data=str(int(time.time() * 1000)))
    api.ok(
        "put", "/module/time", data="1700000000000", headers={"Content-Type": "application/json"}
    )
    api.ok(
        "put",
        "/module/time",
        data="1700000000000",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # open as a MATLAB form body with true/false
    api.ok(
        "put",
        "/open",
        data="performTransducerDetection=false&singleModule=true",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert api.status()["transducerDetectionActive"] is False
    api.ok("put", "/create")
    setup = api.ok("get", "/channels/input/default").json()
    # Partial channel list (2 of 6), 0/1 flags, mis-cased and unknown keys.
    two = []
    for ch in setup["channels"][:2]:
        entry = {k.upper() if k == "range" else k: v for k, v in ch.items()}
        entry["destinations"] = ["socket"]
        entry["ccld"] = 1
        entry["polvolt"] = 0
        entry["ConnectorSelect"] = "BNC"
        entry["hats"] = False
        entry["transducer"] = dict(entry["transducer"], requiresCcld=1, requires200V=0, teds="AA==")
        two.append(entry)
    api.ok("put", "/channels/input", json={"channels": two, "Name": "two channels"})
    echoed = api.ok("get", "/channels/input").json()
    assert [c["channel"] for c in echoed["channels"]] == [1, 2]
    assert (
        echoed["channels"][0]["ccld"] is True and echoed["channels"][0]["ConnectorSelect"] == "BNC"
    )
    assert echoed["Name"] == "two channels"
    assert api.ok("get", "/destination/sockets").json() == {"tcpPorts": [api.module.stream_port]}
    api.ok("post", "/measurements")
    s = api.status()
    cs = s["recordingStatus"]["channelStatus"]
    assert len(cs) == 6 and cs[2] is None and cs[0]["anol"] == "none"


def test_onchange_long_poll(api: Api) -> None:
    s = api.get("/onchange", params={"last": 0}).json()  # last=0 answers at once
    tag = s["lastUpdateTag"]
    assert tag >= 1
    answered: list[dict] = []

    def poll() -> None:
        answered.append(
            api.session.get(api.base + "/onchange", params={"last": tag}, timeout=10).json()
        )

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.2)
    assert not answered, "a long poll with the current tag must wait"
    requests.put(api.base + "/open", json={"performTransducerDetection": False}, timeout=5)
    t.join(5)
    assert answered and answered[0]["lastUpdateTag"] > tag
    assert answered[0]["moduleState"] == "RecorderOpened"


def test_long_poll_times_out_with_the_same_tag(start_rig) -> None:
    api = Api(start_rig(1, long_poll_seconds=0.3).modules[0])
    tag = api.status()["lastUpdateTag"]
    t0 = time.monotonic()
    s = api.get("/onchange", params={"last": tag}).json()
    assert 0.25 < time.monotonic() - t0 < 3
    assert s["lastUpdateTag"] == tag


def test_many_long_polls_do_not_block_each_other(start_rig) -> None:
    api = Api(start_rig(1, max_connections=40).modules[0])
    tag = api.status()["lastUpdateTag"]
    results: list[int] = []

    def poll() -> None:
        r = requests.get(api.base + "/onchange", params={"last": tag}, timeout=10)
        results.append(r.json()["lastUpdateTag"])

    threads = [threading.Thread(target=poll) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    api.ok("put", "/open", json={"performTransducerDetection": False})
    for t in threads:
        t.join(5)
    assert len(results) == 20 and all(r > tag for r in results)
    assert time.monotonic() - t0 < 3


def test_too_many_connections_answer_503(start_rig) -> None:
    api = Api(start_rig(1, max_connections=2).modules[0])
    tag = api.status()["lastUpdateTag"]
    threads = [
        threading.Thread(
            target=lambda: requests.get(api.base + "/onchange", params={"last": tag}, timeout=10)
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    assert api.get("/module/info").status_code == 503
    # A fault set through the emulator endpoint (not counted) changes the status: polls end.
    api.control("post", "faults", json={"kind": "cmol", "arg": 1})
    for t in threads:
        t.join(5)
    assert api.get("/module/info").status_code == 200


def test_detection_flag_is_true_right_after_post(start_rig) -> None:
    api = Api(start_rig(1, teds_seconds=0.3).modules[0])
    assert api.ok("get", "/channels/input/all/transducers").json() == [None] * 6
    tags = api.status()
    api.ok("post", "/channels/input/all/transducers/detect")
    assert api.get("/onchange", params={"last": 0}).json()["transducerDetectionActive"] is True
    s = api.wait_for("transducerDetectionActive", False)
    assert s["lastTransducerUpdateTag"] > tags["lastTransducerUpdateTag"]
    found = api.ok("get", "/channels/input/all/transducers").json()
    assert len(found) == 6 and found[2:] == [None] * 4
    mic, acc = found[0], found[1]
    assert (mic["type"]["number"], mic["unit"], mic["requiresCcld"], mic["requires200V"]) == (
        "4189",
        "Pa",
        1,
        0,
    )
    assert isinstance(mic["type"]["number"], str) and isinstance(mic["requiresCcld"], int)
    assert (acc["type"]["number"], acc["type"]["model"], acc["unit"]) == ("4533", "B", "m/s^2")
    # open with detection (the default) runs it too
    api.ok("put", "/open")
    assert api.status()["transducerDetectionActive"] is True


def test_detection_refused_while_recording(api: Api) -> None:
    api.configure()
    api.ok("post", "/measurements")
    assert api.post("/channels/input/all/transducers/detect").status_code == 403


def test_syncmode_get_put(api: Api) -> None:
    s = api.ok("get", "/syncmode").json()["synchronization"]
    assert s["mode"] == "stand-alone"
    api.ok(
        "put",
        "/syncmode",
        json={
            "synchronization": {
                "mode": "ptp",
                "domain": 42,
                "preferredMaster": 1,
                "settime": 1,
                "difftime": 0,
            }
        },
    )
    s = api.ok("get", "/syncmode").json()["synchronization"]
    assert (s["mode"], s["domain"], s["preferredMaster"], s["triggerMaster"]) == (
        "ptp",
        42,
        True,
        True,
    )
    assert s["usegps"] is False and s["UtcTaiOffset"] == 37
    # only settime: the mode stays
    api.ok("put", "/syncmode", json={"synchronization": {"settime": 1700000000000, "difftime": 0}})
    assert api.ok("get", "/syncmode").json()["synchronization"]["mode"] == "ptp"


def test_modules_without_ptp_refuse_ptp_sync(start_rig) -> None:
    rig = start_rig(2, types="3677,3676")
    for m in rig.modules:
        api = Api(m)
        r = api.put(
            "/syncmode",
            json={"synchronization": {"mode": "ptp", "domain": 42, "preferredMaster": True}},
        )
        assert r.status_code == 400 and "not supported" in r.text
        api.ok("put", "/syncmode", json={"synchronization": {"mode": "stand-alone"}})
        assert api.status()["ptpStatus"] == "Locked"
        info = api.ok("get", "/module/info").json()
        assert info["module"]["type"]["number"] == m.type_number


def test_module_types(start_rig) -> None:
    rig = start_rig(4, types=["3160", "3053", "3057", "3050"])
    expected = {
        "3160": (4, 2, 131072),
        "3053": (12, 0, 65536),
        "3057": (3, 0, 262144),
        "3050": (6, 0, 131072),
    }
    for m in rig.modules:
        info = Api(m).ok("get", "/module/info").json()
        n_in, n_out, rate = expected[m.type_number]
        assert (info["numberOfInputChannels"], info["numberOfOutputChannels"]) == (n_in, n_out)
        assert info["supportedSampleRates"][0] == rate
        setup = Api(m).ok("get", "/channels/input/default").json()
        assert len(setup["channels"]) == n_in


def test_reboot_goes_away_and_comes_back_idle(api: Api) -> None:
    api.configure()
    api.ok("put", "/reboot")
    t0 = time.monotonic()
    try:
        r = requests.get(api.base + "/onchange", timeout=0.15)
        raise AssertionError(f"a rebooting module answered {r.status_code}")
    except requests.RequestException:
        pass
    deadline = time.monotonic() + 5
    while True:
        try:
            s = requests.get(api.base + "/onchange", timeout=1).json()
            break
        except requests.RequestException:
            assert time.monotonic() < deadline
    assert time.monotonic() - t0 >= 0.25
    assert s["moduleState"] == "Idle"


def test_request_log_records_every_request_in_order(api: Api) -> None:
    api.control("delete", "requests")
    api.ok("put", "/open", json={"performTransducerDetection": False})
    api.ok("put", "/create")
    api.put("/close")
    log = api.control("get", "requests").json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("PUT", "/rest/rec/open", 200),
        ("PUT", "/rest/rec/create", 200),
        ("PUT", "/rest/rec/close", 403),
    ]
    assert '"performTransducerDetection": false' in log[0]["body"]
    info = api.control("get", "info").json()
    assert info["type"] == "3050" and info["streamPorts"] == [api.module.stream_port]
