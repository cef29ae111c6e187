"""The label and test-metadata rules (webapp/capture/labels.py) on their own."""

from __future__ import annotations

import calendar

import pytest

from webapp.capture import labels
from webapp.capture.schemas import FieldError, validate

NOW = calendar.timegm((2026, 12, 7, 8, 30, 5, 0, 0, 0))


@pytest.mark.parametrize(
    ("point", "direction", "want"),
    [
        ("gearbox:1:+X", "", ("gearbox:1", "+X")),
        ("gearbox:01", "x", ("gearbox:1", "+X")),
        ("12", "-rz", ("12", "-RZ")),
        ("cabin:7", "scalar", ("cabin:7", "")),
        ("", "", ("", "")),
    ],
)
def test_points_and_directions_normalise(point, direction, want):
    got = validate(labels.LabelFields, {"point": point, "direction": direction})
    assert (got.point, got.direction) == want


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ("gearbox_housing:1", "component 'gearbox_housing' must be 1 to 10"),
        ("gearbox:0", "node '0' must be a whole number from 1"),
        ("gear box:x", "node 'x' must be a whole number"),
    ],
)
def test_bad_points_are_refused_in_words(point, message):
    with pytest.raises(FieldError) as caught:
        validate(labels.LabelFields, {"point": point})
    assert caught.value.field == "point" and message in caught.value.message


def test_uff_codes():
    assert labels.uff_dof({"point": "gearbox:1", "direction": "+X"}) == ("gearbox", 1, 1)
    assert labels.uff_dof({"point": "7", "direction": "-RY"}) == ("", 7, -5)
    assert labels.uff_dof({"point": "", "direction": ""}) == ("", 0, 0)
    assert labels.dof({"point": "mount:12", "direction": "-Z"}) == "mount:12:-Z"


def test_name_template_numbers_past_the_taken_names():
    taken = labels.names_in(
        ["20261207-080000-Car_7_20261207_1", "20261207-080100-Car_7_20261207_2-2"]
    )
    name = labels.name_from_template("{object}_{date}_{n}", {"object": "Car 7"}, "x", taken, NOW)
    assert name == "Car_7_20261207_3"
    assert labels.name_from_template("{operator} {time}", {}, "x", set(), NOW) == "operator 083005"
    with pytest.raises(ValueError, match="template makes"):
        labels.name_from_template("..{n}", {}, "x", set(), NOW)


def test_tags_and_text():
    got = validate(labels.TestInfo, {"tags": "nvh, NVH , road,", "notes": "a\r\nb  c"})
    assert got.tags == ["nvh", "road"] and got.notes == "a\nb  c"
    with pytest.raises(FieldError, match="at most 20"):
        validate(labels.TestInfo, {"tags": [f"t{i}" for i in range(21)]})
    with pytest.raises(FieldError, match="control characters"):
        validate(labels.LabelFields, {"name": "a\x07b"})
