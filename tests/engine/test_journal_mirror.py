"""The engine's live state journaled to a real redis-server and mirrored by a reader: the
mirror holds exactly the engine's state, also when it joins late, misses records or the engine
restarts."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from tests.support.waiting import wait_until
from webapp.capture import events as ev
from webapp.engine import keys
from webapp.engine.journal import Journal, JournaledState
from webapp.engine.mirror import StateMirror
from webapp.engine.state import LiveState


@pytest.fixture
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def comparable(snapshot: dict) -> dict:
    """A snapshot without what is local to a process (the running sequence number)."""
    return {k: v for k, v in snapshot.items() if k != "seq"}


def a_capture(state: LiveState) -> None:
    state.set_topic("rig", {"modules": [{"address": "m1"}], "master": "m1"})
    state.on_event(ev.PhaseChanged(phase=ev.Phase.VALIDATING, previous=ev.Phase.IDLE))
    state.on_event(
        ev.CaptureStarted(capture_id="c1", name="run", folder="/x", modules=["m1"], duration_s=10.0)
    )
    state.on_event(ev.PhaseChanged(phase=ev.Phase.RECORDING, previous=ev.Phase.CONNECTING))
    state.on_event(ev.RecordingTime(elapsed_s=1.5, duration_s=10.0))
    state.on_event(ev.Warning(message="module 1: slow answer", module="m1"))
    state.add_log("info", "a line from the rig", module="m1")


def test_a_mirror_started_late_has_the_whole_state_then_every_change(client):
    engine_state = JournaledState()
    journal = Journal(client, engine_state)
    journal.start()
    try:
        a_capture(engine_state)
        journal.flush()
        mirror_state = LiveState()
        mirror = StateMirror(client, mirror_state)
        mirror.start()  # late: from the snapshot, then the stream after it
        try:
            wait_until(
                lambda: comparable(mirror_state.snapshot()) == comparable(engine_state.snapshot())
            )
            assert mirror_state.get("phase")["phase"] == "recording"
            assert mirror_state.get("capture")["current"]["id"] == "c1"

            engine_state.on_event(ev.RecordingTime(elapsed_s=2.5, duration_s=10.0))
            values = np.arange(8, dtype="<f4")
            engine_state.on_event(
                ev.Waveform(module="m1", channel=1, sample_rate=800.0, unit="V", values=values)
            )
            wait_until(lambda: mirror_state.get("recording-time")["elapsed_s"] == 2.5)
            wait_until(lambda: mirror_state.waveform_since(0, ("m1", 1))[1] is not None)
            wave = mirror_state.waveform_since(0, ("m1", 1))[1]
            assert np.frombuffer(wave["values"], "<f4").tolist() == values.tolist()
            assert comparable(mirror_state.snapshot()) == comparable(engine_state.snapshot())
        finally:
            mirror.stop()
    finally:
        journal.stop()


def test_a_gap_or_a_new_engine_run_makes_the_mirror_take_the_snapshot_again(client):
    first = JournaledState()
    journal = Journal(client, first)
    journal.start()
    mirror_state = LiveState()
    mirror = StateMirror(client, mirror_state)
    mirror.start()
    try:
        a_capture(first)
        wait_until(lambda: mirror_state.get("capture")["current"] is not None)
        # Records lost (trimmed away): the mirror notices the gap and takes the snapshot.
        journal.n += 5
        first.on_event(ev.RecordingTime(elapsed_s=4.0, duration_s=10.0))
        resyncs = mirror.resyncs
        wait_until(lambda: mirror.resyncs > resyncs, timeout=5)
        wait_until(lambda: mirror_state.get("recording-time")["elapsed_s"] == 4.0, timeout=5)
    finally:
        journal.stop()
    # The engine restarts with a fresh state: the mirror follows the new run.
    old_ids = [e["id"] for e in mirror_state.snapshot()["log"]]
    assert old_ids
    second = JournaledState()
    restarted = Journal(client, second)
    restarted.start()
    try:
        second.on_event(ev.PhaseChanged(phase=ev.Phase.IDLE, previous=ev.Phase.FAILED))
        wait_until(lambda: mirror.run == restarted.run, timeout=5)
        wait_until(lambda: mirror_state.get("phase")["phase"] == "idle", timeout=5)
        assert mirror_state.get("capture")["current"] is None
        # The new engine's log numbers on after the old one's (viewers' marks stay valid).
        second.add_log("warning", "after the restart")
        wait_until(
            lambda: [e["message"] for e in mirror_state.snapshot()["log"]] == ["after the restart"]
        )
        assert mirror_state.snapshot()["log"][-1]["id"] > max(old_ids)
    finally:
        restarted.stop()
        mirror.stop()


def test_the_snapshot_in_redis_names_the_last_record_it_includes(client):
    state = JournaledState()
    journal = Journal(client, state)
    journal.start()
    try:
        a_capture(state)
        journal.flush()
        wait_until(lambda: b'"n":7' in (client.get(keys.STATE) or b""), timeout=5)
        last = client.xrevrange(keys.EVENTS, count=1)[0][0].decode()
        assert f'"id":"{last}"'.encode() in client.get(keys.STATE)
    finally:
        journal.stop()
