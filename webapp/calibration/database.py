"""The transducer database: every transducer by type and serial, its sensitivity and its
calibration history, in ``<data_dir>/transducers.json`` (written atomically).

One validation (:func:`check_entry`) for every way in: the HTTP API, the ``calibrate``
command, TEDS detection and CSV import, which refuses a file with any bad row, naming the row
and the column. A transducer's id is ``TYPE_SERIAL`` (e.g. ``4189-A-021_3021100``).

A sensitivity is in volts per unit of the quantity (V/Pa, V/(m/s²)), as LAN-XI setups carry
it. ``due`` is the date by which the next calibration is due; a transducer is overdue from the
day after it.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from webapp.capture.schemas import FieldError
from webapp.statefile import write_json

DATABASE_FILE = "transducers.json"
UNITS = ("Pa", "m/s^2", "m/s", "m", "N", "V")
CSV_COLUMNS = (
    "type",
    "serial",
    "sensitivity",
    "unit",
    "ccld",
    "polarisation",
    "calibrated",
    "due",
    "calibrated_by",
)
REQUIRED_CSV_COLUMNS = ("type", "serial", "sensitivity", "unit")
TEDS_MATCH_DB = 0.05
"""A TEDS sensitivity within this many dB of the latest calibration counts as the same."""
HISTORY_KEEP = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,39}$")
_UNIT_SPELLINGS = {"m/s2": "m/s^2", "m/s²": "m/s^2", "ms^-2": "m/s^2"}
_TRUE = {"true", "yes", "1", "on", "y"}
_FALSE = {"false", "no", "0", "off", "n", ""}


@dataclass(frozen=True)
class Calibration:
    """One entry of a transducer's calibration history."""

    date: str
    """ISO 8601 time of the calibration (UTC)."""
    user: str
    sensitivity: float
    reference: str = ""
    """What it was calibrated with ("94dB@1kHz"), empty for a certificate typed in."""
    deviation_db: float | None = None
    passed: bool | None = None
    previous_sensitivity: float | None = None
    source: str = "manual"
    """"check" (measured here), "manual", "csv" or "teds"."""


@dataclass(frozen=True)
class TransducerEntry:
    type: str
    serial: str
    sensitivity: float
    unit: str
    ccld: bool = False
    polarisation: bool = False
    """200 V polarisation voltage (prepolarised microphones: False)."""
    calibrated: str | None = None
    """Date of the latest calibration, YYYY-MM-DD."""
    due: str | None = None
    """Date the next calibration is due, YYYY-MM-DD."""
    calibrated_by: str = ""
    teds: bool = False
    """Added from a TEDS detection."""
    teds_sensitivity: float | None = None
    """The sensitivity the transducer's TEDS reported at the latest detection."""
    history: tuple[Calibration, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return transducer_id(self.type, self.serial)

    def overdue(self, today: date | None = None) -> bool:
        if not self.due:
            return False
        return date.fromisoformat(self.due) < (today or datetime.now(UTC).date())

    def teds_differs(self) -> bool:
        """The TEDS sensitivity differs from the latest calibration (the user chooses)."""
        if self.teds_sensitivity is None or self.teds_sensitivity <= 0:
            return False
        return abs(20 * math.log10(self.teds_sensitivity / self.sensitivity)) > TEDS_MATCH_DB

    def to_json(self, today: date | None = None) -> dict[str, Any]:
        out = asdict(self)
        out["history"] = [asdict(c) for c in self.history]
        out["id"] = self.id
        out["overdue"] = self.overdue(today)
        out["teds_differs"] = self.teds_differs()
        return out

    def summary(self, today: date | None = None) -> dict[str, Any]:
        """What capture.json and the pages record of a channel's transducer."""
        return {
            "id": self.id,
            "type": self.type,
            "serial": self.serial,
            "sensitivity": self.sensitivity,
            "unit": self.unit,
            "calibrated": self.calibrated,
            "due": self.due,
            "overdue": self.overdue(today),
        }


def transducer_id(type_: str, serial: str | int) -> str:
    return f"{type_}_{serial}"


def _where(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def _text(obj: dict[str, Any], name: str, prefix: str, required: bool = False) -> str:
    value = obj.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError(_where(prefix, name), f"{name} is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FieldError(_where(prefix, name), f"{name} must be text")
    return str(value).strip()


def _flag(obj: dict[str, Any], name: str, prefix: str) -> bool:
    value = obj.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise FieldError(_where(prefix, name), f"{name} must be yes or no")


def _date(obj: dict[str, Any], name: str, prefix: str) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError:
        raise FieldError(
            _where(prefix, name), f"{name} must be a date YYYY-MM-DD, not {value!r}"
        ) from None


def _sensitivity(value: Any, where: str, name: str = "sensitivity") -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < float(value) < 1e6
        or value != value
    ):
        raise FieldError(where, f"{name} must be a number above 0 (volts per unit)")
    return float(value)


def check_entry(obj: Any, prefix: str = "") -> TransducerEntry:
    """A transducer from JSON-like input (a request body, a CSV row, a stored file entry),
    or FieldError naming the field ("sensitivity must be a number above 0")."""
    if not isinstance(obj, dict):
        raise FieldError(prefix.rstrip(".") or None, "a transducer must be an object")
    type_ = _text(obj, "type", prefix, required=True)
    if not _NAME.match(type_):
        raise FieldError(
            _where(prefix, "type"),
            "type must be 1 to 40 letters, digits, '-' or '.' (e.g. 4189-A-021)",
        )
    serial = _text(obj, "serial", prefix, required=True)
    if not _NAME.match(serial):
        raise FieldError(
            _where(prefix, "serial"), "serial must be 1 to 40 letters, digits, '-' or '.'"
        )
    sensitivity = _sensitivity(obj.get("sensitivity"), _where(prefix, "sensitivity"))
    unit = _text(obj, "unit", prefix, required=True)
    unit = _UNIT_SPELLINGS.get(unit.replace(" ", ""), unit)
    if unit not in UNITS:
        raise FieldError(_where(prefix, "unit"), f"unit must be one of {', '.join(UNITS)}")
    calibrated = _date(obj, "calibrated", prefix)
    due = _date(obj, "due", prefix)
    if calibrated and due and due < calibrated:
        raise FieldError(_where(prefix, "due"), "due must not be before calibrated")
    teds_sens = obj.get("teds_sensitivity")
    history_in = obj.get("history") or []
    if not isinstance(history_in, list):
        raise FieldError(_where(prefix, "history"), "history must be a list")
    history = []
    for i, h in enumerate(history_in):
        if not isinstance(h, dict):
            raise FieldError(_where(prefix, f"history.{i}"), "a calibration must be an object")
        known = {k: h[k] for k in Calibration.__dataclass_fields__ if k in h}
        try:
            history.append(Calibration(**known))
        except TypeError as exc:
            raise FieldError(_where(prefix, f"history.{i}"), str(exc)) from None
    by = _text(obj, "calibrated_by", prefix)
    if len(by) > 80:
        raise FieldError(_where(prefix, "calibrated_by"), "calibrated_by is longer than 80")
    return TransducerEntry(
        type=type_,
        serial=serial,
        sensitivity=sensitivity,
        unit=unit,
        ccld=_flag(obj, "ccld", prefix),
        polarisation=_flag(obj, "polarisation", prefix),
        calibrated=calibrated,
        due=due,
        calibrated_by=by,
        teds=_flag(obj, "teds", prefix),
        teds_sensitivity=(
            None
            if teds_sens in (None, "")
            else _sensitivity(teds_sens, _where(prefix, "teds_sensitivity"), "teds_sensitivity")
        ),
        history=tuple(history),
    )


def teds_type(teds: dict[str, Any]) -> str:
    """A detected transducer's type as the database names it ("4189-A-021")."""
    t = {str(k).lower(): v for k, v in (teds.get("type") or {}).items()}
    parts = [str(t.get(k) or "") for k in ("prefix", "number", "model", "variant")]
    return "-".join(p for p in parts if p)


class _FileLock:
    """The database's lock, shared by every process on the data dir (the capture engine
    adds detected transducers while web processes edit): a thread lock, then ``flock`` on a
    lock file beside the database; on entry the entries are read again when another process
    has written the file since."""

    def __init__(self, db: TransducerDatabase) -> None:
        self._db = db
        self._thread = threading.Lock()
        self._file: Any = None

    def __enter__(self) -> None:
        self._thread.acquire()
        try:
            path = self._db.path
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
            fcntl.flock(self._file, fcntl.LOCK_EX)
            self._db._reload_if_changed()
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._db._seen = self._db._stat()
        self._release()

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()  # releases the flock
            self._file = None
        self._thread.release()


class TransducerDatabase:
    """The database file and its rules; thread-safe and safe across processes on one data
    dir (:class:`_FileLock`), every change written at once."""

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / DATABASE_FILE
        self._entries: dict[str, TransducerEntry] = {}
        self._seen: tuple[int, int, int] | None = None
        self._lock = _FileLock(self)
        with self._lock:
            pass  # the first read

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _reload_if_changed(self) -> None:
        stat = self._stat()
        if stat != self._seen:
            self._entries = {}
            self._load()
            self._seen = stat

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        for i, obj in enumerate(document.get("transducers", [])):
            entry = check_entry(obj, f"{self.path.name}: transducers.{i}.")
            self._entries[entry.id] = entry

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "version": 1,
            "transducers": [
                {**asdict(e), "history": [asdict(c) for c in e.history]}
                for e in sorted(self._entries.values(), key=lambda e: (e.type, e.serial))
            ],
        }
        write_json(self.path, document)

    # --- reading -----------------------------------------------------------------------------

    def all(self) -> list[TransducerEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: (e.type, e.serial))

    def get(self, transducer: str) -> TransducerEntry:
        with self._lock:
            entry = self._entries.get(transducer)
        if entry is None:
            raise KeyError(transducer)
        return entry

    def find(self, type_: str, serial: str | int) -> TransducerEntry | None:
        with self._lock:
            return self._entries.get(transducer_id(type_, serial))

    def view(self, today: date | None = None) -> dict[str, Any]:
        entries = self.all()
        return {
            "transducers": [e.to_json(today) for e in entries],
            "overdue": [e.id for e in entries if e.overdue(today)],
            "units": list(UNITS),
            "csv_columns": list(CSV_COLUMNS),
        }

    # --- changing ----------------------------------------------------------------------------

    def put(self, body: Any, user: str, replace_id: str | None = None) -> TransducerEntry:
        """Add a transducer, or replace ``replace_id`` (its history is kept)."""
        entry = check_entry(body)
        with self._lock:
            old = self._entries.get(replace_id or entry.id)
            if replace_id is not None and old is None:
                raise KeyError(replace_id)
            if replace_id is None and old is not None:
                raise FieldError("serial", f"transducer {entry.type} s/n {entry.serial} exists")
            if replace_id is not None and entry.id != replace_id and entry.id in self._entries:
                raise FieldError("serial", f"transducer {entry.type} s/n {entry.serial} exists")
            entry = replace(
                entry,
                history=_history_after(old, entry, user, "manual"),
                teds=old.teds if old else entry.teds,
                teds_sensitivity=old.teds_sensitivity if old else entry.teds_sensitivity,
            )
            if replace_id is not None:
                del self._entries[replace_id]
            self._entries[entry.id] = entry
            self._save()
        return entry

    def remove(self, transducer: str) -> None:
        with self._lock:
            if transducer not in self._entries:
                raise KeyError(transducer)
            del self._entries[transducer]
            self._save()

    def add_detected(self, teds: dict[str, Any] | None) -> TransducerEntry | None:
        """A TEDS-detected transducer: added when new (sensitivity from TEDS), otherwise its
        TEDS sensitivity noted, so a difference to the latest calibration can be shown."""
        if not teds:
            return None
        low = {str(k).lower(): v for k, v in teds.items()}
        type_ = teds_type(teds)
        serial = str(low.get("serialnumber") or "")
        if not type_ or not serial or type_ == "None":
            return None
        sensitivity = low.get("sensitivity")
        with self._lock:
            old = self._entries.get(transducer_id(type_, serial))
            if old is not None:
                entry = replace(old, teds=True, teds_sensitivity=float(sensitivity))
            else:
                entry = check_entry(
                    {
                        "type": type_,
                        "serial": serial,
                        "sensitivity": sensitivity,
                        "unit": low.get("unit", "V"),
                        "ccld": bool(low.get("requiresccld")),
                        "polarisation": bool(low.get("requires200v")),
                        "teds": True,
                        "teds_sensitivity": sensitivity,
                    }
                )
                entry = replace(
                    entry,
                    history=(
                        Calibration(
                            date=_now(), user="TEDS", sensitivity=entry.sensitivity, source="teds"
                        ),
                    ),
                )
            if old == entry:
                return entry
            self._entries[entry.id] = entry
            self._save()
        return entry

    def accept_teds(self, transducer: str, user: str) -> TransducerEntry:
        """The user chose the TEDS sensitivity over the latest calibration."""
        with self._lock:
            old = self._entries.get(transducer)
            if old is None:
                raise KeyError(transducer)
            if old.teds_sensitivity is None:
                raise FieldError("teds_sensitivity", "no TEDS sensitivity was detected")
            entry = replace(
                old,
                sensitivity=old.teds_sensitivity,
                history=_trim(
                    old.history
                    + (
                        Calibration(
                            date=_now(),
                            user=user,
                            sensitivity=old.teds_sensitivity,
                            previous_sensitivity=old.sensitivity,
                            source="teds",
                        ),
                    )
                ),
            )
            self._entries[transducer] = entry
            self._save()
        return entry

    def record_calibration(
        self,
        transducer: str,
        *,
        sensitivity: float,
        user: str,
        reference: str = "",
        deviation_db: float | None = None,
        passed: bool | None = None,
        due: str | None = None,
        when: datetime | None = None,
    ) -> TransducerEntry:
        """Store a new sensitivity (a confirmed check) with date and user in the history."""
        sensitivity = _sensitivity(sensitivity, "sensitivity")
        due = _date({"due": due}, "due", "")
        when = when or datetime.now(UTC)
        with self._lock:
            old = self._entries.get(transducer)
            if old is None:
                raise KeyError(transducer)
            today = when.date().isoformat()
            if due is not None and due < today:
                raise FieldError("due", "due must not be before the calibration")
            entry = replace(
                old,
                sensitivity=sensitivity,
                calibrated=today,
                calibrated_by=user,
                due=due if due is not None else old.due,
                history=_trim(
                    old.history
                    + (
                        Calibration(
                            date=when.isoformat(timespec="seconds"),
                            user=user,
                            sensitivity=sensitivity,
                            reference=reference,
                            deviation_db=deviation_db,
                            passed=passed,
                            previous_sensitivity=old.sensitivity,
                            source="check",
                        ),
                    )
                ),
            )
            self._entries[transducer] = entry
            self._save()
        return entry

    def import_csv(self, text: str, user: str) -> list[TransducerEntry]:
        """Add or update every row of a CSV file, or none: a bad row is refused with its row
        number (the header is row 1) and column."""
        entries = parse_csv(text)
        with self._lock:
            out = []
            for entry in entries:
                old = self._entries.get(entry.id)
                entry = replace(
                    entry,
                    history=_history_after(old, entry, user, "csv"),
                    teds=old.teds if old else False,
                    teds_sensitivity=old.teds_sensitivity if old else None,
                )
                self._entries[entry.id] = entry
                out.append(entry)
            if out:
                self._save()
        return out


def parse_csv(text: str) -> list[TransducerEntry]:
    """Rows of a transducer CSV file (comma or semicolon separated, header row first)."""
    if not text.strip():
        raise FieldError("csv", "the CSV file is empty")
    sample = text[:2048]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter)
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
    if missing:
        raise FieldError("csv", f"row 1: the header lacks the column(s) {', '.join(missing)}")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise FieldError(
            "csv",
            f"row 1: unknown column(s) {', '.join(unknown)}; known: {', '.join(CSV_COLUMNS)}",
        )
    entries: list[TransducerEntry] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(reader, start=2):
        values = {
            (k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None
        }
        if None in row:
            raise FieldError("csv", f"row {number}: more values than columns")
        if not any(values.values()):
            continue
        try:
            entry = check_entry(values)
        except FieldError as exc:
            column = (exc.field or "").split(".")[-1]
            raise FieldError("csv", f"row {number}, column {column}: {exc.message}") from None
        if entry.id in seen:
            raise FieldError(
                "csv",
                f"row {number}, column serial: {entry.type} s/n {entry.serial} is also on "
                f"row {seen[entry.id]}",
            )
        seen[entry.id] = number
        entries.append(entry)
    if not entries:
        raise FieldError("csv", "the CSV file has no transducer rows")
    return entries


def _history_after(
    old: TransducerEntry | None, entry: TransducerEntry, user: str, source: str
) -> tuple[Calibration, ...]:
    """``old``'s calibration history, with a record of ``entry``'s sensitivity when it is new."""
    history = old.history if old else ()
    if old is not None and old.sensitivity == entry.sensitivity:
        return history
    return _trim(
        history
        + (
            Calibration(
                date=_now(),
                user=user,
                sensitivity=entry.sensitivity,
                previous_sensitivity=old.sensitivity if old else None,
                source=source,
            ),
        )
    )


def _trim(history: tuple[Calibration, ...]) -> tuple[Calibration, ...]:
    return history[-HISTORY_KEEP:]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
