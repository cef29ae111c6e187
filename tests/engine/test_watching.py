"""What viewers watch, summed over web processes through a real redis-server: the engine
decodes the union of every live process's choices, and a process that died stops counting."""

from __future__ import annotations

import pytest
import redis

from tests.support.waiting import wait_until
from webapp.engine import watching
from webapp.engine.watching import WatchReporter, WatchUnion


@pytest.fixture
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


class Applied:
    def __init__(self) -> None:
        self.waveforms: frozenset = frozenset()
        self.spectra: frozenset = frozenset()
        self.count = -1
        self.calls = 0

    def set_waveforms(self, w: frozenset) -> None:
        self.waveforms = w
        self.calls += 1

    def set_spectra(self, s: frozenset) -> None:
        self.spectra = s

    def set_count(self, n: int) -> None:
        self.count = n


def test_the_engine_watches_the_union_and_a_dead_process_stops_counting(client, monkeypatch):
    monkeypatch.setattr(watching, "TTL_S", 0.6)
    monkeypatch.setattr(watching, "RENEW_S", 0.2)
    applied = Applied()
    union = WatchUnion(client, applied.set_waveforms, applied.set_spectra, applied.set_count)
    union.start()
    a, b = WatchReporter(client), WatchReporter(client)
    a.start()
    b.start()
    try:
        assert applied.waveforms == frozenset() and applied.count == 0  # nobody yet
        a.waveforms([("m1", 1)])
        a.viewers(2)
        b.waveforms([("m1", 1), ("m2", 3)])
        b.spectra([("m2", 3, "hann", 1600)])
        b.viewers(1)
        wait_until(lambda: applied.waveforms == {("m1", 1), ("m2", 3)})
        wait_until(lambda: applied.count == 3)
        assert applied.spectra == {("m2", 3, "hann", 1600)}

        b._stop = True  # killed: no more renewals, nothing deleted
        wait_until(lambda: applied.waveforms == {("m1", 1)}, timeout=3)
        wait_until(lambda: applied.count == 2)
        assert applied.spectra == frozenset()

        calls = applied.calls
        a.write()  # renewals of an unchanged choice change nothing on the engine
        union.refresh()
        assert applied.calls == calls
    finally:
        a.stop()
        b.stop()
        union.stop()
