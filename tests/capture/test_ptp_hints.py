"""What the PTP panel says while modules wait for lock: nothing early, the likely reason when
a module sees no master, a slow lock past the usual 1-2 minutes; and the panel is emptied once
the rig is back to Idle."""

from __future__ import annotations

from webapp.capture import events as ev
from webapp.capture.ptp import EXPECTED_LOCK_S, NO_MASTER_AFTER_S, lock_hint
from webapp.engine.state import LiveState

M1, M2 = "10.0.0.1", "10.0.0.2"


def test_no_hint_while_the_wait_is_normal() -> None:
    statuses = {M1: "Unlocked", M2: "Unlocked"}
    assert lock_hint(M2, 2, statuses, M1, 42, NO_MASTER_AFTER_S - 1) == ""
    assert lock_hint(M2, 2, {M1: "Locked", M2: "Locking"}, M1, 42, 60) == ""
    assert lock_hint(M1, 1, {M1: "Locked", M2: "Locked"}, M1, 42, 500) == ""


def test_nobody_sees_a_master() -> None:
    hint = lock_hint(M2, 2, {M1: "Unlocked", M2: "Unlocked"}, M1, 42, 25)
    assert hint == (
        "no PTP master seen in domain 42 after 25 s: is the master (module 1, 10.0.0.1) on this "
        "network and in domain 42?"
    )


def test_one_slave_sees_no_master_while_the_others_do() -> None:
    hint = lock_hint(M2, 2, {M1: "Locked", M2: "Unlocked"}, M1, 7, 30)
    assert hint.startswith("module 2 sees no PTP master in domain 7 after 30 s while others do")


def test_a_lock_slower_than_usual_says_why_it_may_be() -> None:
    hint = lock_hint(M2, 2, {M1: "Locked", M2: "Settling"}, M1, 42, EXPECTED_LOCK_S + 5)
    assert "still settling after 125 s, longer than the usual 1-2 minutes" in hint


def test_the_panel_carries_the_hint_and_clears_when_idle() -> None:
    state = LiveState()
    state.on_event(
        ev.PtpProgress(
            module=M2, status="Unlocked", locked=False, elapsed_s=25.0, timeout_s=600.0,
            expected_s=EXPECTED_LOCK_S, hint="no PTP master seen",
        )
    )  # fmt: skip
    assert state.get("ptp")[M2]["hint"] == "no PTP master seen"
    assert state.get("ptp")[M2]["expected_s"] == EXPECTED_LOCK_S
    state.on_event(ev.PhaseChanged(phase=ev.Phase.IDLE, previous=ev.Phase.DISARMING))
    assert state.get("ptp") == {}


def test_what_is_being_prepared_is_shown_until_it_records_or_ends() -> None:
    state = LiveState()
    state.on_event(
        ev.CapturePrepared(
            capture_id="c1", name="Run 1", duration_s=5.0, modules=[M1, M2], action="start"
        )  # fmt: skip
    )
    assert state.get("capture")["prepared"]["name"] == "Run 1"
    state.on_event(ev.CaptureStarted(capture_id="c1", name="Run 1", folder="f", modules=[M1, M2],
                                     duration_s=5.0))  # fmt: skip
    assert "prepared" not in state.get("capture") and state.get("capture")["current"]["id"] == "c1"
    state.on_event(
        ev.CapturePrepared(capture_id="", name="Arm", duration_s=None, modules=[M1], action="arm")
    )
    state.on_event(ev.PhaseChanged(phase=ev.Phase.ARMED, previous=ev.Phase.STARTING_STREAM))
    assert "prepared" not in state.get("capture")


def test_fault_lamps_reset_for_a_new_measurement_and_when_disarmed() -> None:
    state = LiveState()
    fault = ev.ChannelFault(module=M1, channel=2, anol="curr", cmol="none", cf="none")
    for phase in (ev.Phase.CONNECTING, ev.Phase.IDLE, ev.Phase.COMPLETED):
        state.on_event(fault)
        assert state.get("channel-fault")[M1]["2"]["anol"] == "curr"
        state.on_event(ev.PhaseChanged(phase=phase, previous=ev.Phase.ARMED))
        assert state.get("channel-fault") == {}, phase
    state.on_event(fault)
    state.on_event(ev.PhaseChanged(phase=ev.Phase.RECORDING, previous=ev.Phase.CONNECTING))
    assert state.get("channel-fault")[M1]["2"]["anol"] == "curr"  # while it records: kept
