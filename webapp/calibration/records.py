"""What a capture records of its channels' calibrations: for every enabled channel whose
transducer (TEDS or manual, by type and serial) is in the transducer database, its stored
sensitivity, calibration and due dates, and whether the calibration was overdue at the start.
``capture.json`` carries the list as ``calibrations`` (docs/capture-format.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from webapp.calibration.database import DATABASE_FILE, TransducerDatabase, teds_type
from webapp.capture.schemas import FieldError

log = logging.getLogger(__name__)


def channel_calibrations(
    data_dir: Path,
    modules: Iterable[tuple[int, dict[str, Any] | None]],
    today: date | None = None,
) -> list[dict[str, Any]]:
    """``modules``: (module number, applied setup) pairs. Empty without a database."""
    if not (Path(data_dir) / DATABASE_FILE).exists():
        return []
    try:
        database = TransducerDatabase(data_dir)
    except (OSError, ValueError, FieldError) as exc:
        log.warning("transducer database unreadable, calibrations not recorded: %s", exc)
        return []
    out: list[dict[str, Any]] = []
    for number, setup in modules:
        channels = (setup or {}).get("channels") or []
        for i, ch in enumerate(channels):
            if not isinstance(ch, dict) or not ch.get("enabled", True):
                continue
            t = ch.get("transducer") or {}
            serial = t.get("serialNumber")
            if not isinstance(t, dict) or not serial:
                continue
            entry = database.find(teds_type(t), serial)
            if entry is None:
                continue
            out.append(
                {"module": number, "channel": int(ch.get("channel", i + 1)), **entry.summary(today)}
            )
    return out


def detection_subscriber(database: TransducerDatabase) -> Any:
    """A bus subscriber that adds every TEDS transducer a detection finds to ``database``
    (and notes the TEDS sensitivity of known ones)."""
    from webapp.capture.events import TransducersDetected

    def on_event(event: Any) -> None:
        if not isinstance(event, TransducersDetected):
            return
        for teds in event.transducers:
            try:
                database.add_detected(teds)
            except (OSError, ValueError, FieldError) as exc:
                log.warning("module %s: detected transducer not added: %s", event.module, exc)

    return on_event


def calibrated_transducers(
    data_dir: Path, detected: list[dict[str, Any] | None] | None
) -> list[dict[str, Any] | None] | None:
    """The detected TEDS transducers with the database's sensitivity where the database has
    the transducer: the latest calibration, or the TEDS value if the user chose that (what the
    Transducers page shows when the two differ). Without a database: ``detected`` unchanged."""
    if not detected or not (Path(data_dir) / DATABASE_FILE).exists():
        return detected
    try:
        database = TransducerDatabase(data_dir)
    except (OSError, ValueError, FieldError) as exc:
        log.warning("transducer database unreadable, TEDS sensitivities used: %s", exc)
        return detected
    out: list[dict[str, Any] | None] = []
    for teds in detected:
        entry = None
        if teds and teds.get("serialNumber"):
            entry = database.find(teds_type(teds), teds["serialNumber"])
        if teds and entry is not None and entry.sensitivity != teds.get("sensitivity"):
            teds = {**teds, "sensitivity": entry.sensitivity}
        out.append(teds)
    return out


def overdue_warnings(calibrations: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(module number, sentence) for every channel whose transducer's calibration is overdue."""
    return [
        (
            c["module"],
            f"module {c['module']} channel {c['channel']}: the calibration of {c['type']} "
            f"s/n {c['serial']} was due on {c['due']}",
        )
        for c in calibrations
        if c.get("overdue")
    ]
