"""Socket.IO: a full snapshot on connect, then coalesced changes; binary waveforms; control
events checked for role; viewer counts."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

from tests.support.live_packets import unpacked
from webapp.capture import events as ev
from webapp.engine.state import LiveState
from webapp.web.live import LiveHub


def received_until(client, predicate, timeout: float = 3.0) -> list[dict]:
    """Collect packets until ``predicate(all_packets)`` holds."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.extend(unpacked(client.get_received()))
        if predicate(got):
            return got
        time.sleep(0.01)
    raise AssertionError(f"not received in time; got {[p['name'] for p in got]}")


def names(packets) -> list[str]:
    return [p["name"] for p in packets]


def test_state_on_connect_then_changes(app, dash, bus):
    bus.publish(ev.PhaseChanged(phase="recording", previous="connecting"))
    bus.publish(ev.RecordingTime(elapsed_s=1.5, duration_s=5.0))
    client = dash.socketio.test_client(app)
    assert client.is_connected()
    first = unpacked(client.get_received())[0]
    assert first["name"] == "state"
    snap = first["args"][0]
    assert snap["phase"]["phase"] == "recording"
    assert snap["recording-time"]["elapsed_s"] == 1.5
    assert snap["viewers"]["count"] == 1

    bus.publish(ev.RecordingTime(elapsed_s=2.5, duration_s=5.0))
    bus.publish(ev.ChannelFault(module="127.0.3.1", channel=3, anol="curr", cmol="none", cf="none"))
    bus.publish(ev.Error(message="stream socket dropped", module="127.0.3.2"))
    got = received_until(
        client, lambda g: {"recording-time", "channel-fault", "error"} <= set(names(g))
    )
    rec = [p for p in got if p["name"] == "recording-time"][-1]["args"][0]
    assert rec["elapsed_s"] == 2.5
    fault = [p for p in got if p["name"] == "channel-fault"][-1]["args"][0]
    assert fault["127.0.3.1"]["3"]["anol"] == "curr"
    err = [p for p in got if p["name"] == "error"][-1]["args"][0]
    assert err["message"] == "stream socket dropped" and err["module"] == "127.0.3.2"
    client.disconnect()


def test_updates_are_coalesced_to_latest_values(app, dash, bus):
    client = dash.socketio.test_client(app)
    unpacked(client.get_received())
    for i in range(1000):  # far faster than any viewer tick
        bus.publish(ev.RecordingTime(elapsed_s=i / 100, duration_s=None))
    got = received_until(
        client,
        lambda g: any(
            p["name"] == "recording-time" and p["args"][0]["elapsed_s"] == 9.99 for p in g
        ),
    )
    sent = [p for p in got if p["name"] == "recording-time"]
    assert len(sent) < 50  # coalesced, not 1000 packets
    client.disconnect()


def test_each_viewer_chooses_its_waveform_sent_as_binary(app, dash, bus):
    bus.publish(
        ev.CaptureStarted(
            capture_id="c1", name="c", folder="", modules=["127.0.3.1", "127.0.3.2"], duration_s=5
        )
    )
    a = dash.socketio.test_client(app)
    b = dash.socketio.test_client(app)
    unpacked(a.get_received())
    unpacked(b.get_received())
    ack = a.emit("select-waveform", {"module": "127.0.3.2", "channel": 2}, callback=True)
    assert ack == {"ok": True, "module": "127.0.3.2", "channel": 2}
    bad = a.emit("select-waveform", {"module": "127.0.3.1", "channel": "2; drop"}, callback=True)
    assert bad["ok"] is False and bad["field"] == "channel"
    half = a.emit("select-waveform", {"module": "127.0.3.1"}, callback=True)
    assert half["ok"] is False

    def block(module: str, channel: int) -> np.ndarray:
        values = (np.sin(np.linspace(0, 20, 1024)) * channel).astype(np.float32)
        unit = "Pa" if channel == 1 else "V"
        bus.publish(
            ev.Waveform(
                module=module, channel=channel, sample_rate=8192.0, unit=unit, values=values
            )
        )
        return values

    for module in ("127.0.3.1", "127.0.3.2"):
        for channel in (3, 2, 1):
            block(module, channel)
    # a sees the channel it chose; b, which chose nothing, sees the master's first channel.
    for viewer, want in ((a, ("127.0.3.2", 2)), (b, ("127.0.3.1", 1))):
        got = received_until(viewer, lambda g: "waveform" in names(g))
        waves = [p["args"][0] for p in got if p["name"] == "waveform"]
        assert {(w["module"], w["channel"]) for w in waves} == {want}
        wave = waves[-1]
        assert isinstance(wave["values"], bytes)
        expected = (np.sin(np.linspace(0, 20, 1024)) * want[1]).astype(np.float32)
        assert np.array_equal(np.frombuffer(wave["values"], "<f4"), expected)
        assert wave["sample_rate"] == 8192.0
        assert wave["unit"] == ("Pa" if want[1] == 1 else "V")
    # Back to the default: the latest block of the master's first channel comes at once.
    assert a.emit("select-waveform", {"module": None, "channel": None}, callback=True)["ok"]
    got = received_until(a, lambda g: "waveform" in names(g))
    assert [
        (p["args"][0]["module"], p["args"][0]["channel"]) for p in got if p["name"] == "waveform"
    ][-1] == ("127.0.3.1", 1)
    a.disconnect()
    b.disconnect()


def test_viewer_count_follows_connections(app, dash):
    a = dash.socketio.test_client(app)
    b = dash.socketio.test_client(app)
    assert unpacked(b.get_received())[0]["args"][0]["viewers"]["count"] == 2
    b.disconnect()
    got = received_until(
        a, lambda g: any(p["name"] == "viewers" and p["args"][0]["count"] == 1 for p in g)
    )
    assert got
    assert dash.hub.viewer_count == 1
    a.disconnect()
    assert dash.hub.viewer_count == 0


def test_control_events_over_socketio(app, dash, client, orchestrator):
    for address in ("127.0.3.1", "127.0.3.2"):
        client.post("/api/rig/modules", json={"address": address})
    sio = dash.socketio.test_client(app)
    unpacked(sio.get_received())
    ack = sio.emit("capture:start", {"name": "Bad", "duration_s": -2}, callback=True)
    assert ack["ok"] is False and ack["field"] == "duration_s"
    assert orchestrator.calls == []
    ack = sio.emit("capture:start", {"name": "Good", "duration_s": 2}, callback=True)
    assert ack["ok"] is True and ack["capture_id"].endswith("Good")
    ack = sio.emit("capture:stop", callback=True)
    assert ack["ok"] is True
    assert [c[0] for c in orchestrator.calls] == ["start", "stop"]
    sio.disconnect()


def test_the_publisher_never_sends(app, dash, bus, monkeypatch):
    """Publishing only folds: every emit happens on a viewer's own sender, never on the
    thread that publishes (the orchestrator or a stream receiver)."""
    import threading

    emitted_on: list[int] = []
    real_emit = dash.socketio.emit

    def recording_emit(*args, **kwargs):
        emitted_on.append(threading.get_ident())
        return real_emit(*args, **kwargs)

    slow = dash.socketio.test_client(app)  # never reads its packets
    monkeypatch.setattr(dash.socketio, "emit", recording_emit)
    for i in range(2000):
        bus.publish(ev.StreamStats(module="127.0.3.1", bytes_received=i, rate_bps=1e6))
    received_until(slow, lambda g: any(p["name"] == "stream-stats" for p in g))
    assert emitted_on and threading.get_ident() not in emitted_on
    slow.disconnect()


def test_a_push_is_one_packet_encoded_once_for_every_viewer(app, dash, bus, monkeypatch):
    """Many viewers cost one emit (one encoding) per push, not one per viewer; and a push of
    several changed topics and log entries is one ``update`` packet, not one per topic."""
    viewers = [dash.socketio.test_client(app) for _ in range(5)]
    for v in viewers:
        unpacked(v.get_received())
    received_until(viewers[0], lambda g: any(p["name"] == "viewers" for p in g))
    emits: list[tuple[str, object, object]] = []
    real_emit = dash.socketio.emit

    def counting_emit(event, data=None, **kwargs):
        emits.append((event, data, kwargs.get("to")))
        return real_emit(event, data, **kwargs)

    monkeypatch.setattr(dash.socketio, "emit", counting_emit)
    # Hold the sender until all three changes are in, so that they are one push.
    release = threading.Event()
    real_push = dash.hub.push
    monkeypatch.setattr(dash.hub, "push", lambda: (release.wait(5), real_push()))
    bus.publish(ev.RecordingTime(elapsed_s=4.25, duration_s=None))
    bus.publish(ev.StreamStats(module="127.0.3.1", bytes_received=7, rate_bps=1e6))
    bus.publish(ev.Warning(message="disk 90 % full"))
    release.set()
    for v in viewers:
        got = received_until(
            v, lambda g: {"recording-time", "stream-stats", "warning"} <= set(names(g))
        )
        assert [p["args"][0]["elapsed_s"] for p in got if p["name"] == "recording-time"] == [4.25]
    assert [(event, sorted(data["topics"]), [e["message"] for e in data["log"]], len(to))
            for event, data, to in emits] == [
        ("update", ["recording-time", "stream-stats"], ["disk 90 % full"], 5)
    ]  # fmt: skip
    for v in viewers:
        v.disconnect()


def test_a_viewer_behind_catches_up_on_latest_values_without_repeats(app, dash, bus, monkeypatch):
    slow = dash.socketio.test_client(app)
    fast = dash.socketio.test_client(app)
    unpacked(slow.get_received())
    unpacked(fast.get_received())
    slow_sid = dash.hub.viewers_sids()[0]
    held = {"on": True}
    real_pending = dash.hub._pending
    monkeypatch.setattr(
        dash.hub,
        "_pending",
        lambda sid: 10**6 if held["on"] and sid == slow_sid else real_pending(sid),
    )
    for i in range(1, 6):
        bus.publish(ev.RecordingTime(elapsed_s=float(i), duration_s=None))
        bus.publish(ev.Warning(message=f"warning {i}"))
        received_until(
            fast,
            lambda g, i=i: any(
                p["name"] == "recording-time" and p["args"][0]["elapsed_s"] == i for p in g
            ),
        )
    assert "recording-time" not in names(unpacked(slow.get_received()))  # left out while behind
    held["on"] = False
    got = received_until(
        slow,
        lambda g: any(
            p["name"] == "recording-time" and p["args"][0]["elapsed_s"] == 5.0 for p in g
        ),
    )
    assert [p["args"][0]["elapsed_s"] for p in got if p["name"] == "recording-time"] == [5.0]
    warnings = [p["args"][0]["message"] for p in got if p["name"] == "warning"]
    assert warnings == [f"warning {i}" for i in range(1, 6)]  # every entry, once each
    slow.disconnect()
    fast.disconnect()


def test_a_lost_ptp_lock_is_logged_once_as_the_orchestrator_reports_it(dash, bus):
    module = "127.0.3.2"
    bus.publish(ev.PhaseChanged(phase="ptp-lock", previous="ptp-sync"))
    bus.publish(
        ev.ModuleStatus(
            module=module, module_state="Idle", input_status="Unknown", ptp_status="Locked"
        )
    )
    bus.publish(ev.PhaseChanged(phase="recording", previous="connecting"))
    bus.publish(
        ev.ModuleStatus(
            module=module,
            module_state="RecorderRecording",
            input_status="Streaming",
            ptp_status="Locked",
        )
    )
    assert dash.state.snapshot()["log"] == []
    bus.publish(
        ev.ModuleStatus(
            module=module,
            module_state="RecorderRecording",
            input_status="Streaming",
            ptp_status="Unlocked",
        )
    )
    # The status change alone is shown as such; the warning is the orchestrator's (it stands in
    # the capture's record too) and is logged once, as it comes.
    assert dash.state.snapshot()["log"] == []
    message = "module 1 lost PTP lock (ptpStatus Unlocked): its samples are no longer synchronous"
    bus.publish(ev.Warning(message=message, module=module))
    log = dash.state.snapshot()["log"]
    assert len(log) == 1 and log[0]["level"] == "warning" and log[0]["module"] == module
    assert log[0]["message"] == message


def test_a_failure_reported_as_it_happened_is_not_logged_twice(dash, bus):
    message = "module 127.0.3.2: the module closed its stream socket after 100 bytes"
    bus.publish(ev.Error(message=message, module="127.0.3.2", request="stream"))
    bus.publish(ev.CaptureFinished(capture_id="c1", outcome="failed", reason=message, folder=""))
    bus.publish(
        ev.CaptureFinished(capture_id="c2", outcome="failed", reason="another reason", folder="")
    )
    log = dash.state.snapshot()["log"]
    assert [e["message"] for e in log] == [message, "another reason"]
    assert dash.state.snapshot()["capture"]["last"]["reason"] == "another reason"


def test_the_orchestrator_decodes_only_the_waveforms_viewers_show(app, dash, client, orchestrator):
    for address in ("127.0.3.1", "127.0.3.2"):
        client.post("/api/rig/modules", json={"address": address})
    wait = time.monotonic() + 3
    while len(dash.state.get("setup")["setup"]["channels"]) < 2 and time.monotonic() < wait:
        time.sleep(0.01)  # the probes bring each module's channels
    assert orchestrator.watched == set()  # nobody watches: nothing to decode
    a = dash.socketio.test_client(app)
    assert orchestrator.watched == {("127.0.3.1", 1)}  # the master's first channel
    a.emit("select-waveform", {"module": "127.0.3.2", "channel": 3}, callback=True)
    assert orchestrator.watched == {("127.0.3.2", 3)}
    b = dash.socketio.test_client(app)
    assert orchestrator.watched == {("127.0.3.2", 3), ("127.0.3.1", 1)}
    # The master's first channel follows the setup: channel 1 disabled makes it channel 2.
    rows = dash.state.get("setup")["setup"]["channels"]["127.0.3.1"]
    rows[0]["enabled"] = False
    r = client.put("/api/setup", json={"channels": {"127.0.3.1": rows}})
    assert r.status_code == 200, r.get_json()
    received_until(b, lambda g: "setup" in names(g))
    deadline = time.monotonic() + 3
    while orchestrator.watched != {("127.0.3.2", 3), ("127.0.3.1", 2)}:
        assert time.monotonic() < deadline, orchestrator.watched
        time.sleep(0.02)
    b.disconnect()
    assert orchestrator.watched == {("127.0.3.2", 3)}
    a.disconnect()
    assert orchestrator.watched == set()


def test_concurrent_watch_refreshes_leave_the_latest_selection_in_force():
    entered, release = threading.Event(), threading.Event()
    block = False
    applied: list[frozenset] = []

    def watch(channels: frozenset) -> None:
        if block and not entered.is_set():
            entered.set()
            release.wait(10)
        applied.append(channels)

    socketio = SimpleNamespace(start_background_task=lambda *a, **k: None)
    hub = LiveHub(socketio, LiveState(), watch_waveforms=watch)  # type: ignore[arg-type]
    hub.connect("viewer")
    block = True
    older = threading.Thread(target=hub.select_waveform, args=("viewer", "m", 1))
    older.start()
    assert entered.wait(10)  # the older selection is being applied, slowly
    newer = threading.Thread(target=hub.select_waveform, args=("viewer", "m", 2))
    newer.start()
    newer.join(0.2)  # let the newer one run ahead if nothing orders the two
    release.set()
    older.join(10)
    newer.join(10)
    assert applied[-1] == frozenset({("m", 2)})


def test_disarming_clears_the_overload_latch_of_the_last_levels():
    state = LiveState()
    level = {"channel": 1, "db": 94.0, "overload": True, "overload_reason": "clipped in the data"}
    state.on_event(ev.PhaseChanged(phase=ev.Phase.ARMED, previous=ev.Phase.STARTING_STREAM))
    state.on_event(ev.Levels(module="m", levels=[level]))
    state.on_event(ev.PhaseChanged(phase=ev.Phase.STOPPING, previous=ev.Phase.RECORDING))
    state.on_event(ev.PhaseChanged(phase=ev.Phase.ARMED, previous=ev.Phase.STOPPING))
    assert state.get("levels")["m"]["levels"][0]["overload"]  # held after the measurement
    state.on_event(ev.PhaseChanged(phase=ev.Phase.DISARMING, previous=ev.Phase.ARMED))
    (kept,) = state.get("levels")["m"]["levels"]
    assert kept["db"] == 94.0 and not kept["overload"] and kept["overload_reason"] is None
