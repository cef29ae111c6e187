"""Fixtures shared by every test package (helpers that are not fixtures: tests/support/)."""

from __future__ import annotations

import pytest

from tests.support.browser import launch_chromium


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per test module; skips without chromium."""
    yield from launch_chromium()
