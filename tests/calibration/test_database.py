"""The transducer database's rules: one validation, CSV import naming row and column, TEDS
detections added, overdue calibrations, history kept across restarts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from webapp.calibration.database import TransducerDatabase, check_entry
from webapp.capture.schemas import FieldError
from webapp.emulator.rig import microphone

MIC = {"type": "4189-A-021", "serial": "3021100", "sensitivity": 0.048, "unit": "Pa"}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"sensitivity": 0}, "sensitivity", "must be a number above 0"),
        ({"sensitivity": "fifty"}, "sensitivity", "must be a number above 0"),
        ({"unit": "furlong"}, "unit", "unit must be one of"),
        ({"type": ""}, "type", "type is required"),
        ({"serial": "a b"}, "serial", "serial must be"),
        ({"calibrated": "2026-13-01"}, "calibrated", "must be a date"),
        ({"calibrated": "2026-05-01", "due": "2026-04-01"}, "due", "not be before"),
        ({"ccld": "maybe"}, "ccld", "yes or no"),
    ],
)
def test_one_validation_names_the_field(change: dict, field: str, words: str) -> None:
    with pytest.raises(FieldError, match=words) as info:
        check_entry({**MIC, **change})
    assert info.value.field == field


def test_units_are_normalised() -> None:
    assert check_entry({**MIC, "unit": "m/s²"}).unit == "m/s^2"
    assert check_entry({**MIC, "unit": "m/s2"}).unit == "m/s^2"


def test_csv_import_refuses_a_bad_row_naming_row_and_column(tmp_path: Path) -> None:
    db = TransducerDatabase(tmp_path)
    text = (
        "type,serial,sensitivity,unit,ccld,calibrated,due\n"
        "4189-A-021,3021100,0.048,Pa,yes,2026-01-10,2027-01-10\n"
        "4533-B-001,50900,-1,m/s^2,yes,,\n"
    )
    with pytest.raises(FieldError, match=r"row 3, column sensitivity: sensitivity must be"):
        db.import_csv(text, "ana")
    assert db.all() == []  # all or nothing
    with pytest.raises(FieldError, match=r"row 1: unknown column\(s\) colour"):
        db.import_csv("type,serial,sensitivity,unit,colour\n", "ana")
    with pytest.raises(FieldError, match=r"row 1: the header lacks the column\(s\) unit"):
        db.import_csv("type;serial;sensitivity\n4189;1;0.05\n", "ana")
    dup = "type,serial,sensitivity,unit\n4189,1,0.05,Pa\n4189,1,0.051,Pa\n"
    with pytest.raises(FieldError, match=r"row 3, column serial: 4189 s/n 1 is also on row 2"):
        db.import_csv(dup, "ana")
    good = text.replace("-1,", "0.0101,")
    entries = db.import_csv(good, "ana")
    assert [e.id for e in entries] == ["4189-A-021_3021100", "4533-B-001_50900"]
    assert db.get("4189-A-021_3021100").ccld is True
    assert db.get("4189-A-021_3021100").history[-1].source == "csv"


def test_semicolon_csv_with_bom(tmp_path: Path) -> None:
    db = TransducerDatabase(tmp_path)
    db.import_csv("\ufefftype;serial;sensitivity;unit\n4189;7;0.05;Pa\n", "ana")
    assert db.get("4189_7").sensitivity == 0.05


def test_overdue_from_the_day_after_due(tmp_path: Path) -> None:
    db = TransducerDatabase(tmp_path)
    db.put({**MIC, "calibrated": "2025-01-01", "due": "2026-01-01"}, user="ana")
    entry = db.get("4189-A-021_3021100")
    assert not entry.overdue(date(2026, 1, 1))
    assert entry.overdue(date(2026, 1, 2))
    assert db.view(date(2026, 1, 2))["overdue"] == ["4189-A-021_3021100"]
    assert entry.summary(date(2026, 1, 2))["overdue"] is True


def test_teds_detection_adds_then_notes_a_differing_sensitivity(tmp_path: Path) -> None:
    db = TransducerDatabase(tmp_path)
    teds = microphone(0).to_json(flags_as_int=True)
    added = db.add_detected(teds)
    assert added is not None and added.id == "4189-A-021_3021100"
    assert added.ccld and added.sensitivity == 0.048 and not added.teds_differs()
    db.record_calibration(added.id, sensitivity=0.0500, user="ana", reference="94dB@1kHz")
    again = db.add_detected(teds)
    assert again is not None and again.sensitivity == 0.05 and again.teds_differs()
    chosen = db.accept_teds(added.id, "ana")  # the user chooses the TEDS value
    assert chosen.sensitivity == 0.048 and not chosen.teds_differs()
    # Everything survives a restart, history in order.
    reloaded = TransducerDatabase(tmp_path).get(added.id)
    assert [c.source for c in reloaded.history] == ["teds", "check", "teds"]
    assert reloaded.history[1].user == "ana" and reloaded.history[1].previous_sensitivity == 0.048
    document = json.loads((tmp_path / "transducers.json").read_text())
    assert document["version"] == 1 and len(document["transducers"]) == 1


def test_adding_twice_and_replacing(tmp_path: Path) -> None:
    db = TransducerDatabase(tmp_path)
    db.put(MIC, user="ana")
    with pytest.raises(FieldError, match="exists"):
        db.put(MIC, user="ana")
    db.put({**MIC, "sensitivity": 0.049}, user="bo", replace_id="4189-A-021_3021100")
    history = db.get("4189-A-021_3021100").history
    assert [(c.user, c.sensitivity) for c in history] == [("ana", 0.048), ("bo", 0.049)]
    with pytest.raises(KeyError):
        db.remove("nope_1")


def test_two_processes_on_one_data_dir_see_and_keep_each_others_changes(tmp_path: Path) -> None:
    """The capture engine adds detected transducers while a web process edits the database:
    each reads the other's writes and neither overwrites them (docs/deploy.md)."""
    engine, web = TransducerDatabase(tmp_path), TransducerDatabase(tmp_path)
    web.put(MIC, user="ana")
    accel = {"type": "4533-B", "serial": "50123", "sensitivity": 0.01, "unit": "m/s²"}
    engine.put(accel, user="engine")  # engine had not read the file since web wrote it
    assert {e.type for e in web.all()} == {"4189-A-021", "4533-B"}
    assert {e.type for e in TransducerDatabase(tmp_path).all()} == {"4189-A-021", "4533-B"}
