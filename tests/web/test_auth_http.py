"""Access control over HTTP on the real dashboard app: anonymous clients get nothing, viewers
cannot control, CSRF and cross-site checks, control lock, rate-limited login, share links,
user management, downloads and the audit log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from auth_support import (
    CAPTURE_ID,
    OTHER_CAPTURE_ID,
    PASSWORD,
    cheap_hashes,  # noqa: F401 - autouse fixture
    csrf,
    login,
    secure_app,
    send,
    share_token,
)

from webapp.web.access.accounts import ShareStore, UserStore
from webapp.web.access.settings import EXTENSION

CONTROL_REQUESTS = [
    ("POST", "/api/capture/arm", {"name": "Run", "duration_s": 1}),
    ("POST", "/api/capture/start", {"name": "Run", "duration_s": 1}),
    ("POST", "/api/capture/stop", None),
    ("POST", "/api/capture/disarm", None),
    ("PUT", "/api/setup", {"bandwidth": "51.2 kHz"}),
    ("POST", "/api/setup/detect", None),
    ("POST", "/api/setups", {"name": "mine"}),
    ("PUT", "/api/rig", {"ptp_domain": 7}),
    ("POST", "/api/rig/modules", {"address": "127.0.5.9"}),
    ("POST", "/api/emulator/faults", {"module": "127.0.5.1", "fault": "cable-fault"}),
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def app(data_dir, bus, orchestrator):
    return secure_app(data_dir, bus, orchestrator)


def add_rig(app) -> None:
    admin = login(app, "ada")
    for address in ("127.0.5.1", "127.0.5.2"):
        assert send(admin, "POST", "/api/rig/modules", {"address": address}).status_code == 201
    send(admin, "POST", "/api/auth/control/release")


# --- anonymous -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/capture", "/rig", "/setup", "/history"])
def test_anonymous_pages_redirect_to_login(app, path):
    r = app.test_client().get(path, headers={"Accept": "text/html"})
    assert r.status_code == 302
    assert r.headers["Location"].startswith(f"/login?next={path}")


@pytest.mark.parametrize(
    "path",
    [
        "/api/state",
        "/api/rig",
        "/api/setup",
        "/api/captures",
        f"/api/captures/{CAPTURE_ID}",
        f"/api/captures/{CAPTURE_ID}/files/Run.1.stream",
        "/api/auth/users",
        "/api/auth/audit",
        "/api/auth/control",
    ],
)
def test_anonymous_api_gets_401_and_no_data(app, path):
    r = app.test_client().get(path)
    assert r.status_code == 401
    assert r.get_json() == {"error": "login required"}


@pytest.mark.parametrize(("method", "url", "body"), CONTROL_REQUESTS)
def test_anonymous_cannot_control_even_with_a_csrf_token(app, orchestrator, method, url, body):
    client = app.test_client()
    token = csrf(client)
    r = client.open(url, method=method, json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 401
    assert orchestrator.calls == []


def test_login_page_and_static_files_are_public(app):
    client = app.test_client()
    r = client.get("/login")
    assert r.status_code == 200 and b'name="csrf_token"' in r.data
    assert client.get("/static/dashboard.js").status_code == 200


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url", "body"), CONTROL_REQUESTS)
def test_viewer_cannot_start_stop_arm_or_change_setup(app, orchestrator, method, url, body):
    add_rig(app)
    viewer = login(app, "vic")
    r = send(viewer, method, url, body)
    assert r.status_code == 403, r.get_json()
    assert "role" in r.get_json()["error"]
    assert orchestrator.calls == []
    assert viewer.get("/api/state").status_code == 200  # but may watch


def test_operator_starts_and_stops(app, orchestrator):
    add_rig(app)
    op = login(app, "olga")
    r = send(op, "POST", "/api/capture/start", {"name": "Run", "duration_s": 1})
    assert r.status_code == 202, r.get_json()
    assert send(op, "POST", "/api/capture/stop").status_code == 202
    assert [c[0] for c in orchestrator.calls] == ["start", "stop"]


def test_operator_cannot_manage_users_or_share_links(app):
    op = login(app, "olga")
    assert op.get("/api/auth/users").status_code == 403
    body = {"name": "eve", "role": "admin", "password": "x" * 12}
    assert send(op, "POST", "/api/auth/users", body).status_code == 403
    assert send(op, "POST", "/api/auth/shares", {"live": True}).status_code == 403
    assert op.get("/api/auth/audit").status_code == 403


# --- CSRF and cross-site requests ----------------------------------------------------------


def test_post_without_csrf_token_fails(app, orchestrator):
    add_rig(app)
    op = login(app, "olga")
    r = op.post("/api/capture/start", json={"name": "Run", "duration_s": 1})
    assert r.status_code == 403 and "CSRF" in r.get_json()["error"]
    r = op.post("/api/capture/start", json={"name": "Run"}, headers={"X-CSRF-Token": "forged" * 8})
    assert r.status_code == 403
    assert orchestrator.calls == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page.html"},
        {"Origin": "http://localhost.evil.example"},
    ],
)
def test_cross_site_post_fails_even_with_the_cookie(app, orchestrator, headers):
    add_rig(app)
    op = login(app, "olga")
    # What a form on another site can send: the victim's cookie, no token, its own origin.
    r = op.post("/api/capture/start", data={"name": "Run"}, headers=headers)
    assert r.status_code == 403
    # Even a leaked token does not help a request that says it comes from elsewhere.
    r = op.post(
        "/api/capture/start",
        json={"name": "Run", "duration_s": 1},
        headers={"X-CSRF-Token": op.csrf, **headers},
    )
    assert r.status_code == 403
    assert orchestrator.calls == []


def test_csrf_token_is_bound_to_the_session(app, orchestrator):
    add_rig(app)
    op = login(app, "olga")
    other = login(app, "otto")
    r = op.post("/api/capture/start", json={"name": "Run"}, headers={"X-CSRF-Token": other.csrf})
    assert r.status_code == 403
    assert orchestrator.calls == []


def test_login_itself_needs_the_csrf_token(app):
    client = app.test_client()
    r = client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert r.status_code == 403 and b"login form expired" in r.data
    assert client.get("/api/state").status_code == 401
    r = client.post("/login", json={"username": "ada", "password": PASSWORD})
    assert r.status_code == 403 and "CSRF" in r.get_json()["error"]
    assert client.get("/api/state").status_code == 401


def test_form_login_redirects_only_to_local_paths(app):
    for target, expected in [("/history", "/history"), ("//evil.example/x", "/"),
                             ("https://evil.example", "/"), ("/\\evil.example", "/")]:  # fmt: skip
        client = app.test_client()
        token = csrf(client)
        r = client.post(
            "/login",
            data={"username": "vic", "password": PASSWORD, "next": target, "csrf_token": token},
        )
        assert r.status_code == 302 and r.headers["Location"] == expected, target


# --- sessions ------------------------------------------------------------------------------


def session_cookie_header(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("lanxi_session="))


def test_session_cookie_is_httponly_samesite_and_secure_over_https(app):
    client = app.test_client()
    r = client.get("/api/auth/session")
    cookie = session_cookie_header(r)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain-http loopback must keep working
    r = app.test_client().get("/api/auth/session", base_url="https://localhost")
    assert "Secure" in session_cookie_header(r)
    app.config["LANXI_SECURE_COOKIES"] = "always"
    r = app.test_client().get("/api/auth/session")
    assert "Secure" in session_cookie_header(r)


def test_secret_key_persists_in_the_data_dir_with_mode_0600(app, data_dir):
    key = data_dir / ".secret_key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert app.config["SECRET_KEY"] == key.read_bytes()


def test_logout_ends_the_session_even_if_the_cookie_is_replayed(app):
    op = login(app, "olga")
    stolen = op.get_cookie("lanxi_session").value
    assert send(op, "POST", "/logout").headers["Location"] == "/login"
    assert op.get("/api/state").status_code == 401
    replay = app.test_client()
    replay.set_cookie("lanxi_session", stolen)
    assert replay.get("/api/state").status_code == 401


def test_removed_user_and_changed_password_end_sessions_at_once(app, data_dir):
    vic = login(app, "vic")
    olga = login(app, "olga")
    UserStore(data_dir).remove("vic")  # as `lanxi-dashboard user remove vic` does
    assert vic.get("/api/state").status_code == 401
    UserStore(data_dir).set_password("olga", "a new password")
    assert olga.get("/api/state").status_code == 401
    assert login(app, "olga", "a new password").get("/api/state").status_code == 200


def test_role_change_applies_at_the_next_request(app, data_dir, orchestrator):
    add_rig(app)
    olga = login(app, "olga")
    UserStore(data_dir).set_role("olga", "viewer")
    r = send(olga, "POST", "/api/capture/start", {"name": "Run", "duration_s": 1})
    assert r.status_code == 403
    assert orchestrator.calls == []


# --- login rate limiting -------------------------------------------------------------------


def attempt(app, name, password, addr="127.0.5.10"):
    client = app.test_client()
    token = csrf(client)
    return client.post(
        "/login",
        json={"username": name, "password": password},
        headers={"X-CSRF-Token": token},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_a_locked_account_does_not_lock_out_colleagues_behind_the_same_address(app):
    for _ in range(5):
        assert attempt(app, "ada", "wrong password").status_code == 401
    r = attempt(app, "ada", PASSWORD)  # even the right password waits
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert r.get_json()["error"] == (
        f"too many failed logins for this account; try again in {wait} s"
    )
    # A colleague behind the same NAT or proxy still logs in.
    assert attempt(app, "vic", PASSWORD).status_code == 200


def test_a_spray_across_many_accounts_from_one_address_is_stopped(app):
    budget = app.config["LANXI_LOGIN_ADDR_MAX_FAILURES"]
    assert budget > app.config["LANXI_LOGIN_MAX_FAILURES"]
    for i in range(budget):  # one guess per account: no account reaches its own limit
        assert attempt(app, f"user{i}", "Winter2026!").status_code == 401
    r = attempt(app, "vic", PASSWORD)
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= app.config["LANXI_LOGIN_ADDR_WINDOW_S"]
    assert r.get_json()["error"] == (
        f"too many failed logins from this address; try again in {wait} s"
    )
    assert attempt(app, "vic", PASSWORD, addr="127.0.5.11").status_code == 200


def test_login_is_rate_limited_per_user_name_across_addresses(app):
    for i in range(5):
        assert attempt(app, "ada", "wrong password", addr=f"127.0.5.{20 + i}").status_code == 401
    assert attempt(app, "ada", PASSWORD, addr="127.0.5.30").status_code == 429


def test_rate_limit_lifts_after_the_window(app):
    ac = app.extensions[EXTENSION]
    now = [1000.0]
    ac.limiter.clock = lambda: now[0]
    for _ in range(5):
        attempt(app, "ada", "wrong password")
    assert attempt(app, "ada", PASSWORD).status_code == 429
    now[0] += 61
    assert attempt(app, "ada", PASSWORD).status_code == 200


def test_logins_and_failures_are_audited(app):
    attempt(app, "ada", "wrong password")
    admin = login(app, "ada")
    entries = admin.get("/api/auth/audit").get_json()["entries"]
    assert [e["action"] for e in entries][-2:] == ["login-failed", "login"]
    assert entries[-2]["user"] == "ada" and entries[-1]["actor"] == "ada"
    assert "password" not in str(entries)


# --- control lock --------------------------------------------------------------------------


def test_one_controlling_operator_at_a_time(app, orchestrator):
    add_rig(app)
    olga, otto, ada = login(app, "olga"), login(app, "otto"), login(app, "ada")
    assert (
        send(olga, "POST", "/api/capture/start", {"name": "A", "duration_s": 1}).status_code == 202
    )
    r = send(otto, "POST", "/api/capture/stop")
    assert r.status_code == 409
    assert "olga" in r.get_json()["error"] and r.get_json()["control"]["holder"]["user"] == "olga"
    state = otto.get("/api/auth/control").get_json()
    assert state["holder"]["user"] == "olga" and state["holder"]["since"] > 0

    r = send(otto, "POST", "/api/auth/control/request")
    assert r.status_code == 202 and r.get_json()["granted"] is False
    assert [q["user"] for q in olga.get("/api/auth/control").get_json()["requests"]] == ["otto"]
    assert send(otto, "POST", "/api/auth/control/take").status_code == 403  # admins only
    assert send(otto, "POST", "/api/auth/control/release").status_code == 409

    assert send(ada, "POST", "/api/auth/control/take").get_json()["holder"]["user"] == "ada"
    assert send(olga, "POST", "/api/capture/stop").status_code == 409
    assert send(ada, "POST", "/api/capture/stop").status_code == 202
    assert send(ada, "POST", "/api/auth/control/release").status_code == 200
    assert (
        send(otto, "POST", "/api/capture/start", {"name": "B", "duration_s": 1}).status_code == 202
    )
    assert [c[0] for c in orchestrator.calls] == ["start", "stop", "start"]


def test_control_actions_are_audited_with_who_and_outcome(app, orchestrator):
    add_rig(app)
    olga, otto, ada = login(app, "olga"), login(app, "otto"), login(app, "ada")
    send(olga, "POST", "/api/capture/start", {"name": "A", "duration_s": 1})
    send(otto, "POST", "/api/capture/stop")
    send(olga, "PUT", "/api/setup", {"bandwidth": "51.2 kHz"})
    send(olga, "POST", "/api/capture/stop")
    send(olga, "POST", "/api/rig/modules/127.0.5.2/return-to-idle")
    entries = ada.get("/api/auth/audit?limit=50").get_json()["entries"]
    acts = [(e["actor"], e["action"], e.get("ok")) for e in entries if "ok" in e]
    assert ("olga", "rig-return-to-idle", True) in acts
    assert ("olga", "capture-start", True) in acts
    assert ("otto", "capture-stop", False) in acts
    assert ("olga", "setup-change", True) in acts
    assert ("olga", "capture-stop", True) in acts
    start = next(e for e in entries if e["action"] == "capture-start")
    assert start["body"]["name"] == "A" and start["ts"].endswith("+00:00")


def test_a_write_refused_for_someone_elses_control_is_audited_once(app, orchestrator):
    add_rig(app)
    olga, otto, ada = login(app, "olga"), login(app, "otto"), login(app, "ada")
    send(olga, "POST", "/api/capture/start", {"name": "A", "duration_s": 1})
    audit_entries = lambda: ada.get("/api/auth/audit?limit=200").get_json()["entries"]  # noqa: E731
    before = len(audit_entries())
    assert send(otto, "PUT", "/api/setup", {"bandwidth": "51.2 kHz"}).status_code == 409
    assert send(otto, "POST", "/api/capture/stop").status_code == 409
    new = [e for e in audit_entries()[before:] if e["actor"] == "otto"]
    assert [(e["action"], e["ok"], e["status"]) for e in new] == [
        ("setup-change", False, 409),
        ("capture-stop", False, 409),
    ]
    assert all("olga has control" in e["error"] for e in new)
    assert new[0]["body"] == {"bandwidth": "51.2 kHz"}
    # A write that reached its view is still audited once, after the response.
    assert send(olga, "POST", "/api/capture/stop").status_code == 202
    olgas = [e for e in audit_entries()[before:] if e["actor"] == "olga"]
    assert [(e["action"], e["ok"], e["status"]) for e in olgas] == [("capture-stop", True, 202)]


# --- share links ---------------------------------------------------------------------------


def test_capture_share_link_reads_that_capture_only(app, data_dir):
    token, _ = share_token(data_dir, "capture", CAPTURE_ID)
    guest = app.test_client()
    r = guest.get(f"/share/{token}")
    assert r.status_code == 302 and r.headers["Location"] == "/shared/capture"
    page = guest.get("/shared/capture")
    assert page.status_code == 200 and b"Run.1.stream" in page.data
    assert guest.get(f"/api/captures/{CAPTURE_ID}").status_code == 200
    r = guest.get(f"/api/captures/{CAPTURE_ID}/files/Run.1.stream")
    assert r.status_code == 200 and r.data == b"\x01\x02\x03"
    for path in (f"/api/captures/{OTHER_CAPTURE_ID}", "/api/captures", "/api/state", "/", "/rig"):
        assert guest.get(path).status_code == 403, path
    r = guest.post("/api/capture/stop", headers={"X-CSRF-Token": csrf(guest)})
    assert r.status_code == 403


def test_live_share_link_sees_the_live_view_only(app, data_dir, orchestrator):
    token, _ = share_token(data_dir, "live")
    guest = app.test_client()
    assert guest.get(f"/share/{token}").headers["Location"] == "/"
    assert guest.get("/api/state").status_code == 200
    assert guest.get("/", headers={"Accept": "text/html"}).status_code == 200
    assert guest.get("/api/captures").status_code == 403
    assert guest.get(f"/api/captures/{CAPTURE_ID}/files/Run.1.stream").status_code == 403
    # A browser asking for a page it may not see gets a page saying so, not JSON.
    page = guest.get("/history", headers={"Accept": "text/html"})
    assert page.status_code == 403 and page.mimetype == "text/html"
    assert b"shows the live view only" in page.data
    r = guest.post("/api/capture/start", json={}, headers={"X-CSRF-Token": csrf(guest)})
    assert r.status_code == 403
    assert orchestrator.calls == []


def test_revoked_share_link_stops_working_at_once(app, data_dir):
    admin = login(app, "ada")
    r = send(admin, "POST", "/api/auth/shares", {"capture_id": CAPTURE_ID, "expires_hours": 2})
    assert r.status_code == 201
    token, share_id = r.get_json()["token"], r.get_json()["share"]["id"]
    assert r.get_json()["url"].endswith(f"/share/{token}")
    guest = app.test_client()
    guest.get(f"/share/{token}")
    assert guest.get(f"/api/captures/{CAPTURE_ID}").status_code == 200

    assert send(admin, "DELETE", f"/api/auth/shares/{share_id}").status_code == 200
    assert guest.get(f"/api/captures/{CAPTURE_ID}").status_code == 401
    assert guest.get(f"/api/captures/{CAPTURE_ID}/files/Run.1.stream").status_code == 401
    assert app.test_client().get(f"/share/{token}").status_code == 404  # the link itself too


def test_share_link_revoked_from_the_command_line_stops_at_once(app, data_dir):
    token, _ = share_token(data_dir, "live")
    guest = app.test_client()
    guest.get(f"/share/{token}")
    assert guest.get("/api/state").status_code == 200
    ShareStore(data_dir).revoke(token)  # another process: `lanxi-dashboard user revoke TOKEN`
    assert guest.get("/api/state").status_code == 401


def test_expired_share_link_does_not_work(app, data_dir):
    store = ShareStore(data_dir)
    token, share = store.create("live", None, "test", 1)

    def expire(data):
        data["shares"][share.id]["expires"] = "2000-01-01T00:00:00+00:00"

    store.file.update(expire)
    assert app.test_client().get(f"/share/{token}").status_code == 404


def test_share_links_need_an_existing_capture(app):
    admin = login(app, "ada")
    assert send(admin, "POST", "/api/auth/shares", {"capture_id": "nope"}).status_code == 404
    r = send(admin, "POST", "/api/auth/shares", {"capture_id": "../captures"})
    assert r.status_code == 400
    assert send(admin, "POST", "/api/auth/shares", {}).status_code == 400


# --- user management over HTTP -------------------------------------------------------------


def test_admin_manages_users_over_http(app):
    admin = login(app, "ada")
    body = {"name": "nina", "role": "viewer", "password": "nina's password"}
    assert send(admin, "POST", "/api/auth/users", body).status_code == 201
    assert send(admin, "POST", "/api/auth/users", body).status_code == 400  # exists
    r = send(admin, "POST", "/api/auth/users", {**body, "name": "x y"})
    assert r.status_code == 400 and "user name" in r.get_json()["error"]
    nina = login(app, "nina", "nina's password")
    assert send(admin, "PATCH", "/api/auth/users/nina", {"role": "operator"}).status_code == 200
    assert nina.get("/api/auth/session").get_json()["role"] == "operator"
    names = [u["name"] for u in admin.get("/api/auth/users").get_json()["users"]]
    assert "nina" in names and "hash" not in str(admin.get("/api/auth/users").get_json())
    assert send(admin, "DELETE", "/api/auth/users/nina").status_code == 200
    assert nina.get("/api/state").status_code == 401
    assert send(admin, "DELETE", "/api/auth/users/ada").status_code == 400  # the last admin


def test_users_change_their_own_password(app):
    vic = login(app, "vic")
    other = login(app, "vic")
    r = send(vic, "POST", "/api/auth/password", {"current": "wrong one", "new": "new password 1"})
    assert r.status_code == 400
    r = send(vic, "POST", "/api/auth/password", {"current": PASSWORD, "new": "new password 1"})
    assert r.status_code == 200
    assert vic.get("/api/state").status_code == 200  # this session stays
    assert other.get("/api/state").status_code == 401  # the others end


# --- downloads -----------------------------------------------------------------------------

TRAVERSALS = [
    f"/api/captures/{CAPTURE_ID}/files/..%2F..%2Fusers.json",
    f"/api/captures/{CAPTURE_ID}/files/../../users.json",
    f"/api/captures/{CAPTURE_ID}/files/%2e%2e%2f%2e%2e%2fusers.json",
    f"/api/captures/{CAPTURE_ID}/files/%2E%2E/%2E%2E/users.json",
    f"/api/captures/{CAPTURE_ID}/files/%2fetc%2fpasswd",
    f"/api/captures/{CAPTURE_ID}/files//etc/passwd",
    f"/api/captures/{CAPTURE_ID}/files/..%5C..%5Cusers.json",
    f"/api/captures/{CAPTURE_ID}/files/..\\..\\users.json",
    f"/api/captures/{CAPTURE_ID}/files/%252e%252e%252fusers.json",
    f"/api/captures/{CAPTURE_ID}/files/Run.1.stream%00.json",
    f"/api/captures/{CAPTURE_ID}/files/.secret",
    f"/api/captures/{CAPTURE_ID}/files/escape",
    "/api/captures/..%2F..%2F/files/users.json",
    "/api/captures/%2e%2e/files/users.json",
    "/api/captures/../files/users.json",
    "/api/captures/..%2Fcaptures%2F" + CAPTURE_ID + "/files/Run.1.stream",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_download_traversal_attempts_fail(app, data_dir, url):
    folder = data_dir / "captures" / CAPTURE_ID
    (folder / ".secret").write_text("secret")
    (folder / "escape").symlink_to(data_dir / "users.json")
    admin = login(app, "ada")
    r = admin.get(url)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert b"argon2" not in r.data and b"root:" not in r.data and b"secret" not in r.data


# --- without access control ----------------------------------------------------------------


@pytest.fixture
def open_app(tmp_path, bus, orchestrator):
    from webapp.web.app import create_app

    return create_app(tmp_path / "open", orchestrator=orchestrator, bus=bus, auth_enabled=False)


def test_without_access_control_cross_site_posts_still_fail(open_app, orchestrator):
    client = open_app.test_client()
    for address in ("127.0.5.1",):
        client.post("/api/rig/modules", json={"address": address})
    r = client.post(
        "/api/capture/start",
        json={"name": "Run", "duration_s": 1},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert orchestrator.calls == []
    r = client.post(
        "/api/capture/start",
        json={"name": "Run", "duration_s": 1},
        headers={"Origin": "http://localhost"},
    )
    assert r.status_code == 202


def test_without_access_control_only_loopback_host_names_are_answered(open_app):
    client = open_app.test_client()
    assert client.get("/api/state").status_code == 200
    assert client.get("/api/state", base_url="http://127.0.5.1:5000").status_code == 200
    assert client.get("/api/state", base_url="http://[::1]:5000").status_code == 200
    # A DNS-rebound name pointing at 127.0.0.1 must not reach an unprotected bench.
    assert client.get("/api/state", base_url="http://rebind.evil.example:5000").status_code == 403


# --- behind a reverse proxy ----------------------------------------------------------------


def test_behind_a_proxy_scheme_and_client_address_come_from_its_headers(
    monkeypatch, tmp_path, bus, orchestrator
):
    monkeypatch.setenv("LANXI_PROXY_HOPS", "1")
    app = secure_app(tmp_path / "proxied", bus, orchestrator)
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "lab.example"}
    r = app.test_client().get("/api/auth/session", headers=https)
    assert "Secure" in session_cookie_header(r)

    def attempt_from(addr: str, name: str, password: str):
        client = app.test_client()
        token = client.get("/api/auth/session", headers=https).get_json()["csrf_token"]
        return client.post(
            "/login",
            json={"username": name, "password": password},
            headers={
                "X-CSRF-Token": token,
                "X-Forwarded-For": addr,
                "Origin": "https://lab.example",
                **https,
            },  # fmt: skip
        )

    app.extensions[EXTENSION].limiter.address.max_failures = 3
    for name in ("ada", "olga", "otto"):
        assert attempt_from("192.0.2.7", name, "wrong password").status_code == 401
    assert attempt_from("192.0.2.7", "vic", PASSWORD).status_code == 429
    assert attempt_from("192.0.2.8", "vic", PASSWORD).status_code == 200
    # The proxy's public origin is this site: a POST from it passes the origin check.
    assert attempt_from("192.0.2.9", "olga", PASSWORD).status_code == 200


def test_control_held_by_a_user_removed_elsewhere_is_freed(app, data_dir, orchestrator):
    add_rig(app)
    olga, otto = login(app, "olga"), login(app, "otto")
    assert send(olga, "POST", "/api/capture/arm", {"name": "A"}).status_code == 202
    assert send(otto, "POST", "/api/capture/disarm").status_code == 409
    UserStore(data_dir).set_role("olga", "viewer")  # `lanxi-dashboard user role olga viewer`
    assert otto.get("/api/auth/control").get_json()["holder"] is None
    assert send(otto, "POST", "/api/capture/disarm").status_code == 202


@pytest.mark.parametrize("name", ["../../users", "a/b", "a\\b", ".hidden", "x\x00y", "C:evil"])
def test_unsafe_capture_names_are_refused_before_anything_starts(app, orchestrator, name):
    add_rig(app)
    op = login(app, "olga")
    r = send(op, "POST", "/api/capture/start", {"name": name, "duration_s": 1})
    assert r.status_code == 400 and r.get_json()["field"] == "name"
    assert orchestrator.calls == []


# --- share links: only with access control, on the address users reach ------------------------


def test_share_links_are_refused_while_access_control_is_off(open_app):
    client = open_app.test_client()
    r = client.post("/api/auth/shares", json={"live": True})
    assert r.status_code == 409
    assert "share links need access control" in r.get_json()["error"]
    assert client.get("/api/auth/shares").get_json()["shares"] == []  # nothing listed as active
    page = client.get("/admin").get_data(as_text=True)
    assert 'id="share-off"' in page
    assert re.search(r'<fieldset id="share-fields"[^>]*\bdisabled\b', page)


def test_share_link_url_is_built_on_the_address_the_browser_used(app):
    lab = "http://192.0.2.5:5000"  # the admin's browser reached the dashboard here
    client = app.test_client()
    token = client.get("/api/auth/session", base_url=lab).get_json()["csrf_token"]
    r = client.post(
        "/login",
        json={"username": "ada", "password": PASSWORD},
        base_url=lab,
        headers={"X-CSRF-Token": token, "Origin": lab},
    )
    assert r.status_code == 200
    r = client.post(
        "/api/auth/shares",
        json={"live": True},
        base_url=lab,
        headers={"X-CSRF-Token": r.get_json()["csrf_token"], "Origin": lab},
    )
    assert r.status_code == 201
    assert r.get_json()["url"] == f"{lab}/share/{r.get_json()['token']}"


def test_share_link_url_uses_the_configured_public_url(app):
    app.config["LANXI_PUBLIC_URL"] = "https://lab.example.org/"
    admin = login(app, "ada")
    r = send(admin, "POST", "/api/auth/shares", {"live": True})
    assert r.status_code == 201
    assert r.get_json()["url"] == f"https://lab.example.org/share/{r.get_json()['token']}"
