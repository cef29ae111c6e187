"""A calibration check of one channel, end to end, for the web and the terminal alike:
measure (:mod:`.acquire`), compare with the database (:mod:`.measure`), and on confirmation
store the new sensitivity (:class:`.database.TransducerDatabase`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.calibration.acquire import DEFAULT_SECONDS, record_channel
from webapp.calibration.database import TransducerDatabase, TransducerEntry, teds_type
from webapp.calibration.measure import (
    DEFAULT_TOLERANCE_DB,
    CalibrationCheck,
    CalibrationError,
    evaluate,
    parse_reference,
)
from webapp.openapi.units import unit_label


@dataclass
class ChannelCheck:
    address: str
    module: str
    channel: int
    transducer: TransducerEntry | None
    """The database's transducer the check compared with."""
    result: CalibrationCheck
    detected: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "module": self.module,
            "channel": self.channel,
            "transducer": self.transducer.to_json() if self.transducer else None,
            "detected": self.detected,
            **self.result.to_json(),
        }


def run_check(
    database: TransducerDatabase,
    address: str,
    channel: int,
    reference: str,
    *,
    transducer: str | None = None,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
    seconds: float = DEFAULT_SECONDS,
) -> ChannelCheck:
    """Measure ``channel`` while the reference is applied; compare with ``transducer`` (an id
    of the database), or else the TEDS transducer detected on the channel (added to the
    database when new)."""
    ref = parse_reference(reference)
    entry = None
    if transducer:
        try:
            entry = database.get(transducer)
        except KeyError:
            raise CalibrationError(f"transducer {transducer} is not in the database") from None
    # What the database says a transducer needs is switched on; otherwise the detection's.
    ccld = True if entry and entry.ccld else None
    polarisation = True if entry and entry.polarisation else None
    recording = record_channel(address, channel, seconds, ccld=ccld, polarisation=polarisation)
    if recording.detected:
        detected_entry = database.add_detected(recording.detected)
        if entry is None:
            entry = detected_entry
    if entry is not None and entry.unit != ref.unit:
        raise CalibrationError(
            f"transducer {entry.type} s/n {entry.serial} measures {unit_label(entry.unit)}; "
            f"a {ref.kind} ({ref.text}) calibrates {unit_label(ref.unit)}"
        )
    result = evaluate(
        recording.volts,
        recording.sample_rate,
        ref,
        entry.sensitivity if entry else None,
        tolerance_db,
    )
    return ChannelCheck(address, recording.module, channel, entry, result, recording.detected)


def detected_label(teds: dict[str, Any] | None) -> str:
    if not teds:
        return "none"
    return f"{teds_type(teds)} s/n {teds.get('serialNumber')}"
