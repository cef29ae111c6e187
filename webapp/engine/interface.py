"""What the web layer uses of the capture engine, whichever way it runs.

:class:`~webapp.engine.core.EngineCore` is the engine itself (in the web process in the
embedded default, in ``lanxi-dashboard engine`` otherwise); :class:`~webapp.engine.remote.
RemoteEngine` is a web process's handle on an engine elsewhere, through Redis. The web layer
calls the same attributes on both; with the remote one each call crosses Redis and comes back
with the engine's answer or, when no engine answers, :class:`EngineUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from webapp.engine.control import RequestError
from webapp.engine.state import LiveState

COMMAND_TIMEOUT_S = 5.0
"""How long a web process waits for an engine to take a command before telling the user that
no capture engine is running."""


class EngineUnavailable(RequestError):
    """No capture engine answered: HTTP 503, in the user's terms."""

    def __init__(self, message: str):
        super().__init__(None, message, 503)


class Engine(Protocol):
    state: LiveState
    """The live state viewers see: the engine's own, or a web process's mirror of it."""
    orchestrator: Any
    """``armed``, ``busy``, ``recording``, ``current_capture_id`` of the engine's orchestrator."""
    rig: Any
    setups: Any
    control: Any
    faults: Any
    interrupted: list[dict[str, Any]]
    on_viewer_count: Callable[[int], None] | None
    """None: the hub publishes its own count; else where it reports it (summed elsewhere)."""

    def setup_view(self) -> dict[str, Any]: ...
    def publish_setup(self) -> None: ...
    def status(self) -> dict[str, Any]: ...
    def watch_waveforms(self, channels: Iterable[tuple[str, int]] | None) -> None: ...
    def watch_spectra(self, spectra: Iterable[tuple[str, int, str, int]]) -> None: ...
    def watch_frfs(self, frfs: Iterable[Any]) -> None: ...
    def close(self) -> None: ...
