"""How the capture record turns PTP lock changes into capture.json's ``ptp_unlocked`` spans."""

from __future__ import annotations

from pathlib import Path

from webapp.capture.events import PtpLockChanged
from webapp.capture.store import CaptureRecord, ModuleRecord

T0 = 1_800_000_000.0
"""Wall-clock time of the first sample (the modules' PTP time is UTC)."""


def record(tmp_path: Path) -> CaptureRecord:
    return CaptureRecord(
        folder=tmp_path,
        id="x",
        name="x",
        created=T0 - 5,
        requested_duration_s=10.0,
        ptp_domain=42,
        master="a",
        bandwidth="51.2 kHz",
        sample_rate=131072,
        streaming="single-socket",
        modules=[ModuleRecord(1, "a", "master"), ModuleRecord(2, "b", "slave")],
    )


def lock(address: str, number: int, locked: bool, t: float) -> PtpLockChanged:
    status = "Locked" if locked else "Unlocked"
    return PtpLockChanged(module=address, number=number, locked=locked, ptp_status=status, t=t)


def test_spans_in_seconds_from_the_first_sample(tmp_path: Path):
    rec = record(tmp_path)
    rec.add_event(lock("b", 2, False, T0 - 2))  # lost and regained before the first sample
    rec.add_event(lock("b", 2, True, T0 - 1))
    rec.add_event(lock("b", 2, False, T0 + 1.25))
    rec.add_event(lock("b", 2, True, T0 + 2.5))
    rec.add_event(lock("b", 2, False, T0 + 7))  # still unlocked at the end
    rec.add_event(lock("b", 2, False, T0 + 8))  # no second span while one is open
    rec.start_ticks = int(T0 * (1 << 32))
    first, second = rec.to_json()["modules"]
    assert first["ptp_unlocked"] == []
    assert [(s["from_s"], s["to_s"], s["status"]) for s in second["ptp_unlocked"]] == [
        (1.25, 2.5, "Unlocked"),
        (7.0, None, "Unlocked"),
    ]
    assert second["ptp_unlocked"][1]["to"] is None
    assert second["ptp_unlocked"][0]["from"].startswith("2027-01-15T08:00:01.25")


def test_a_loss_before_the_first_sample_counts_from_0_and_no_sample_gives_no_seconds(
    tmp_path: Path,
):
    rec = record(tmp_path)
    rec.add_event(lock("b", 2, False, T0 - 1))
    (span,) = rec.to_json()["modules"][1]["ptp_unlocked"]
    assert span["from_s"] is None and span["from"]  # no sample yet: only the wall-clock time
    rec.modules[1].first_ticks = int(T0 * (1 << 32))
    (span,) = rec.to_json()["modules"][1]["ptp_unlocked"]
    assert (span["from_s"], span["to_s"]) == (0.0, None)
