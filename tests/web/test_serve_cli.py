"""``serve``'s wiring, without opening a listening socket: access control follows the users and
the address, the plain-HTTP warning, ``--proxy-hops``, the emulated rig replacing the stored
one, and anonymous Socket.IO handshakes refused before any HTTP request."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask_socketio import SocketIO
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.cli import build_parser
from webapp.web import cli as serve_cli
from webapp.web.access.accounts import UserStore


@pytest.fixture
def served(monkeypatch):
    """Runs ``serve`` up to the point where it would listen; returns what it would serve."""
    seen: dict = {}

    def fake_run(self, app, **kwargs):
        seen["app"], seen["kwargs"] = app, kwargs

    monkeypatch.setattr(SocketIO, "run", fake_run)
    # Nothing listens: the address need not exist here (the real bind: test_serve_port_taken).
    monkeypatch.setattr(serve_cli, "listening_socket", lambda host, port: socket.socket())

    def serve(*argv: str) -> int:
        args = build_parser().parse_args(["serve", *argv])
        seen["code"] = serve_cli.serve(args)
        return seen["code"]

    return serve, seen


def add_user(data_dir: Path) -> None:
    users = UserStore(data_dir, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    users.add("ada", "admin", "correct horse battery")


def test_loopback_without_users_serves_without_login(served, tmp_path, capsys):
    serve, seen = served
    assert serve("--host", "127.0.3.9", "--data-dir", str(tmp_path)) == 0
    app = seen["app"]
    assert app.config["LANXI_AUTH_ENABLED"] is False
    assert seen["kwargs"]["host"] == "127.0.3.9"
    assert "warning" not in capsys.readouterr().err


def test_users_turn_access_control_on_even_on_loopback(served, tmp_path):
    serve, seen = served
    add_user(tmp_path)
    serve("--host", "127.0.3.9", "--data-dir", str(tmp_path))
    assert seen["app"].config["LANXI_AUTH_ENABLED"] is True


def test_network_address_with_users_warns_about_plain_http(served, tmp_path, capsys):
    serve, seen = served
    add_user(tmp_path)
    assert serve("--host", "192.0.2.10", "--data-dir", str(tmp_path)) == 0
    err = capsys.readouterr().err
    assert "plain HTTP" in err and "--certfile" in err
    assert seen["app"].config["LANXI_AUTH_ENABLED"] is True


def test_proxy_hops_trusts_forwarded_headers(served, tmp_path):
    serve, seen = served
    serve("--data-dir", str(tmp_path), "--proxy-hops", "1")
    app = seen["app"]
    assert isinstance(app.wsgi_app, ProxyFix) and app.config["LANXI_PROXY_HOPS"] == 1
    client = app.test_client()
    r = client.get("/api/state", headers={"X-Forwarded-For": "203.0.113.5"})
    assert r.status_code == 200
    assert serve("--data-dir", str(tmp_path), "--proxy-hops", "11") == 2


def test_secret_key_is_made_by_access_control_once(served, tmp_path):
    serve, seen = served
    serve("--data-dir", str(tmp_path))
    key_file = tmp_path / ".secret_key"
    key = key_file.read_bytes()
    assert len(key) >= 32 and key_file.stat().st_mode & 0o777 == 0o600
    assert seen["app"].config["SECRET_KEY"] == key
    serve("--data-dir", str(tmp_path))
    assert key_file.read_bytes() == key  # kept across restarts: sessions survive them


def test_emulated_modules_replace_the_stored_rig(served, tmp_path):
    serve, seen = served
    (tmp_path / "rig.json").write_text(
        '{"modules": ["127.0.3.200"], "master": null, "ptp_domain": 9}'
    )
    serve("--data-dir", str(tmp_path), "--emulate", "2", "--ptp-lock-seconds", "0.2")
    dash = seen["app"].extensions["lanxi"]
    rig = dash.rig.view()
    addresses = [m["address"] for m in rig["modules"]]
    assert len(addresses) == 2 and "127.0.3.200" not in addresses
    assert all(m["emulated"] for m in rig["modules"])
    assert dash.faults.view()["modules"] == addresses  # the fault panel offers them
    # serve stopped its emulated modules when it returned.
    import requests

    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{addresses[0]}/rest/rec/module/info", timeout=2)


def test_anonymous_socket_handshake_refused_before_any_http_request(served, tmp_path):
    serve, seen = served
    add_user(tmp_path)
    serve("--host", "127.0.3.9", "--data-dir", str(tmp_path))
    app = seen["app"]
    sio = app.extensions["lanxi"].socketio
    assert app.extensions["lanxi_auth"].socketio is sio  # the handshake gate is in place
    client = sio.test_client(app)  # the very first request this app sees
    assert not client.is_connected()


def test_start_line_names_the_absolute_data_folder_and_access_control(
    served, tmp_path, monkeypatch, capsys
):
    serve, _ = served
    monkeypatch.chdir(tmp_path)
    assert serve("--host", "127.0.44.9", "--data-dir", "bench") == 0
    out = capsys.readouterr().out
    assert f"data in {tmp_path / 'bench'} " in out
    assert "access control off" in out
    add_user(tmp_path / "bench")
    assert serve("--host", "127.0.44.9", "--data-dir", "bench") == 0
    out = capsys.readouterr().out
    assert f"data in {tmp_path / 'bench'} " in out
    assert "access control on" in out


def test_public_url_is_where_share_links_point(served, tmp_path):
    serve, seen = served
    assert serve("--data-dir", str(tmp_path), "--public-url", "https://lab.example.org") == 0
    assert seen["app"].config["LANXI_PUBLIC_URL"] == "https://lab.example.org"
    assert serve("--data-dir", str(tmp_path), "--public-url", "lab.example.org") == 2
