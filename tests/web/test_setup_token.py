"""The first admin from the browser: ``serve --setup-token`` without users starts with access
control on, prints a one-time link, and the first visitor with it creates the admin account;
then the link is dead. Run as a real ``serve`` process on a loopback address of this test's
block (a non-loopback bind is not allowed here; the option forces the mode the Docker image
uses on 0.0.0.0)."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.support.accounts import PASSWORD
from tests.support.processes import serve
from webapp.web.access.accounts import UserStore
from webapp.web.access.setuptoken import SetupToken, setup_mode

HOST = "127.0.44.30"


def test_set_up_mode_only_when_asked_for_and_no_users_exist(tmp_path: Path) -> None:
    assert setup_mode(False, tmp_path) is False
    assert setup_mode(True, tmp_path) is True
    UserStore(tmp_path).add("ada", "admin", PASSWORD)
    assert setup_mode(True, tmp_path) is False  # users exist: log in as usual


def test_a_token_is_spent_once() -> None:
    holder = SetupToken()
    token = holder.token
    assert token and len(token) >= 40
    assert not holder.spend("wrong")
    assert holder.spend(token)
    assert not holder.spend(token) and not holder.valid(token)


def test_the_first_visitor_with_the_link_creates_the_admin_then_the_link_is_dead(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with serve(data_dir, "--setup-token", host=HOST, ready_path="/login") as base:
        log = (data_dir / "serve.log").read_text()
        assert "access control on" in log
        match = re.search(r"(http://\S+/setup-admin/(\S+))", log)
        assert match, log
        link, token = match.group(1), match.group(2)
        assert link.startswith(base)
        assert requests.get(f"{base}/api/state", timeout=10).status_code == 401  # no way in
        assert requests.get(f"{base}/setup-admin/{token[:-1]}x", timeout=10).status_code == 404

        browser = requests.Session()
        form = browser.get(link, timeout=10)
        assert form.status_code == 200 and "Create the admin account" in form.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        r = browser.post(
            link,
            data={"csrf_token": csrf, "username": "root-admin", "password": PASSWORD},
            headers={"Origin": base},
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 302 and r.headers["Location"].endswith("/login"), r.text
        user = UserStore(data_dir).get("root-admin")
        assert user is not None and user.role == "admin"

        # The link is dead, for a second visitor and for the first one alike.
        assert requests.get(link, timeout=10).status_code == 404
        again = browser.post(
            link,
            data={"csrf_token": csrf, "username": "intruder", "password": PASSWORD},
            headers={"Origin": base},
            allow_redirects=False,
            timeout=30,
        )
        assert again.status_code == 404
        assert UserStore(data_dir).get("intruder") is None

        # The admin logs in as usual.
        s = requests.Session()
        token2 = s.get(f"{base}/api/auth/session", timeout=10).json()["csrf_token"]
        r = s.post(
            f"{base}/login",
            json={"username": "root-admin", "password": PASSWORD},
            headers={"X-CSRF-Token": token2, "Origin": base},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["role"] == "admin"


def test_without_the_option_no_link_is_made(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with serve(data_dir, host=HOST) as base:
        assert "setup-admin" not in (data_dir / "serve.log").read_text()
        assert requests.get(f"{base}/setup-admin/anything", timeout=10).status_code == 404
