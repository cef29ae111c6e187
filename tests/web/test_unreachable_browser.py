"""A rig module that nothing answers shows on the Capture page, in a real browser, as
unreachable with the reason and when it was last seen; the rig keeps the last sighting of a
module that stops answering."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests

from tests.support.browser import LAPTOP, shoot, skip_without_chromium, watch_errors
from tests.support.processes import serve
from webapp.engine.rig import RigStore
from webapp.openapi.client import ModuleError

SILENT = "127.0.44.20"  # in this test's loopback block; nothing listens there


@pytest.mark.browser
def test_an_unreachable_module_shows_why_and_since_when(tmp_path, browser):
    from playwright.sync_api import expect

    skip_without_chromium()
    with serve(tmp_path, "--emulate", "1", "--ptp-lock-seconds", "1") as base:
        r = requests.post(f"{base}/api/rig/modules", json={"address": SILENT}, timeout=10)
        assert r.status_code == 201, r.text
        page = browser.new_context(viewport=LAPTOP).new_page()
        errors: list[str] = []
        watch_errors(page, errors)
        page.goto(f"{base}/capture")
        card = page.locator(f'.module-card[data-module="{SILENT}"]')
        expect(card).to_have_attribute("data-reachable", "false", timeout=15000)
        expect(card.locator(f'[data-unreachable="{SILENT}"]')).to_have_text("unreachable")
        reason = card.locator(f'[data-unreachable-reason="{SILENT}"]')
        expect(reason).to_contain_text("Cannot be reached: ")
        expect(reason).to_contain_text(SILENT)  # the client's message names the module
        expect(reason).to_contain_text("never seen")
        # The emulated module answers: no unreachable mark on its card.
        other = page.locator('.module-card[data-reachable="true"]')
        expect(other).to_have_count(1)
        expect(other.locator("[data-unreachable]")).to_have_count(0)
        shoot(page, "capture-unreachable-laptop")
        assert errors == []
        page.context.close()


def test_the_rig_keeps_the_last_sighting_of_a_module_that_stops_answering(tmp_path):
    info = SimpleNamespace(
        type_number="3050", serial=150101, name="BK3050-150101", firmware="1", hardware="1",
        input_channels=6, output_channels=0, sample_rates=[51200], ranges=[], filters=[],
        module_state="Idle", supports_ptp=True,
    )  # fmt: skip
    answers: list[object] = [info]

    def probe(address: str) -> object:
        if isinstance(answers[0], Exception):
            raise answers[0]
        return answers[0]

    rig = RigStore(tmp_path / "rig.json", probe)  # type: ignore[arg-type]
    rig.add(SILENT, probe=False)
    rig.probe(SILENT)
    seen = rig.view()["modules"][0]
    assert seen["reachable"] is True and seen["last_seen"] > 0
    answers[0] = ModuleError(SILENT, "GET module/info", None, "connection refused")
    rig.probe(SILENT)
    lost = rig.view()["modules"][0]
    assert lost["reachable"] is False and "connection refused" in lost["error"]
    assert lost["last_seen"] == seen["last_seen"]
