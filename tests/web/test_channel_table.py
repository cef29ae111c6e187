"""The channel table over HTTP: labels saved with the setup, the CSV export and import (bad rows
refused naming row and column), the setup as a JSON file, and what a start request carries."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.waiting import wait_until
from webapp.capture.channeltable import TableError, parse_csv, write_csv


def rig(client, dash, *addresses: str) -> None:
    for address in addresses:
        assert client.post("/api/rig/modules", json={"address": address}).status_code == 201
    wait_until(lambda: all(m.get("probing") is False for m in dash.rig.view()["modules"]))


TABLE = (
    "module,channel,name,point,direction,group,note\r\n"
    "127.0.3.1,1,Gearbox 1X+,gearbox:1,+X,gearbox,\r\n"
    '127.0.3.1,2,"Driver\'s ear, left",cabin:7,,acoustics,"B&K 4189, free field"\r\n'
    "127.0.3.2,6,Mount,mount:12:-z,,,rear\r\n"
)


def test_labels_are_saved_with_the_setup_and_normalised(client, dash):
    rig(client, dash, "127.0.3.1")
    rows = client.get("/api/setup").get_json()["setup"]["channels"]["127.0.3.1"]
    assert rows[0]["name"] == "" and rows[0]["point"] == ""  # every row has the fields
    rows[0].update(name="  Gearbox   1X+ ", point="gearbox:1:x")
    r = client.put("/api/setup", json={"channels": {"127.0.3.1": rows}})
    assert r.status_code == 200, r.get_json()
    saved = json.loads((dash.data_dir / "setup.json").read_text())["channels"]["127.0.3.1"][0]
    assert (saved["name"], saved["point"], saved["direction"]) == ("Gearbox 1X+", "gearbox:1", "+X")
    rows[1]["direction"] = "up"
    r = client.put("/api/setup", json={"channels": {"127.0.3.1": rows}})
    assert r.status_code == 400
    assert r.get_json()["field"] == "channels.127.0.3.1[1].direction"
    assert r.get_json()["error"].startswith("127.0.3.1 channel 2: direction must be one of +X")


def test_csv_round_trip_through_the_api(client, dash):
    rig(client, dash, "127.0.3.1", "127.0.3.2")
    r = client.put("/api/setup/channels.csv", data=TABLE, content_type="text/csv")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["imported"] == {"rows": 3, "modules": ["127.0.3.1", "127.0.3.2"]}
    rows = r.get_json()["setup"]["channels"]
    assert rows["127.0.3.2"][5]["point"] == "mount:12" and rows["127.0.3.2"][5]["direction"] == "-Z"
    assert rows["127.0.3.1"][2]["name"] == ""  # not in the table: left as it was
    got = client.get("/api/setup/channels.csv")
    assert got.mimetype == "text/csv" and "attachment" in got.headers["Content-Disposition"]
    text = got.get_data(as_text=True)
    lines = text.splitlines()
    assert lines[0] == "module,channel,name,point,direction,group,note"
    assert len(lines) == 1 + 6 + 6  # every channel of both modules
    assert lines[2] == '127.0.3.1,2,"Driver\'s ear, left",cabin:7,,acoustics,"B&K 4189, free field"'
    # What was exported imports to the same setup (JSON form of the request this time).
    before = client.get("/api/setup").get_json()["setup"]
    r = client.put("/api/setup/channels.csv", json={"csv": text})
    assert r.status_code == 200 and r.get_json()["setup"] == before


@pytest.mark.parametrize(
    ("table", "field", "message"),
    [
        ("module,chan\r\n", "csv.row1.chan", "row 1, column chan: unknown column"),
        ("module,name\r\n", "csv.row1.channel", "row 1, column channel: is missing"),
        ("module,channel\r\n127.0.3.1,1\r\n127.0.3.1,x\r\n", "csv.row3.channel",
         "row 3, column channel: 'x' is not a channel number"),
        ("module,channel,point\r\n127.0.3.1,1,gearbox:one\r\n", "csv.row2.point",
         "row 2, column point: node 'one' must be a whole number"),
        ("module,channel,direction\r\n127.0.3.1,1,+Q\r\n", "csv.row2.direction",
         "row 2, column direction: must be one of +X"),
        ("module,channel,name\r\n127.0.3.1,1,a\r\n127.0.3.1,1,b\r\n", "csv.row3.channel",
         "row 3, column channel: 127.0.3.1 channel 1 is already in row 2"),
        ("module,channel\r\n127.0.3.9,1\r\n", "csv.row2.module",
         "row 2, column module: 127.0.3.9 is not in the rig"),
        ("module,channel\r\n127.0.3.1,7\r\n", "csv.row2.channel",
         "row 2, column channel: 127.0.3.1 has 6 input channels, not 7"),
        ("module;channel;name\r\n127.0.3.1;1;" + "n" * 65 + "\r\n", "csv.row2.name",
         "row 2, column name: must be at most 64 characters"),
    ],
)  # fmt: skip
def test_bad_rows_are_refused_naming_row_and_column(client, dash, table, field, message):
    rig(client, dash, "127.0.3.1")
    before = client.get("/api/setup").get_json()["setup"]
    r = client.put("/api/setup/channels.csv", data=table, content_type="text/csv")
    assert r.status_code == 400
    assert r.get_json()["field"] == field
    assert r.get_json()["error"].startswith(message), r.get_json()["error"]
    assert client.get("/api/setup").get_json()["setup"] == before  # nothing changed


def test_spreadsheet_spellings_parse():
    rows = parse_csv("\ufeffModule;Channel;Point\r\n10.0.0.2;3;wheel:4:+rz\r\n;;\r\n")
    assert [(r.row, r.module, r.channel, r.label["point"], r.label["direction"]) for r in rows] == [
        (2, "10.0.0.2", 3, "wheel:4", "+RZ")
    ]
    assert write_csv({"10.0.0.2": [{"channel": 3, **rows[0].label}]}).splitlines()[1] == (
        "10.0.0.2,3,,wheel:4,+RZ,,"
    )
    with pytest.raises(TableError, match="row 1: the header row is missing"):
        parse_csv("")


def test_setup_file_round_trip(client, dash):
    rig(client, dash, "127.0.3.1")
    client.put("/api/setup/channels.csv", data=TABLE.splitlines()[0] + "\n127.0.3.1,3,Hub\n",
               content_type="text/csv")  # fmt: skip
    client.put("/api/setup", json={"test": {"object": "Car 7", "tags": ["nvh"]}})
    r = client.get("/api/setup/file")
    assert "attachment" in r.headers["Content-Disposition"]
    saved = r.get_json()
    assert saved["channels"]["127.0.3.1"][2]["name"] == "Hub"
    assert saved["test"]["object"] == "Car 7"
    client.put("/api/setup", json={"test": {}, "channels": {"127.0.3.1": []}})
    assert client.put("/api/setup", json=saved).status_code == 200
    assert client.get("/api/setup/file").get_json() == saved


def test_start_carries_labels_test_metadata_and_the_name_template(client, dash, orchestrator):
    rig(client, dash, "127.0.3.1", "127.0.3.2")
    client.put("/api/setup/channels.csv", data=TABLE, content_type="text/csv")
    r = client.put(
        "/api/setup",
        json={"test": {"object": "Car 7", "operator": "Ada", "tags": "nvh, road",
                       "name_template": "{object}_{date}_{n}"}},
    )  # fmt: skip
    assert r.status_code == 200, r.get_json()
    today = time.strftime("%Y%m%d", time.gmtime())
    (dash.data_dir / "captures" / f"{today}-120000-Car_7_{today}_1").mkdir()
    r = client.post("/api/capture/start", json={"duration_s": 1, "test": {"notes": "2nd gear"}})
    assert r.status_code == 202, r.get_json()
    ((_, settings),) = orchestrator.calls
    assert settings.name == f"Car_7_{today}_2"  # _1 is taken
    assert settings.test == {"object": "Car 7", "operator": "Ada", "notes": "2nd gear",
                             "tags": ["nvh", "road"]}  # fmt: skip
    assert settings.labels["127.0.3.1"] == [
        {"channel": 1, "name": "Gearbox 1X+", "point": "gearbox:1", "direction": "+X",
         "group": "gearbox", "note": ""},
        {"channel": 2, "name": "Driver's ear, left", "point": "cabin:7", "direction": "",
         "group": "acoustics", "note": "B&K 4189, free field"},
    ]  # fmt: skip
    client.post("/api/capture/stop")
    r = client.put("/api/setup", json={"test": {"name_template": "{object}_{speed}"}})
    assert r.status_code == 400 and r.get_json()["field"] == "test.name_template"
    assert "unknown field {speed}" in r.get_json()["error"]
