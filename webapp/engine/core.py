"""The engine's parts wired together: orchestrator, rig, setups, control, fault panel, state.

One object whatever process it runs in: ``create_app`` builds it in the web process (the
embedded default), ``lanxi-dashboard engine`` builds it on its own and serves it through Redis
(:mod:`webapp.engine.service`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from webapp.capture import events as ev
from webapp.capture import manage, store
from webapp.engine.control import Control
from webapp.engine.faults import FaultPanel
from webapp.engine.rig import RigStore
from webapp.engine.setups import SetupStore
from webapp.engine.state import LiveState


class EngineCore:
    """The capture engine; see :class:`webapp.engine.interface.Engine` for what the web uses."""

    on_viewer_count: Callable[[int], None] | None = None

    def __init__(
        self,
        data_dir: Path | str,
        *,
        orchestrator: Any = None,
        bus: ev.EventBus | None = None,
        emulator: Any = None,
        state: LiveState | None = None,
        process: str = "lanxi-dashboard serve",
    ) -> None:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "captures").mkdir(exist_ok=True)
        self.data_dir = data_dir
        # Captures whose process died while recording: marked interrupted now, and the Rig page
        # says which modules they may have left recording. (Only the engine does this: a web
        # process that restarts must never touch a running capture.)
        self.interrupted: list[dict[str, Any]] = store.mark_interrupted_captures(
            data_dir, by=f"{process} (pid {os.getpid()} on {os.uname().nodename})"
        )
        manage.remove_leftovers(data_dir)  # captures deleted just before the last stop

        self.bus = bus or ev.EventBus()
        if orchestrator is None:
            from webapp.capture.orchestrator import Orchestrator

            # Each viewer picks the channel it shows; the hub tells the orchestrator which
            # ones are watched (watch_waveforms), so only those are decimated.
            orchestrator = Orchestrator(self.bus, data_dir, waveforms="all")
        self.orchestrator = orchestrator
        self.state = state if state is not None else LiveState()
        self.setups = SetupStore(data_dir)
        self.rig = RigStore(data_dir / "rig.json", orchestrator.probe, self._on_rig_change)
        if self.interrupted:
            self.rig.note_interrupted(self.interrupted)
        self.control = Control(orchestrator, self.rig, self.setups, self.state)
        self.faults = FaultPanel(self.rig, emulator, lambda v: self.state.set_topic("emulator", v))
        self.bus.subscribe(self.state.on_event)
        self.bus.subscribe(ev.log_problems)  # warnings and errors also in the process's log
        self.state.set_topic("rig", self.rig.view())
        self.publish_setup()
        self.faults.publish()

    def _on_rig_change(self, view: dict[str, Any]) -> None:
        # The setup's channel table follows the rig (a probed module brings its channels).
        self.state.set_topic("rig", view)
        self.state.set_topic(
            "setup",
            {"setup": self.setups.for_rig(view["modules"]), "setups": self.setups.names()},
        )
        if hasattr(self, "faults"):  # the first probe may come before the panel exists
            self.faults.publish()

    def setup_view(self) -> dict[str, Any]:
        rig = self.rig.view()
        return {"setup": self.setups.for_rig(rig["modules"]), "setups": self.setups.names()}

    def publish_setup(self) -> None:
        self.state.set_topic("setup", self.setup_view())

    def status(self) -> dict[str, Any]:
        o = self.orchestrator
        return {
            "armed": bool(o.armed),
            "busy": bool(o.busy),
            "recording": bool(getattr(o, "recording", False)),
            "current_capture_id": getattr(o, "current_capture_id", None),
        }

    def watch_waveforms(self, channels: Iterable[tuple[str, int]] | None) -> None:
        fn = getattr(self.orchestrator, "watch_waveforms", None)
        if fn is not None:
            fn(channels)

    def watch_spectra(self, spectra: Iterable[tuple[str, int, str, int]]) -> None:
        fn = getattr(self.orchestrator, "watch_spectra", None)
        if fn is not None:
            fn(spectra)

    def watch_frfs(self, frfs: Iterable[Any]) -> None:
        fn = getattr(self.orchestrator, "watch_frfs", None)
        if fn is not None:
            fn(frfs)

    @property
    def watches(self) -> bool:
        """Whether the orchestrator takes the viewers' choices (test fakes may not)."""
        return hasattr(self.orchestrator, "watch_waveforms")

    def close(self) -> None:
        pass
