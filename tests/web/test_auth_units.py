"""The pieces of access control on their own: safe names and download paths, the user and
share stores, the login limiter, the control lock, the audit log and the ``user`` command."""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import pytest
from auth_support import cheap_hashes  # noqa: F401 - autouse fixture

from webapp import cli
from webapp.auditlog import AuditLog
from webapp.web.access.accounts import AccessError, ShareStore, UserStore
from webapp.web.access.controllock import ControlLock
from webapp.web.access.exposure import access_configured, bind_refusal, transport_warning
from webapp.web.access.ratelimit import FailureLimiter
from webapp.web.access.requestchecks import is_loopback
from webapp.web.access.safepaths import safe_capture_file, safe_name

# --- capture names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("My Measurement", "My Measurement"),
        ("  Run   7 ", "Run 7"),
        ("Run_1.b-2", "Run_1.b-2"),
        ("x" * 100, "x" * 100),
        ("Prøve", "Prøve"),
        ("Ünïcødé 測定", "Ünïcødé 測定"),
        ("e\u0301", "\u00e9"),
    ],
)
def test_safe_name_keeps_good_names(raw, clean):
    assert safe_name(raw) == clean


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("../etc", "not '/'"),
        ("a/b", "'/'"),
        ("a\\b", "'\\\\'"),
        ("a\x00b", "'\\x00'"),
        (".hidden", "dot"),
        ("-rf", "dash"),
        ("name.", "end with a dot"),
        ("CON", "reserved"),
        ("x" * 101, "longer than 100"),
        ("a:b", "':'"),
        ("a%2fb", "'%'"),
        ("<script>", "'<'"),
        ("nul.txt", "reserved"),
        ("COM¹", "reserved"),
        ("a\u200bb", "'\\u200b'"),
    ],
)
def test_safe_name_rejects_with_a_message(raw, words):
    with pytest.raises(ValueError) as exc:
        safe_name(raw)
    assert words in str(exc.value)


# --- download paths ------------------------------------------------------------------------


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    folder = data / "captures" / "C1"
    folder.mkdir(parents=True)
    (folder / "Run.1.stream").write_bytes(b"abc")
    (data / "users.json").write_text("{}")
    (tmp_path / "outside.txt").write_text("outside")
    return data


def test_safe_capture_file_finds_the_file(capture):
    path = safe_capture_file(capture, "C1", "Run.1.stream")
    assert path.read_bytes() == b"abc" and path.is_absolute()


@pytest.mark.parametrize(
    ("capture_id", "name"),
    [
        ("C1", "../../users.json"),
        ("C1", ".."),
        ("..", "users.json"),
        ("C1", "/etc/passwd"),
        ("/etc", "passwd"),
        ("C1", "..%2f..%2fusers.json"),
        ("C1", "%2e%2e%2fusers.json"),
        ("C1", "%2fetc%2fpasswd"),
        ("C1", "..\\..\\users.json"),
        ("C1", "Run.1.stream\x00.txt"),
        ("C1", "C:\\Windows\\win.ini"),
        ("C1", ".secret"),
        ("C1", ""),
        ("", "Run.1.stream"),
    ],
)
def test_safe_capture_file_rejects_paths(capture, capture_id, name):
    with pytest.raises(ValueError):
        safe_capture_file(capture, capture_id, name)


def test_safe_capture_file_refuses_symlinks_out_of_the_capture(capture, tmp_path):
    folder = capture / "captures" / "C1"
    (folder / "link").symlink_to(tmp_path / "outside.txt")
    (folder / "users").symlink_to(capture / "users.json")
    (capture / "captures" / "C2").symlink_to(tmp_path)  # a whole capture folder outside
    (folder / "sub").mkdir()
    for capture_id, name in [("C1", "link"), ("C1", "users"), ("C2", "outside.txt"),
                             ("C1", "sub"), ("C1", "missing")]:  # fmt: skip
        with pytest.raises(FileNotFoundError):
            safe_capture_file(capture, capture_id, name)


# --- stores --------------------------------------------------------------------------------


def test_user_store_hashes_with_argon2id_and_writes_0600(tmp_path):
    store = UserStore(tmp_path)
    store.add("alice", "operator", "a good password")
    raw = (tmp_path / "users.json").read_text()
    assert "a good password" not in raw and "$argon2id$" in raw
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    assert store.verify("alice", "a good password").role == "operator"
    assert store.verify("alice", "wrong password") is None
    assert store.verify("nobody", "a good password") is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("name", "role", "password", "words"),
    [
        ("bad name", "viewer", "long enough", "user name"),
        ("bob", "root", "long enough", "role"),
        ("bob", "viewer", "short", "at least 8"),
        ("bobbobbob", "viewer", "BobBobBob", "user name"),
    ],
)
def test_user_store_rejects_bad_input(tmp_path, name, role, password, words):
    with pytest.raises(AccessError) as exc:
        UserStore(tmp_path).add(name, role, password)
    assert words in str(exc.value)


def test_user_store_keeps_an_admin(tmp_path):
    store = UserStore(tmp_path)
    store.add("root1", "admin", "password one")
    store.add("op", "operator", "password two")
    with pytest.raises(AccessError, match="last admin"):
        store.remove("root1")
    with pytest.raises(AccessError, match="last admin"):
        store.set_role("root1", "viewer")
    store.remove("op")
    store.remove("root1")  # the very last user may go: access control is then unconfigured
    assert not store.any()


def test_stores_see_changes_made_by_another_process(tmp_path):
    mine, theirs = UserStore(tmp_path), UserStore(tmp_path)
    mine.add("alice", "viewer", "password one")
    assert theirs.get("alice").role == "viewer"
    theirs.set_role("alice", "admin")
    assert mine.get("alice").role == "admin"


def test_concurrent_updates_lose_nothing(tmp_path):
    # Separate store objects stand for separate processes: only the file lock serialises them.
    def add(i: int) -> None:
        ShareStore(tmp_path).create("live", None, f"t{i}", None)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ShareStore(tmp_path).list()) == 20


def test_share_store_keeps_only_token_hashes(tmp_path):
    store = ShareStore(tmp_path)
    token, share = store.create("capture", "C1", "ada", 2)
    assert token not in (tmp_path / "shares.json").read_text()
    assert store.by_token(token).id == share.id and share.active()
    assert store.by_token(token + "x") is None
    assert store.revoke(share.id).revoked
    assert not store.get(share.id).active()
    with pytest.raises(AccessError):
        store.revoke("no-such-token")
    with pytest.raises(AccessError):
        store.create("everything", None, "ada", None)


# --- limiter, control lock, audit log ------------------------------------------------------


def test_limiter_blocks_after_max_failures_within_the_window():
    now = [0.0]
    limiter = FailureLimiter(max_failures=3, window_s=10, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("k") is None
        limiter.failure("k")
        now[0] += 1
    assert limiter.retry_after("k") == 7  # now t=3; the first failure leaves the window at t=10
    assert limiter.retry_after("other") is None
    now[0] = 10.5
    assert limiter.retry_after("k") is None
    limiter.success("k")
    assert limiter.retry_after("k") is None


def test_limiter_memory_is_bounded():
    limiter = FailureLimiter(max_keys=100)
    for i in range(1000):
        limiter.failure(f"addr:{i}")
    assert len(limiter._failures) == 100


def test_control_lock():
    seen = []
    lock = ControlLock(clock=lambda: 42.0)
    lock.subscribe(seen.append)
    assert lock.acquire("olga") and lock.acquire("olga")
    assert not lock.acquire("otto")
    assert lock.request("otto")
    assert lock.snapshot() == {
        "holder": {"user": "olga", "since": 42.0},
        "requests": [{"user": "otto", "at": 42.0}],
    }
    assert not lock.release("otto")
    assert lock.take("ada").user == "olga"
    lock.forget("ada")
    assert lock.holder() is None and lock.acquire("otto")
    assert seen[-1]["holder"]["user"] == "otto" and seen[-1]["requests"] == []


def test_audit_log_appends_json_lines_and_reads_the_tail(tmp_path):
    log = AuditLog(tmp_path)
    for i in range(3000):
        log.append("capture-start", "olga", n=i, name="Prøve")
    path = tmp_path / "audit.log"
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == 3000 and json.loads(lines[0])["actor"] == "olga"
    tail = log.tail(5)
    assert [e["n"] for e in tail] == [2995, 2996, 2997, 2998, 2999]
    assert log.tail(5000)[0]["n"] == 0
    assert AuditLog(tmp_path / "none").tail() == []


# --- binding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.5.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("lab.example", False),
        ("localhost.evil.example", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_bind_refusal_says_how_to_configure_users(tmp_path):
    assert bind_refusal("127.0.0.1", tmp_path) is None
    message = bind_refusal("0.0.0.0", tmp_path)
    assert "user add NAME --role admin" in message and str(tmp_path) in message
    UserStore(tmp_path).add("ada", "admin", "password one")
    assert bind_refusal("0.0.0.0", tmp_path) is None
    assert access_configured(tmp_path)


# --- the `user` command --------------------------------------------------------------------


def run_cli(monkeypatch, capsys, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_user_command(monkeypatch, capsys, tmp_path):
    d = str(tmp_path / "data")
    code, out, _ = run_cli(monkeypatch, capsys, "user", "add", "ada", "--role", "admin",
                           "--password-stdin", "--data-dir", d, stdin="password one\n")  # fmt: skip
    assert code == 0 and "added ada (admin)" in out
    code, _, err = run_cli(monkeypatch, capsys, "user", "--data-dir", d, "add", "bob", "--role",
                           "viewer")  # fmt: skip
    assert code == 2 and "--password-stdin" in err  # no terminal to prompt on
    code, out, _ = run_cli(monkeypatch, capsys, "user", "--data-dir", d, "list")
    assert code == 0 and "ada" in out and "admin" in out

    os.makedirs(tmp_path / "data" / "captures" / "C1")
    code, out, err = run_cli(monkeypatch, capsys, "user", "share", "--capture", "C1",
                             "--expires", "2", "--data-dir", d, "--base-url", "http://h:5")  # fmt: skip
    assert code == 0 and out.startswith("http://h:5/share/")
    token = out.strip().rsplit("/", 1)[1]
    assert ShareStore(tmp_path / "data").by_token(token).capture_id == "C1"
    code, _, err = run_cli(monkeypatch, capsys, "user", "share", "--capture", "C9", "--data-dir", d)
    assert code == 2 and "no capture 'C9'" in err
    code, out, _ = run_cli(monkeypatch, capsys, "user", "revoke", token, "--data-dir", d)
    assert code == 0 and "revoked" in out
    assert not ShareStore(tmp_path / "data").by_token(token).active()

    code, _, _ = run_cli(monkeypatch, capsys, "user", "passwd", "ada", "--password-stdin",
                         "--data-dir", d, stdin="password two\n")  # fmt: skip
    assert code == 0 and UserStore(tmp_path / "data").verify("ada", "password two")
    code, _, err = run_cli(monkeypatch, capsys, "user", "remove", "nobody", "--data-dir", d)
    assert code == 2 and "no user nobody" in err
    code, _, _ = run_cli(monkeypatch, capsys, "user", "remove", "ada", "--data-dir", d)
    assert code == 0 and not UserStore(tmp_path / "data").any()
    actions = [e["action"] for e in AuditLog(tmp_path / "data").tail()]
    assert actions == ["user-add", "share-create", "share-revoke", "user-password", "user-remove"]


def test_transport_warning_for_plain_http_off_the_loopback():
    assert transport_warning("127.0.0.1", tls=False) is None
    assert transport_warning("0.0.0.0", tls=True) is None
    assert "unencrypted" in transport_warning("0.0.0.0", tls=False)


def test_share_tokens_never_look_like_options(monkeypatch) -> None:
    from webapp.web.access import accounts

    tokens = iter(["-starts-with-dash", "fine-token"])
    monkeypatch.setattr(accounts.secrets, "token_urlsafe", lambda n: next(tokens))
    assert accounts.share_token() == "fine-token"
