"""Shared by the access-control tests: the real dashboard app with access control on, cheap
password hashing, and logged-in test clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.accounts import PASSWORD, cheap_hasher
from tests.support.captures import CAPTURE_ID, make_capture
from webapp.web.access import accounts
from webapp.web.access.accounts import ShareStore, UserStore
from webapp.web.app import create_app

OTHER_CAPTURE_ID = "20260102-120000-Other"
ROLE_USERS = {"vic": "viewer", "olga": "operator", "otto": "operator", "ada": "admin"}


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "HASHER", cheap_hasher())


def secure_app(data_dir: Path, bus: Any, orchestrator: Any, **config: Any) -> Any:
    users = UserStore(data_dir)
    for name, role in ROLE_USERS.items():
        if users.get(name) is None:
            users.add(name, role, PASSWORD)
    make_capture(data_dir, CAPTURE_ID, address="127.0.5.1")
    make_capture(data_dir, OTHER_CAPTURE_ID, address="127.0.5.1")
    app = create_app(
        data_dir, orchestrator=orchestrator, bus=bus, push_interval_s=0.02, auth_enabled=True
    )
    app.config["TESTING"] = True
    app.config.update(config)
    return app


def csrf(client: Any) -> str:
    return client.get("/api/auth/session").get_json()["csrf_token"]


def login(app: Any, name: str, password: str = PASSWORD) -> Any:
    """A Flask test client logged in as ``name``, with ``client.csrf`` set."""
    client = app.test_client()
    token = csrf(client)
    r = client.post(
        "/login",
        json={"username": name, "password": password},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200, r.get_json()
    client.csrf = r.get_json()["csrf_token"]
    return client


def send(client: Any, method: str, url: str, body: Any = None, **headers: str) -> Any:
    """A state-changing request as the dashboard's pages make it (token header, same origin)."""
    hdrs = {"X-CSRF-Token": client.csrf, "Origin": "http://localhost", **headers}
    return client.open(url, method=method, json=body, headers=hdrs)


def share_token(data_dir: Path, scope: str, capture_id: str | None = None) -> tuple[str, str]:
    token, share = ShareStore(data_dir).create(scope, capture_id, "test", None)
    return token, share.id
