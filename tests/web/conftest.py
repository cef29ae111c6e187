from __future__ import annotations

from pathlib import Path

import pytest
from web_fakes import FakeOrchestrator

from webapp.capture.events import EventBus
from webapp.web.app import create_app


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def orchestrator(bus: EventBus) -> FakeOrchestrator:
    return FakeOrchestrator(bus, unreachable={"127.0.3.99"})


@pytest.fixture
def app(tmp_path: Path, bus: EventBus, orchestrator: FakeOrchestrator):
    app = create_app(tmp_path / "data", orchestrator=orchestrator, bus=bus, push_interval_s=0.02)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def dash(app):
    return app.extensions["lanxi"]
