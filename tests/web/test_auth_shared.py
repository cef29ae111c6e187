"""Two web processes sharing their access state through a real redis-server.

Each test builds two dashboard apps (A and B) on one data directory, as two ``serve
--message-queue`` processes would run, each with its own connection to Redis: a lock taken
through one holds on the other, a logout or a revoked share link ends there too, at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from auth_support import (
    PASSWORD,
    cheap_hashes,  # noqa: F401 - autouse fixture
    login,
    secure_app,
    send,
    share_token,
)
from web_fakes import FakeOrchestrator

from tests.support.live_packets import unpacked
from tests.support.waiting import wait_until
from webapp.capture.events import EventBus
from webapp.web.access.ratelimit import FailureLimiter
from webapp.web.access.ratelimit_redis import RedisFailureLimiter
from webapp.web.access.settings import EXTENSION
from webapp.web.access.store import MemoryAccessStore, share_through_redis
from webapp.web.access.store_redis import RedisAccessStore

COOKIE = "lanxi_session"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


class Pair:
    """Apps A and B on one data directory; ``shared``: through Redis, else each alone."""

    def __init__(self, data_dir: Path, redis_url: str | None) -> None:
        self.apps = []
        self.sockets: list = []
        for _ in range(2):
            bus = EventBus()
            # A long socket recheck: only the shared store's notices can drop a socket at once.
            app = secure_app(data_dir, bus, FakeOrchestrator(bus), LANXI_SOCKET_RECHECK_S=60)
            if redis_url:
                share_through_redis(app, redis_url)
            self.apps.append(app)
        self.a, self.b = self.apps

    def socket(self, app, http_client):
        client = app.extensions["lanxi"].socketio.test_client(app, flask_test_client=http_client)
        self.sockets.append(client)
        return client

    def close(self) -> None:
        for client in self.sockets:
            if client.is_connected():
                client.disconnect()
        for app in self.apps:
            ac = app.extensions[EXTENSION]
            ac.stop()
            ac.store.close()


@pytest.fixture
def pair(data_dir, redis_url):
    pair = Pair(data_dir, redis_url)
    yield pair
    pair.close()


def same_browser(client, app):
    """A client of ``app`` with ``client``'s session cookie: the same browser, sent by the
    proxy to the other process."""
    other = app.test_client()
    other.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    other.csrf = getattr(client, "csrf", None)
    return other


def control(client) -> dict:
    return client.get("/api/auth/control").get_json()


def test_a_lock_taken_through_one_process_holds_on_the_other(pair):
    olga_a = login(pair.a, "olga")
    r = send(olga_a, "POST", "/api/auth/control/request")
    assert r.get_json()["granted"] is True
    since = r.get_json()["holder"]["since"]

    otto_b = login(pair.b, "otto")
    seen = control(otto_b)
    assert seen["holder"] == {"user": "olga", "since": since}
    r = send(otto_b, "POST", "/api/capture/start", {"name": "Run"})
    assert r.status_code == 409 and "olga has control" in r.get_json()["error"]
    assert pair.b.extensions["lanxi"].orchestrator.calls == []
    r = send(otto_b, "POST", "/api/auth/control/request")
    assert r.status_code == 202 and r.get_json()["granted"] is False
    assert [q["user"] for q in control(olga_a)["requests"]] == ["otto"]  # asked on B, seen on A

    # The same browser reaching the other process keeps its control there.
    olga_b = same_browser(olga_a, pair.b)
    r = send(olga_b, "POST", "/api/capture/start", {"name": "Run"})
    assert r.status_code == 400 and "no modules" in r.get_json()["error"]  # past the lock
    assert send(olga_b, "POST", "/api/auth/control/release").status_code == 200
    assert control(olga_a)["holder"] is None  # released on B, free on A
    assert send(otto_b, "POST", "/api/auth/control/request").get_json()["granted"] is True
    assert control(olga_a)["holder"]["user"] == "otto"
    assert control(olga_a)["requests"] == []


def test_an_admin_take_on_one_process_moves_control_on_both(pair):
    olga_a = login(pair.a, "olga")
    send(olga_a, "POST", "/api/auth/control/request")
    ada_b = login(pair.b, "ada")
    assert send(ada_b, "POST", "/api/auth/control/take").status_code == 200
    assert control(olga_a)["holder"]["user"] == "ada"
    r = send(olga_a, "POST", "/api/capture/start", {"name": "Run"})
    assert r.status_code == 409 and "ada has control" in r.get_json()["error"]


def test_two_processes_taking_a_free_lock_at_once_never_both_win(pair):
    locks = [app.extensions[EXTENSION].control for app in pair.apps]
    users = ["olga", "otto"]
    rounds = 40
    winners: list[list[str]] = []
    for _ in range(rounds):
        barrier = threading.Barrier(2)
        won: list[str] = []

        def take(lock, user, barrier=barrier, won=won):
            barrier.wait()
            if lock.acquire(user):
                won.append(user)

        threads = [
            threading.Thread(target=take, args=(lk, u)) for lk, u in zip(locks, users, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        winners.append(won)
        holder = locks[0].holder()
        assert holder is not None and [holder.user] == won
        assert locks[1].holder() == holder
        locks[0].release(holder.user)
    assert all(len(w) == 1 for w in winners), winners


def test_a_viewer_on_the_other_process_is_told_who_holds_control(pair):
    viewer = pair.socket(pair.b, login(pair.b, "vic"))
    assert viewer.is_connected()
    unpacked(viewer.get_received())
    olga_a = login(pair.a, "olga")
    send(olga_a, "POST", "/api/auth/control/request")
    pushed: list[dict] = []

    def pushed_holder():
        pushed.extend(
            p["args"][0] for p in unpacked(viewer.get_received()) if p["name"] == "control-lock"
        )
        return pushed and pushed[-1]["holder"]

    wait_until(lambda: (pushed_holder() or {}).get("user") == "olga")
    send(olga_a, "POST", "/api/auth/control/release")
    wait_until(lambda: pushed_holder() is None and pushed[-1]["holder"] is None)


def test_a_logout_on_one_process_is_refused_by_the_other(pair):
    vic_a = login(pair.a, "vic")
    vic_b = same_browser(vic_a, pair.b)  # the cookie as it was before the logout
    assert vic_b.get("/api/state").status_code == 200
    sock_b = pair.socket(pair.b, vic_b)
    assert sock_b.is_connected()
    assert send(vic_a, "POST", "/logout").status_code == 302  # to the login page
    assert vic_b.get("/api/state").status_code == 401
    wait_until(lambda: not sock_b.is_connected(), timeout=3)  # not the 60 s recheck
    assert not pair.socket(pair.b, vic_b).is_connected()


def test_a_logout_releases_control_on_both(pair):
    olga_a = login(pair.a, "olga")
    send(olga_a, "POST", "/api/auth/control/request")
    send(olga_a, "POST", "/logout")
    otto_b = login(pair.b, "otto")
    assert control(otto_b)["holder"] is None


def test_a_share_link_revoked_on_one_process_stops_on_the_other_at_once(pair, data_dir):
    token, share_id = share_token(data_dir, "live")
    guest_a = pair.a.test_client()
    guest_a.get(f"/share/{token}")
    guest_b = same_browser(guest_a, pair.b)
    assert guest_b.get("/api/state").status_code == 200
    live_b = pair.socket(pair.b, guest_b)
    assert live_b.is_connected()

    admin_a = login(pair.a, "ada")
    assert send(admin_a, "DELETE", f"/api/auth/shares/{share_id}").status_code == 200
    assert guest_b.get("/api/state").status_code == 401
    wait_until(lambda: not live_b.is_connected(), timeout=3)  # not the 60 s recheck
    assert pair.b.extensions[EXTENSION].store.share_revoked(share_id)


def test_without_a_shared_store_a_logout_stays_in_its_process(data_dir):
    """Why the store is needed: each process alone still takes a cookie logged out on the
    other, and has its own lock."""
    pair = Pair(data_dir, None)
    try:
        assert isinstance(pair.a.extensions[EXTENSION].store, MemoryAccessStore)
        vic_a = login(pair.a, "vic")
        vic_b = same_browser(vic_a, pair.b)
        send(vic_a, "POST", "/logout")
        assert vic_a.get("/api/state").status_code == 401
        assert vic_b.get("/api/state").status_code == 200
        olga_a, otto_b = login(pair.a, "olga"), login(pair.b, "otto")
        assert send(olga_a, "POST", "/api/auth/control/request").get_json()["granted"]
        assert send(otto_b, "POST", "/api/auth/control/request").get_json()["granted"]
    finally:
        pair.close()


# --- the Redis store on its own ------------------------------------------------------------


def test_ended_sessions_expire_with_the_session_and_are_kept_hashed(redis_url):
    one, other = RedisAccessStore(redis_url), RedisAccessStore(redis_url)
    one.end_session("nonce-1", keep_s=1)
    assert other.session_ended("nonce-1") and not other.session_ended("nonce-2")
    client = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in client.keys("lanxi:access:ended:*")]
    assert len(keys) == 1 and "nonce-1" not in keys[0]
    assert 0 < client.ttl(keys[0]) <= 1
    wait_until(lambda: not other.session_ended("nonce-1"), timeout=3)


def test_notices_reach_the_other_processes_but_not_the_sender(redis_url):
    one, other = RedisAccessStore(redis_url), RedisAccessStore(redis_url)
    heard_one: list[str] = []
    heard_other: list[str] = []
    one.on_notice(heard_one.append)
    other.on_notice(heard_other.append)
    try:
        one.announce("sweep")
        wait_until(lambda: heard_other == ["sweep"])
        time.sleep(0.05)  # a notice to itself would have arrived by now
        assert heard_one == []
    finally:
        one.close()
        other.close()


def test_stores_under_other_prefixes_do_not_share(redis_url):
    lab1 = RedisAccessStore(redis_url, prefix="lab1:")
    lab2 = RedisAccessStore(redis_url, prefix="lab2:")
    assert lab1.lock_acquire("olga", 1.0) == (True, True)
    assert lab2.lock_acquire("otto", 2.0) == (True, True)
    lab1.revoke_share("abcd")
    assert not lab2.share_revoked("abcd")


def test_the_redis_lock_follows_the_in_memory_one(redis_url):
    """The same sequence of lock operations gives the same answers in both stores."""
    stores = [MemoryAccessStore(), RedisAccessStore(redis_url)]
    steps = [
        ("lock_acquire", "olga", 1.0),
        ("lock_acquire", "olga", 2.0),
        ("lock_acquire", "otto", 3.0),
        ("lock_request", "otto", 4.0),
        ("lock_request", "olga", 5.0),
        ("lock_request", "vic", 6.0),
        ("lock_release", "otto"),
        ("lock_take", "ada", 7.0),
        ("lock_take", "ada", 8.0),
        ("lock_forget", "vic"),
        ("lock_forget", "vic"),
        ("lock_release", "ada"),
        ("lock_acquire", "otto", 9.0),
    ]
    for step in steps:
        name, *args = step
        answers = [getattr(s, name)(*args) for s in stores]
        states = [s.lock_state() for s in stores]
        assert answers[0] == answers[1], step
        assert states[0] == states[1], step
    assert stores[1].lock_state().holder.user == "otto"


def test_an_unreachable_redis_is_named_when_sharing_starts(data_dir):
    from tests.support.net import free_port

    bus = EventBus()
    app = secure_app(data_dir, bus, FakeOrchestrator(bus))
    url = f"redis://:secret@127.0.0.1:{free_port('127.0.0.1')}/0"
    with pytest.raises(RuntimeError, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1") as info:
        share_through_redis(app, url)
    assert "secret" not in str(info.value)


def test_a_redis_that_stops_answering_gives_503_naming_it(data_dir, tmp_path):
    from tests.support.redis_server import redis_server

    bus = EventBus()
    app = secure_app(data_dir, bus, FakeOrchestrator(bus))
    with redis_server(tmp_path / "redis") as url:
        share_through_redis(app, url)
        vic = login(app, "vic")
        assert vic.get("/api/state").status_code == 200
    try:
        r = vic.get("/api/state")  # the server is gone: the session cannot be checked
        assert r.status_code == 503
        assert "shared access store (Redis at redis://127.0.0.1" in r.get_json()["error"]
    finally:
        app.extensions[EXTENSION].store.close()


def attempt(app, name, password, addr="127.0.5.10"):
    client = app.test_client()
    token = client.get("/api/auth/session").get_json()["csrf_token"]
    return client.post(
        "/login",
        json={"username": name, "password": password},
        headers={"X-CSRF-Token": token},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_failed_logins_count_against_one_budget_on_every_process(pair):
    budget = pair.a.config["LANXI_LOGIN_MAX_FAILURES"]
    for i in range(budget):  # guesses spread over both processes, as a proxy would
        assert attempt(pair.apps[i % 2], "ada", "wrong password").status_code == 401
    for app in pair.apps:
        r = attempt(app, "ada", PASSWORD)
        assert r.status_code == 429
        assert "for this account" in r.get_json()["error"]
        assert 1 <= int(r.headers["Retry-After"]) <= pair.a.config["LANXI_LOGIN_WINDOW_S"]
    assert attempt(pair.b, "vic", PASSWORD).status_code == 200  # a colleague still logs in


def test_the_redis_login_limit_follows_the_in_memory_one(redis_url):
    now = [1000.0]
    clock = lambda: now[0]  # noqa: E731
    memory = FailureLimiter(3, 60.0, clock=clock)
    shared = RedisFailureLimiter(redis.Redis.from_url(redis_url), "t:", 3, 60.0, clock=clock)
    steps = [
        ("failure", "k1"), ("failure", "k1"), ("tick", 10.5), ("failure", "k1"),
        ("failure", "k2"), ("tick", 20.0), ("failure", "k1"), ("tick", 30.0),
        ("tick", 0.4), ("success", "k1"), ("failure", "k2"), ("failure", "k2"),
        ("tick", 59.9), ("tick", 0.2),
    ]  # fmt: skip
    for step, arg in steps:
        if step == "tick":
            now[0] += arg
        else:
            getattr(memory, step)(arg)
            getattr(shared, step)(arg)
        for keys in (("k1",), ("k2",), ("k1", "k2")):
            assert memory.retry_after(*keys) == shared.retry_after(*keys), (step, arg, keys)


def test_a_sweep_checks_all_its_sockets_in_one_look_up(redis_url):
    store = RedisAccessStore(redis_url)
    store.end_session("gone", keep_s=60)
    store.revoke_share("s-revoked")
    client = redis.Redis.from_url(redis_url)

    def exists_calls() -> int:
        return int(client.info("commandstats").get("cmdstat_exists", {}).get("calls", 0))

    before = exists_calls()
    with store.batch_checks(["gone", "kept", "other", None], ["s-revoked", "s-live", None]):
        assert store.session_ended("gone")
        assert not store.session_ended("kept") and not store.session_ended("other")
        assert store.share_revoked("s-revoked") and not store.share_revoked("s-live")
        during = exists_calls()
        assert not store.session_ended("not-in-the-batch")  # asked of Redis itself
    assert during - before == 3  # the batch's own three, none for the checks in it
    assert exists_calls() - during == 1
    assert store.session_ended("gone")  # after the block: Redis again
