"""Fixtures shared by every test package (helpers that are not fixtures: tests/support/)."""

from __future__ import annotations

import pytest

from tests.support.browser import launch_chromium

EXPECT_TIMEOUT_MS = 15_000
"""How long a Playwright ``expect`` without a timeout of its own waits for its condition. It
returns as soon as the condition holds; Playwright's 5 s default is too short on a busy 2-core
machine for a page that waits on the server's computation (a test that means "within a
second" says so with its own timeout)."""

SLOW_FIRST = (
    "tests/capture/test_fault_drills.py",
    "tests/discovery/test_discovery.py",
    "tests/web/test_nginx_failover_browser.py",
    "tests/web/test_browser_monitor.py",
    "tests/web/test_browser.py",
    "tests/web/test_levels_browser.py",
    "tests/capture/test_ptp_loss_verdict.py",
    "tests/web/test_request_schemas.py",
    "tests/web/test_generator_browser.py",
    "tests/web/test_nginx_proxy.py",
    "tests/capture/test_monitoring.py",
    "tests/analysis/test_capture_page_browser.py",
    "tests/analysis/test_frf_capture.py",
    "tests/capture/test_signals.py",
    "tests/capture/test_interrupted.py",
    "tests/web/test_access_ui_browser.py",
    "tests/web/test_labels_browser.py",
    "tests/web/test_transducers_browser.py",
    "tests/engine/test_engine_processes.py",
)
"""The longest test files, handed out first when the suite runs in parallel (pytest-xdist,
``--dist loadfile``), so that none of them starts last and keeps the run going alone."""


def pytest_configure(config: pytest.Config) -> None:
    try:
        from playwright.sync_api import expect
    except ImportError:
        return
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the longest files first (the order inside each file is kept)."""
    if not getattr(config.option, "numprocesses", None):
        return
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}

    def key(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the other files keep their order


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium through Playwright, one per test session (per xdist worker); skips
    without chromium."""
    yield from launch_chromium()


@pytest.fixture
def browser(chromium):
    """The session's chromium for one test: every context (and page) the test opened is closed
    after it, so no page of an earlier test keeps polling a server."""
    yield chromium
    for context in list(chromium.contexts):
        context.close()


@pytest.fixture
def redis_url(tmp_path_factory):
    """A real redis-server on loopback for one test; its URL (``redis://127.0.0.1:PORT/0``)."""
    from tests.support.redis_server import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
