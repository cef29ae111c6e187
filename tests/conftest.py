"""Fixtures shared by every test package (helpers that are not fixtures: tests/support/)."""

from __future__ import annotations

import pytest

from tests.support.browser import launch_chromium


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per test module; skips without chromium."""
    yield from launch_chromium()


@pytest.fixture
def redis_url(tmp_path_factory):
    """A real redis-server on loopback for one test; its URL (``redis://127.0.0.1:PORT/0``)."""
    from tests.support.redis_server import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
