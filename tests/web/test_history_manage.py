"""History over HTTP: rename (a title in capture.json), test metadata, search and tag filter,
confirmed deletion (never of a running capture), roles and the audit log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from auth_support import (
    CAPTURE_ID,
    OTHER_CAPTURE_ID,
    cheap_hashes,  # noqa: F401 - autouse fixture
    login,
    secure_app,
    send,
)

from tests.support.captures import make_capture
from webapp.capture.store import CaptureRecord, ModuleRecord, write_ended


def manifest(folder: Path) -> dict:
    return json.loads((folder / "capture.json").read_text())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_rename_and_annotate_keep_the_folder_and_files(client, dash):
    folder = make_capture(dash.data_dir)
    r = client.patch(
        f"/api/captures/{CAPTURE_ID}",
        json={"title": "Run 3, 2nd gear", "test": {"object": "Car 7", "tags": "nvh, Road"}},
    )
    assert r.status_code == 200, r.get_json()
    summary = r.get_json()
    assert summary["title"] == "Run 3, 2nd gear" and summary["name"] == "Run"
    assert summary["test"] == {
        "object": "Car 7",
        "operator": "",
        "notes": "",
        "tags": ["nvh", "Road"],
    }
    doc = manifest(folder)
    assert doc["title"] == "Run 3, 2nd gear" and doc["edited"]
    assert sorted(p.name for p in folder.iterdir()) == ["Run.1.stream", "capture.json"]
    # Only the keys given change; "" shows the recorded name again.
    r = client.patch(f"/api/captures/{CAPTURE_ID}", json={"title": "", "test": {"notes": "wet"}})
    assert r.get_json()["title"] == "Run"
    assert r.get_json()["test"] == {"object": "Car 7", "operator": "", "notes": "wet",
                                     "tags": ["nvh", "Road"]}  # fmt: skip
    r = client.patch(f"/api/captures/{CAPTURE_ID}", json={"test": {"tags": ["x" * 33]}})
    assert r.status_code == 400 and r.get_json()["field"] == "test.tags"
    r = client.patch(f"/api/captures/{CAPTURE_ID}", json={"name": "other"})
    assert r.status_code == 400 and r.get_json()["field"] == "name"
    assert client.patch("/api/captures/nope", json={"title": "x"}).status_code == 404


def test_search_and_tag_filter(client, dash):
    make_capture(dash.data_dir, "20260101-120000-Run")
    make_capture(dash.data_dir, "20260102-120000-Other")
    client.patch("/api/captures/20260101-120000-Run",
                 json={"test": {"object": "Gearbox GB-4", "tags": ["nvh", "road"]}})  # fmt: skip
    client.patch("/api/captures/20260102-120000-Other",
                 json={"title": "Cabin noise", "test": {"tags": ["road"]}})  # fmt: skip

    def ids(query: str) -> list[str]:
        return [c["id"] for c in client.get(f"/api/captures{query}").get_json()["captures"]]

    assert ids("") == ["20260102-120000-Other", "20260101-120000-Run"]
    assert ids("?q=gearbox") == ["20260101-120000-Run"]
    assert ids("?q=CABIN+noise") == ["20260102-120000-Other"]
    assert ids("?q=cabin+gearbox") == []  # every word must match
    assert ids("?tag=road") == ["20260102-120000-Other", "20260101-120000-Run"]
    assert ids("?tag=road&tag=NVH") == ["20260101-120000-Run"]


def test_delete_needs_the_id_again_and_confirm(client, dash):
    folder = make_capture(dash.data_dir)
    for body, field in (
        (None, "id"),
        ({"id": CAPTURE_ID}, "confirm"),
        ({"id": CAPTURE_ID, "confirm": False}, "confirm"),
        ({"id": "20260101-120000-Other", "confirm": True}, "id"),
    ):
        r = client.delete(f"/api/captures/{CAPTURE_ID}", json=body)
        assert r.status_code == 400 and r.get_json()["field"] == field, (body, r.get_json())
        assert folder.is_dir()  # nothing deleted
    size = 3 + (folder / "capture.json").stat().st_size
    r = client.delete(f"/api/captures/{CAPTURE_ID}", json={"id": CAPTURE_ID, "confirm": True})
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"deleted": CAPTURE_ID, "files": 2, "bytes": size}
    assert not folder.exists()
    assert os.listdir(dash.data_dir / "captures") == []  # no trash left behind
    assert client.get("/api/captures").get_json()["captures"] == []
    r = client.delete(f"/api/captures/{CAPTURE_ID}", json={"id": CAPTURE_ID, "confirm": True})
    assert r.status_code == 404


def test_a_running_capture_is_neither_changed_nor_deleted(client, dash, orchestrator):
    folder = make_capture(dash.data_dir)
    doc = manifest(folder)
    doc.update(outcome="running", writer={"pid": os.getpid(), "host": os.uname().nodename,
                                           "start": None})  # fmt: skip
    (folder / "capture.json").write_text(json.dumps(doc))
    body = {"id": CAPTURE_ID, "confirm": True}
    r = client.delete(f"/api/captures/{CAPTURE_ID}", json=body)
    assert r.status_code == 409 and "being recorded" in r.get_json()["error"], r.get_json()
    r = client.patch(f"/api/captures/{CAPTURE_ID}", json={"title": "x"})
    assert r.status_code == 409
    assert manifest(folder) == doc and folder.is_dir()
    # The orchestrator's word counts too, whatever capture.json says.
    doc["outcome"] = "completed"
    (folder / "capture.json").write_text(json.dumps(doc))
    orchestrator.current_capture_id, orchestrator.recording = CAPTURE_ID, True
    assert client.delete(f"/api/captures/{CAPTURE_ID}", json=body).status_code == 409
    orchestrator.recording = False
    assert client.delete(f"/api/captures/{CAPTURE_ID}", json=body).status_code == 200


def test_the_writer_keeps_an_edit_and_does_not_recreate_a_deleted_capture(client, dash):
    folder = dash.data_dir / "captures" / "20260101-120000-Late"
    record = CaptureRecord(
        folder=folder, id=folder.name, name="Late", created=0.0, requested_duration_s=1.0,
        ptp_domain=None, master="127.0.0.1", bandwidth=None, sample_rate=None,
        streaming="single-socket", modules=[ModuleRecord(1, "127.0.0.1", "master")],
    )  # fmt: skip
    record.outcome = "completed"
    record.write(summarize=False)
    client.patch(f"/api/captures/{folder.name}", json={"title": "Renamed"})
    record.left_non_idle = [{"number": 1}]  # the teardown's findings come after the end
    record.write(summarize=False)
    assert manifest(folder)["title"] == "Renamed" and manifest(folder)["left_non_idle"]
    write_ended(folder / "capture.json", record.to_json())
    assert manifest(folder)["title"] == "Renamed"
    r = client.delete(f"/api/captures/{folder.name}", json={"id": folder.name, "confirm": True})
    assert r.status_code == 200
    record.write(summarize=False)
    assert not folder.exists()


def test_roles_and_audit(data_dir, bus, orchestrator):
    app = secure_app(data_dir, bus, orchestrator)
    vic, olga, ada = login(app, "vic"), login(app, "olga"), login(app, "ada")
    assert send(vic, "PATCH", f"/api/captures/{CAPTURE_ID}", {"title": "x"}).status_code == 403
    body = {"id": CAPTURE_ID, "confirm": True}
    assert send(vic, "DELETE", f"/api/captures/{CAPTURE_ID}", body).status_code == 403
    assert (data_dir / "captures" / CAPTURE_ID).is_dir()
    assert send(olga, "PATCH", f"/api/captures/{CAPTURE_ID}", {"title": "Mine"}).status_code == 200
    assert send(olga, "DELETE", f"/api/captures/{OTHER_CAPTURE_ID}",
                {"id": OTHER_CAPTURE_ID, "confirm": True}).status_code == 200  # fmt: skip
    entries = ada.get("/api/auth/audit").get_json()["entries"]
    mine = [e for e in entries if e["action"].startswith("capture-")]
    assert [(e["action"], e["actor"], e.get("ok", True)) for e in mine] == [
        ("capture-edit", "vic", False),  # refusals are written down too
        ("capture-delete", "vic", False),
        ("capture-edited", "olga", True),
        ("capture-edit", "olga", True),
        ("capture-deleted", "olga", True),
        ("capture-delete", "olga", True),
    ]
    assert mine[4]["capture_id"] == OTHER_CAPTURE_ID and mine[4]["files"] == 2
    assert mine[5]["body"] == {"id": OTHER_CAPTURE_ID, "confirm": True}
    assert not (data_dir / "captures" / OTHER_CAPTURE_ID).exists()


def test_a_deletion_cut_short_is_finished_at_the_next_start(tmp_path, bus, orchestrator):
    from webapp.web.app import create_app

    data_dir = tmp_path / "data"
    kept = make_capture(data_dir)
    trash = data_dir / "captures" / ".deleted-20260101-000000-Old-1a2b3c4d"
    (trash / "sub").mkdir(parents=True)
    (trash / "Old.1.stream").write_bytes(b"x")
    create_app(data_dir, orchestrator=orchestrator, bus=bus)
    assert not trash.exists() and kept.is_dir()
