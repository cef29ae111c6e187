"""The orchestrator against in-process fake modules: sequence, order, failures, arm/record."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from tests.capture.fakes import FakeClient, FakeRig, Recorder
from webapp.capture import disarming as disarming_module
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import CaptureBusyError, Orchestrator
from webapp.capture.settings import CaptureSettings, ChannelSettings, SettingsError
from webapp.openapi.client import ModuleError
from webapp.openapi.stream import MessageType, read_messages

A, B, C = "10.9.0.1", "10.9.0.2", "10.9.0.3"


@pytest.fixture
def rig() -> FakeRig:
    return FakeRig()


def make(rig: FakeRig, tmp_path: Path) -> tuple[Orchestrator, Recorder]:
    bus = EventBus()
    rec = Recorder(bus)
    return Orchestrator(bus, tmp_path, client_factory=rig.client), rec


def settings(*modules: str, **kw) -> CaptureSettings:
    kw.setdefault("duration_s", 0.4)
    kw.setdefault("state_timeout_s", 5.0)
    kw.setdefault("ptp_timeout_s", 5.0)
    return CaptureSettings(modules=list(modules), **kw)


def capture_json(folder: Path) -> dict:
    return json.loads((folder / "capture.json").read_text())


def first_index(log: list[tuple[str, str]], address: str, request: str) -> int:
    return next(i for i, entry in enumerate(log) if entry == (address, request))


# --- a whole synchronized capture --------------------------------------------------------


def test_synchronized_capture_runs_the_tutorial_sequence_in_order(rig: FakeRig, tmp_path: Path):
    for a in (A, B, C):
        rig.add(a)
    orch, rec = make(rig, tmp_path)
    capture_id = orch.start(settings(A, B, C))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error

    assert rec.phases() == [
        "validating",
        "ptp-sync",
        "ptp-lock",
        "opening",
        "creating",
        "detecting",
        "configuring",
        "synchronizing",
        "starting-stream",
        "armed",
        "connecting",
        "recording",
        "stopping",
        "disarming",
        "finishing",
        "closing",
        "completed",
    ]
    log = rig.log
    # sync parameters: master first
    assert rig.requests("syncmode")[0] == A
    # after the lock: slaves first, master last
    for request in (
        "open",
        "create",
        "detect",
        "channels/input",
        "synchronize",
        "startstreaming",
        "measurements",
        "measurements/stop",
        "finish",
        "close",
    ):
        assert rig.requests(request)[-1] == A, request
        assert sorted(rig.requests(request)) == [A, B, C], request
    # every module is back in stand-alone Idle
    assert all(m.state == "Idle" for m in rig.modules.values())
    assert sorted(rig.requests("syncmode-standalone")) == [A, B, C]
    assert first_index(log, A, "syncmode") < first_index(log, B, "open")

    folder = tmp_path / "captures" / capture_id
    meta = capture_json(folder)
    assert meta["outcome"] == "completed" and meta["reason"] == ""
    assert meta["ptp"] == {"domain": 42, "master": A}
    assert meta["bandwidth"] == "3.2 kHz" and meta["sample_rate"] == 8192
    assert [m["role"] for m in meta["modules"]] == ["master", "slave", "slave"]
    firsts = {m["first_ticks"] for m in meta["modules"]}
    assert len(firsts) == 1 and meta["start_ticks"] in firsts
    assert meta["recorded_s"] >= 0.4
    for number, m in enumerate(meta["modules"], start=1):
        (f,) = m["files"]
        path = folder / f["file"]
        assert f["file"] == f"My Measurement.{number}.stream"
        data = path.read_bytes()
        assert len(data) == f["bytes"] == rig.modules[m["address"]].sent_bytes
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert m["signals"] == [{"signal_id": i, "channel": i} for i in range(1, 5)]
        ch1 = m["setup"]["channels"][0]
        assert ch1["ccld"] is True and ch1["transducer"]["serialNumber"] == 4242
        assert ch1["destinations"] == ["socket"] and ch1["bandwidth"] == "3.2 kHz"
        types = [msg.message_type for msg in read_messages(path)]
        assert types[:4] == [MessageType.INTERPRETATION] * 4
    kinds = {e["kind"] for e in meta["events"]}
    assert {"phase", "ptp", "transducers", "capture-finished"} <= kinds
    assert not kinds & {"levels", "waveform", "stream-stats"}
    assert "recording-time" not in kinds  # four a second: would grow without bound

    started = rec.kinds("capture-started")
    finished = rec.kinds("capture-finished")
    assert [e.capture_id for e in started] == [e.capture_id for e in finished] == [capture_id]
    assert finished[0].outcome == "completed"
    assert rec.kinds("transducers")[0].transducers[0]["serialNumber"] == 4242
    ptp = rec.kinds("ptp")
    assert {e.module for e in ptp} == {A, B, C} and all(e.timeout_s == 5.0 for e in ptp)
    assert any(e.locked for e in ptp)
    times = rec.kinds("recording-time")
    assert times and times[-1].elapsed_s == pytest.approx(0.4, abs=0.05)
    levels = rec.kinds("levels")
    assert levels and {lv["channel"] for lv in levels[-1].levels} == {1, 2, 3, 4}
    waves = rec.kinds("waveform")
    assert waves and waves[0].sample_rate == 8192
    assert {(w.module, w.channel) for w in waves} == {
        (a, c) for a in (A, B, C) for c in (1, 2, 3, 4)
    }
    stats = [e for e in rec.kinds("stream-stats") if e.module == A]
    assert stats[-1].bytes_received == rig.modules[A].sent_bytes


def test_single_module_flow_sends_no_ptp(rig: FakeRig, tmp_path: Path):
    rig.add(A, type_number="3677")  # a LAN-XI Light works on its own
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    requests = [r for _, r in rig.log]
    assert "syncmode" not in requests and "synchronize" not in requests
    assert "startstreaming" not in requests
    assert requests.index("module/time") < requests.index("syncmode-standalone")
    assert requests.index("syncmode-standalone") < requests.index("open")
    assert rig.modules[A].state == "Idle"
    assert "ptp-lock" not in rec.phases()
    meta = capture_json(orch.last_folder)
    assert meta["ptp"] is None and meta["modules"][0]["role"] == "single"


def test_multi_socket_writes_one_file_per_channel(rig: FakeRig, tmp_path: Path):
    rig.add(A, channels=2)
    orch, _ = make(rig, tmp_path)
    orch.start(settings(A, multi_socket=True, name="ms"))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    meta = capture_json(orch.last_folder)
    assert meta["streaming"] == "multi-socket"
    assert [f["file"] for f in meta["modules"][0]["files"]] == [
        "ms.1.ch1.stream",
        "ms.1.ch2.stream",
    ]
    assert rig.modules[A].setup["channels"][0]["destinations"] == ["multiSocket"]


# --- arm, then record --------------------------------------------------------------------


def test_two_captures_while_armed_without_a_second_ptp_wait(rig: FakeRig, tmp_path: Path):
    for a in (A, B):
        rig.add(a)
    orch, rec = make(rig, tmp_path)
    orch.arm(settings(A, B))
    assert orch.wait(20) and orch.armed and orch.phase == Phase.ARMED
    first = orch.start(settings(A, B, name="one", duration_s=0.3))
    assert orch.wait(20) and orch.armed, orch.last_error
    second = orch.start(settings(A, B, name="two", duration_s=0.3))
    assert orch.wait(20) and orch.armed, orch.last_error
    assert first != second
    assert len(rig.requests("syncmode")) == 2  # once per module, not per capture
    assert len(rig.requests("open")) == 2
    assert len(rig.requests("measurements")) == 4
    assert rec.phases().count("ptp-lock") == 1
    for cid, name in ((first, "one"), (second, "two")):
        meta = capture_json(tmp_path / "captures" / cid)
        assert meta["outcome"] == "completed" and meta["name"] == name
    assert all(m.state == "RecorderStreaming" for m in rig.modules.values())
    orch.disarm()
    assert orch.wait(20)
    assert orch.phase == Phase.IDLE and not orch.armed
    assert all(m.state == "Idle" and m.ptp == "Locked" for m in rig.modules.values())


def test_start_while_arming_records_once_armed(rig: FakeRig, tmp_path: Path):
    rig.lock_s = 0.3
    for a in (A, B):
        rig.add(a)
    orch, _ = make(rig, tmp_path)
    orch.arm(settings(A, B))
    capture_id = orch.start()
    assert orch.wait(20)
    assert orch.armed and capture_json(tmp_path / "captures" / capture_id)["outcome"] == "completed"
    with pytest.raises(SettingsError) as err:
        orch.start(settings(A, B, ptp_domain=7))
    assert err.value.field == "ptp_domain"
    orch.disarm()
    assert orch.wait(20) and orch.phase == Phase.IDLE


def test_arm_refuses_while_armed(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    orch, _ = make(rig, tmp_path)
    orch.arm(settings(A))
    assert orch.wait(20) and orch.armed
    with pytest.raises(CaptureBusyError):
        orch.arm(settings(A))
    orch.disarm()
    assert orch.wait(20)


def test_stop_ends_a_recording_until_stopped(rig: FakeRig, tmp_path: Path):
    for a in (A, B):
        rig.add(a)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B, duration_s=None))
    deadline = threading.Event()
    while not any(e.elapsed_s > 0.2 for e in rec.kinds("recording-time")):
        assert orch.busy
        deadline.wait(0.05)
    orch.stop()
    assert orch.wait(20)
    meta = capture_json(orch.last_folder)
    assert meta["outcome"] == "stopped" and meta["requested_duration_s"] is None
    assert all(m.state == "Idle" for m in rig.modules.values())
    # The last recording time sent is what was recorded (the data delivered after the stop
    # included), sent before the capture's end.
    last = rec.kinds("recording-time")[-1]
    assert (last.elapsed_s, last.duration_s) == (round(meta["recorded_s"], 3), None)
    kinds = [e.kind for e in rec.events]
    assert kinds.index("capture-finished") > len(kinds) - 1 - kinds[::-1].index("recording-time")


def test_stop_while_arming_tears_down(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    rig.add(B, no_lock=True)
    orch, rec = make(rig, tmp_path)
    capture_id = orch.start(settings(A, B))
    while "ptp-lock" not in rec.phases():
        threading.Event().wait(0.02)
    orch.stop()
    assert orch.wait(10)
    assert orch.phase == Phase.IDLE
    finished = rec.kinds("capture-finished")
    assert [(e.capture_id, e.outcome) for e in finished] == [(capture_id, "stopped")]
    assert sorted(rig.requests("syncmode-standalone")) == [A, B]


# --- failures ----------------------------------------------------------------------------


def test_ptp_timeout_names_the_module_and_leaves_every_module_idle(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    rig.add(B, no_lock=True)
    rig.add(C)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B, C, ptp_timeout_s=0.5))
    assert orch.wait(10)
    assert orch.phase == Phase.FAILED
    assert B in orch.last_error and A not in orch.last_error
    assert "lock onto PTP" in orch.last_error
    errors = rec.kinds("error")
    assert len(errors) == 1 and errors[0].module == B
    assert all(m.state == "Idle" for m in rig.modules.values())
    assert "open" not in [r for _, r in rig.log]
    assert sorted(rig.requests("syncmode-standalone")) == [A, B, C]
    assert rec.kinds("capture-finished")[0].outcome == "failed"


def test_http_error_mid_sequence_closes_every_opened_module(rig: FakeRig, tmp_path: Path):
    for a in (A, B):
        rig.add(a)
    rig.add(C, fail={"synchronize": (500, "internal error in DSP")})
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B, C))
    assert orch.wait(10)
    assert orch.phase == Phase.FAILED
    assert C in orch.last_error and "synchronize" in orch.last_error
    assert "HTTP 500: internal error in DSP" in orch.last_error
    (error,) = rec.kinds("error")
    assert error.module == C and error.request == "PUT /rest/rec/synchronize"
    # configuring modules are cancelled, then closed; all back to Idle
    assert all(m.state == "Idle" for m in rig.modules.values())
    assert sorted(rig.requests("close")) == [A, B, C]


def test_an_unexpected_error_in_teardown_still_reaches_every_module(
    rig: FakeRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for a in (A, B):
        rig.add(a)
    rig.add(C, fail={"synchronize": (500, "internal error in DSP")})
    real_close = FakeClient.close

    def close(self: FakeClient) -> None:
        if self.address == A:
            raise RuntimeError("a bug, not a module error")
        real_close(self)

    monkeypatch.setattr(FakeClient, "close", close)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B, C))
    assert orch.wait(10)
    assert orch.phase == Phase.FAILED and "synchronize" in orch.last_error
    assert rig.modules[B].state == rig.modules[C].state == "Idle"
    assert any(w.module == A and "a bug" in w.message for w in rec.kinds("warning"))


def test_stop_and_finish_answered_202_are_awaited_before_the_next_step(
    rig: FakeRig, tmp_path: Path
):
    """A module that accepts stop and finish and changes state a moment later (202) is still
    finished and closed: the next step does not find it in the old state and skip it."""
    rig.add(A)
    rig.add(B, pending_s=0.3)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    assert rig.modules[A].state == rig.modules[B].state == "Idle"
    assert rig.requests("measurements/stop") == [B, A]  # once each, master last
    assert sorted(rig.requests("close")) == [A, B]
    assert not [w for w in rec.kinds("warning") if "teardown" in w.message]


def test_a_module_that_does_not_move_in_the_teardown_is_reported(
    rig: FakeRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(disarming_module, "TEARDOWN_SETTLE_S", 0.2)
    rig.add(A)
    rig.add(B, pending_s=1.0)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    still = [w for w in rec.kinds("warning") if "still" in w.message]
    assert [
        (w.module, "RecorderStreaming" in w.message and "finish" in w.message) for w in still
    ] == [(B, True)]
    assert rig.modules[A].state == "Idle"


@pytest.mark.parametrize(
    ("state", "sent"),
    [
        ("RecorderRecording", ["stop_measurement", "finish", "close"]),
        ("RecorderStreaming", ["finish", "close"]),
        ("RecorderConfiguring", ["cancel", "close"]),
        ("RecorderOpened", ["close"]),
        ("Idle", []),
    ],
)
def test_return_to_idle_walks_a_module_left_open_elsewhere(
    rig: FakeRig, tmp_path: Path, state: str, sent: list[str]
):
    rig.add(A, pending_s=0.1)  # each change a moment after the answer
    rig.modules[A].state = state
    orch, _rec = make(rig, tmp_path)
    assert orch.return_to_idle(A) == sent
    assert rig.modules[A].state == "Idle"
    # and it can take part in a capture now
    rig.add(B)
    orch.start(settings(A, B))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error


def test_return_to_idle_names_what_failed_and_is_refused_while_armed(rig: FakeRig, tmp_path: Path):
    rig.add(A, fail={"close": (403, "not allowed in this state")})
    rig.modules[A].state = "RecorderOpened"
    rig.add(B)
    orch, _rec = make(rig, tmp_path)
    with pytest.raises(ModuleError, match=r"10\.9\.0\.1.*close.*not allowed in this state"):
        orch.return_to_idle(A)
    orch.arm(settings(B))
    assert orch.wait(20) and orch.armed
    with pytest.raises(CaptureBusyError):  # it may be one of the armed modules
        orch.return_to_idle(A)
    orch.disarm()
    assert orch.wait(20)


def test_stream_drop_fails_the_capture_and_keeps_every_byte(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    rig.add(B, drop_after_blocks=3)
    rig.add(C)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B, C, duration_s=5.0, on_stream_drop="fail"))
    assert orch.wait(20)
    assert orch.phase == Phase.FAILED
    assert B in orch.last_error and "closed its stream" in orch.last_error
    (error,) = rec.kinds("error")
    assert error.module == B and error.request == "stream"
    meta = capture_json(orch.last_folder)
    assert meta["outcome"] == "failed" and B in meta["reason"]
    for m in meta["modules"]:
        (f,) = m["files"]
        data = (orch.last_folder / f["file"]).read_bytes()
        assert len(data) == f["bytes"] == rig.modules[m["address"]].sent_bytes > 0
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    # the others' files end with whole messages
    for number in (1, 3):
        path = orch.last_folder / f"My Measurement.{number}.stream"
        msgs = list(read_messages(path))
        assert sum(len(msg.blocks) for msg in msgs if msg.message_type == 1) % 4 == 0
    assert all(m.state == "Idle" for m in rig.modules.values())
    assert [e.kind for e in rec.events].index("error") < [e.kind for e in rec.events].index(
        "capture-finished"
    )


def test_stream_file_that_cannot_be_created_closes_its_socket(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    sockets = []

    def client(address: str):
        c = rig.client(address)
        connect = c.connect_stream

        def connect_stream(port: int, timeout: float | None = None):
            sockets.append(connect(port, timeout))
            return sockets[-1]

        c.connect_stream = connect_stream  # type: ignore[method-assign]
        return c

    folder = tmp_path / "run"
    (folder / "My Measurement.1.stream").mkdir(parents=True)  # os.open of the file fails
    orch = Orchestrator(EventBus(), tmp_path, client_factory=client)
    orch.start(settings(A), folder=folder)
    assert orch.wait(10)
    assert orch.phase == Phase.FAILED and "My Measurement.1.stream" in orch.last_error
    assert sockets and all(s.fileno() == -1 for s in sockets)
    assert rig.modules[A].state == "Idle"


def test_unreachable_module_is_a_clear_error_before_anything_is_sent(tmp_path: Path):
    rig = FakeRig()
    rig.add(A)
    orch, _ = make(rig, tmp_path)
    from webapp.openapi.client import ModuleError

    with pytest.raises(ModuleError) as err:
        orch.start(settings(A, B))
    assert B in str(err.value) and "unreachable" in str(err.value)
    assert [r for _, r in rig.log] == ["info"]
    assert not orch.busy


def test_module_without_ptp_is_refused_for_a_synchronized_capture(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    rig.add(B, type_number="3677")
    orch, _ = make(rig, tmp_path)
    with pytest.raises(SettingsError) as err:
        orch.arm(settings(A, B))
    assert err.value.field == "modules[1]" and "3677" in str(err.value)
    assert {r for _, r in rig.log} == {"info"}


def test_busy_module_is_refused(rig: FakeRig, tmp_path: Path):
    rig.add(A, state="RecorderStreaming")
    orch, _ = make(rig, tmp_path)
    from webapp.openapi.client import ModuleError

    with pytest.raises(ModuleError, match="RecorderStreaming, not Idle"):
        orch.arm(settings(A))


def test_channel_settings_are_checked_against_the_module(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    orch, _ = make(rig, tmp_path)
    for chs, field in (
        ([ChannelSettings(9)], "channels.10.9.0.1[0].channel"),
        ([ChannelSettings(1, range="3 Vpeak")], "channels.10.9.0.1[0].range"),
        ([ChannelSettings(1, filter="1 Hz")], "channels.10.9.0.1[0].filter"),
        ([ChannelSettings(c, enabled=False) for c in range(1, 5)], "channels.10.9.0.1"),
    ):
        with pytest.raises(SettingsError) as err:
            orch.arm(settings(A, channels={A: chs}))
        assert err.value.field == field
    with pytest.raises(SettingsError) as err:
        orch.arm(settings(A, bandwidth="51.2 kHz"))
    assert err.value.field == "bandwidth"


# --- live events -------------------------------------------------------------------------


def test_faults_and_data_quality_are_reported_once_per_change(rig: FakeRig, tmp_path: Path):
    rig.add(A, quality_after_blocks=2)
    rig.add(B)
    orch, rec = make(rig, tmp_path)
    orch.arm(settings(A, B, duration_s=0.6))
    assert orch.wait(20)
    orch.start()
    while not rec.kinds("recording-time"):
        threading.Event().wait(0.01)
    m = rig.modules[B]
    m.channel_status[2] = {"anol": "none", "cmol": "none", "cf": "curr"}
    m.bump()
    threading.Event().wait(0.1)
    m.bump()  # an unrelated change must not repeat the fault
    threading.Event().wait(0.1)
    m.channel_status[2] = {"anol": "none", "cmol": "none", "cf": "prev"}
    m.bump()
    assert orch.wait(20), orch.last_error
    faults = [(e.module, e.channel, e.cf) for e in rec.kinds("channel-fault")]
    assert faults == [(B, 3, "curr"), (B, 3, "prev")]
    (dq,) = rec.kinds("data-quality")
    assert (dq.module, dq.channel, dq.validity, dq.flags) == (A, 1, 2, ["overload"])
    timeline = capture_json(orch.last_folder)["events"]
    assert [e["cf"] for e in timeline if e["kind"] == "channel-fault"] == ["curr", "prev"]
    orch.disarm()
    assert orch.wait(20)


def test_waveform_follows_the_selected_channel(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    rig.add(B)
    bus = EventBus()
    rec = Recorder(bus)
    orch = Orchestrator(bus, tmp_path, client_factory=rig.client, waveforms="selected")
    orch.select_waveform(B, 3)
    orch.start(settings(A, B, duration_s=0.3))
    assert orch.wait(20)
    waves = rec.kinds("waveform")
    assert waves and {(w.module, w.channel) for w in waves} == {(B, 3)}


def test_watched_waveforms_are_the_only_ones(rig: FakeRig, tmp_path: Path):
    rig.add(A)
    rig.add(B)
    orch, rec = make(rig, tmp_path)
    orch.watch_waveforms([(A, 2), (B, 4)])
    orch.start(settings(A, B, duration_s=0.3))
    assert orch.wait(20)
    assert {(w.module, w.channel) for w in rec.kinds("waveform")} == {(A, 2), (B, 4)}
    assert {lv["channel"] for e in rec.kinds("levels") for lv in e.levels} == {1, 2, 3, 4}


def test_bytes_lost_in_closing_are_a_warning_and_in_capture_json(
    rig: FakeRig, tmp_path: Path, monkeypatch
):
    from webapp.capture.receiver import StreamReceiver

    close = StreamReceiver.close

    def give_up(self: StreamReceiver, timeout: float = 5.0) -> None:
        close(self, timeout)
        if self.module == B:  # as if the wait for B's file had stalled
            self.abandoned, self.unread_bytes = True, 4096

    monkeypatch.setattr(StreamReceiver, "close", give_up)
    rig.add(A)
    rig.add(B)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B, name="lossy"))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    (warning,) = [w for w in rec.kinds("warning") if "not written" in w.message]
    assert warning.module == B
    assert "4096 bytes" in warning.message and "lossy.2.stream" in warning.message
    meta = capture_json(orch.last_folder)
    assert meta["outcome"] == "completed"
    assert meta["reason"] == f"completed, but {warning.message}"
    assert warning.message in [e.get("message") for e in meta["events"]]


def test_a_flapping_quality_flag_keeps_the_timeline_bounded_and_counts_the_rest(
    rig: FakeRig, tmp_path: Path, monkeypatch
):
    from webapp.capture import store

    monkeypatch.setattr(store, "QUALITY_CHANGES_LISTED", 3)
    rig.add(A, quality_after_blocks=1, quality_flapping=True)
    orch, rec = make(rig, tmp_path)
    orch.arm(settings(A, duration_s=0.6, name="flap"))
    assert orch.wait(20)
    orch.start()
    assert orch.wait(20), orch.last_error
    live = [e for e in rec.kinds("data-quality") if e.channel == 1]
    assert len(live) > 6  # live publishing still reports every change
    meta = capture_json(orch.last_folder)
    listed = [e for e in meta["events"] if e["kind"] == "data-quality"]
    assert len(listed) == 3
    (summary,) = [e for e in meta["events"] if "data-quality changes" in e.get("message", "")]
    assert summary["module"] == A
    assert f"channel 1: {len(live) - 3} more" in summary["message"]
    session = orch._session
    assert session is not None
    assert len([e for e in session.timeline if e.kind == "data-quality"]) == 3
    orch.disarm()
    assert orch.wait(20)


def test_a_dropped_multi_socket_stream_names_module_channel_and_file(rig: FakeRig, tmp_path: Path):
    rig.add(A, channels=2, drop_after_blocks=3)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, multi_socket=True, name="ms", duration_s=5.0, on_stream_drop="fail"))
    assert orch.wait(20)
    assert orch.phase == Phase.FAILED
    errors = rec.kinds("error")
    assert errors
    for error in errors:
        assert error.module == A and error.request == "stream"
        channel = 1 if "ms.1.ch1.stream" in error.message else 2
        assert f"module {A} channel {channel} (ms.1.ch{channel}.stream)" in error.message
    assert "channel" in orch.last_error and ".stream" in orch.last_error
    assert "ms.1.ch" in capture_json(orch.last_folder)["reason"]


def _stop_answer_lost(monkeypatch: pytest.MonkeyPatch, address: str, stops: bool) -> None:
    """``measurements/stop`` to ``address`` goes unanswered (as a timeout does); the module
    stops nonetheless when ``stops``."""
    real_stop = FakeClient.stop_measurement

    def stop_measurement(self: FakeClient) -> int:
        if self.address != address:
            return real_stop(self)
        if stops:
            real_stop(self)
        raise ModuleError(address, "PUT /rest/rec/measurements/stop", None, "no answer in 3 s")

    monkeypatch.setattr(FakeClient, "stop_measurement", stop_measurement)


def test_a_stop_answered_too_late_by_a_module_that_stopped_is_no_failure(
    rig: FakeRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The master's answer to its stop is lost (a busy moment), but its status shows it
    stopped: the capture completes, with a warning that names the module, and every module
    is back to Idle."""
    rig.add(A)
    rig.add(B)
    _stop_answer_lost(monkeypatch, A, stops=True)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B))
    assert orch.wait(20)
    assert orch.phase == Phase.COMPLETED, orch.last_error
    late = [w for w in rec.kinds("warning") if "answered its stop late" in w.message]
    assert [w.module for w in late] == [A]
    assert rig.modules[A].state == rig.modules[B].state == "Idle"
    assert orch.last_left_non_idle == []


def test_a_module_still_recording_after_an_unanswered_stop_fails_the_capture(
    rig: FakeRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    rig.add(A)
    rig.add(B)
    _stop_answer_lost(monkeypatch, A, stops=False)
    orch, rec = make(rig, tmp_path)
    orch.start(settings(A, B))
    assert orch.wait(30)
    assert orch.phase == Phase.FAILED
    assert "stopping the measurement failed on module 1" in orch.last_error
    assert not [w for w in rec.kinds("warning") if "answered its stop late" in w.message]


def test_warnings_errors_and_outcomes_reach_the_log(caplog: pytest.LogCaptureFixture):
    from webapp.capture import events as ev

    with caplog.at_level("INFO", logger="webapp.capture.events"):
        ev.log_problems(ev.Warning(message="teardown: no answer", module=A))
        ev.log_problems(ev.Error(message="refused", module=B, request="PUT /rest/rec/open"))
        ev.log_problems(ev.CaptureFinished("c1", "failed", "stopping failed", "/x"))
        ev.log_problems(ev.RecordingTime(elapsed_s=1.0, duration_s=None))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"{A}: teardown: no answer"),
        ("ERROR", f"{B} PUT /rest/rec/open: refused"),
        ("INFO", "capture c1 failed: stopping failed"),
    ]
