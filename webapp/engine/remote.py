"""A web process's handle on a capture engine that runs elsewhere, through Redis.

The web layer calls ``rig.add(...)``, ``control.start(...)``, ``orchestrator.busy`` on it as it
does on the engine in its own process (:class:`~webapp.engine.core.EngineCore`); here each
call is a command to the engine (:mod:`webapp.engine.commands`). The live state is a mirror
of the engine's (:mod:`webapp.engine.mirror`), so viewers are served from this process's
memory, and what they watch is reported to the engine (:mod:`webapp.engine.watching`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webapp.engine.commands import CommandClient
from webapp.engine.interface import COMMAND_TIMEOUT_S
from webapp.engine.mirror import StateMirror
from webapp.engine.state import LiveState
from webapp.engine.watching import WatchReporter


def connect(url: str) -> Any:
    """A Redis client for ``url`` (redis://HOST:PORT/DB), checked with a PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    client.ping()
    return client


class _Remote:
    """Calls on one of the engine's parts (``target``), each one a command."""

    def __init__(self, client: CommandClient, target: str) -> None:
        self._client = client
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._client.call(self._target, name, *args, **kwargs)

        call.__name__ = name
        return call


class _RemoteOrchestrator:
    """The orchestrator's state, as the web layer reads it, asked of the engine."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    @property
    def armed(self) -> bool:
        return bool(self._engine.status()["armed"])

    @property
    def busy(self) -> bool:
        return bool(self._engine.status()["busy"])

    @property
    def recording(self) -> bool:
        return bool(self._engine.status()["recording"])

    @property
    def current_capture_id(self) -> str | None:
        return self._engine.status()["current_capture_id"]


class RemoteEngine:
    """See :class:`webapp.engine.interface.Engine`."""

    watches = True
    interrupted: list[dict[str, Any]] = []

    def __init__(self, url: str, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self.url = url
        self.redis = connect(url)
        self.commands = CommandClient(self.redis, timeout_s)
        self.state = LiveState()
        self.mirror = StateMirror(self.redis, self.state)
        self.reporter = WatchReporter(self.redis)
        self.on_viewer_count = self.reporter.viewers
        self.orchestrator = _RemoteOrchestrator(self)
        self.rig = _Remote(self.commands, "rig")
        self.setups = _Remote(self.commands, "setups")
        self.control = _Remote(self.commands, "control")
        self.faults = _Remote(self.commands, "faults")
        self.mirror.start()
        self.reporter.start()

    def status(self) -> dict[str, Any]:
        return dict(self.commands.call("engine", "status"))

    def setup_view(self) -> dict[str, Any]:
        return dict(self.commands.call("engine", "setup_view"))

    def publish_setup(self) -> None:
        self.commands.call("engine", "publish_setup")

    def watch_waveforms(self, channels: Iterable[tuple[str, int]] | None) -> None:
        self.reporter.waveforms(channels)

    def watch_spectra(self, spectra: Iterable[tuple[str, int, str, int]]) -> None:
        self.reporter.spectra(spectra)

    def watch_frfs(self, frfs: Iterable[Any]) -> None:
        self.reporter.frfs(frfs)

    def close(self) -> None:
        self.mirror.stop()
        self.reporter.stop()
