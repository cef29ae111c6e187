"""The web layer calls one interface on the engine: the in-process engine and the handle on
one behind Redis both have every part and operation of it."""

from __future__ import annotations

import inspect

from webapp.engine.core import EngineCore
from webapp.engine.interface import Engine
from webapp.engine.remote import RemoteEngine


def interface_names() -> set[str]:
    names = set(Engine.__annotations__)
    names |= {n for n, v in vars(Engine).items() if inspect.isfunction(v) and n[0] != "_"}
    return names


def test_both_engines_have_the_whole_interface(tmp_path, redis_url):
    local = EngineCore(tmp_path / "local")
    remote = RemoteEngine(redis_url)
    try:
        for name in sorted(interface_names()):
            assert hasattr(local, name), f"EngineCore has no {name}"
            assert hasattr(remote, name), f"RemoteEngine has no {name}"
        assert local.on_viewer_count is None  # the hub's own count is the topic
        assert remote.on_viewer_count is not None  # summed by the engine over processes
        assert set(local.status()) == {"armed", "busy", "recording", "current_capture_id"}
    finally:
        remote.close()
