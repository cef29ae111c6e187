"""``create_app()``: the dashboard's Flask app, its Socket.IO server and the services behind.

The web layer only translates: the orchestrator runs captures and publishes events on its bus;
:class:`~webapp.web.state.LiveState` folds them; :mod:`webapp.web.live` pushes them to browsers;
:mod:`webapp.web.api` turns HTTP requests into orchestrator calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from webapp import runtime
from webapp.capture import events as ev
from webapp.capture import store
from webapp.web import auth, bodies, engineio_compat, headers, live
from webapp.web.control import Control
from webapp.web.faults import FaultPanel
from webapp.web.rig import RigStore
from webapp.web.setups import SetupStore
from webapp.web.state import LiveState

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Dashboard:
    """Everything a request handler needs, kept in ``app.extensions["lanxi"]``."""

    data_dir: Path
    bus: ev.EventBus
    orchestrator: Any
    state: LiveState
    rig: RigStore
    setups: SetupStore
    control: Control
    faults: FaultPanel
    hub: live.LiveHub
    socketio: SocketIO
    extras: dict[str, Any] = field(default_factory=dict)

    def setup_view(self) -> dict[str, Any]:
        rig = self.rig.view()
        return {
            "setup": self.setups.for_rig(rig["modules"]),
            "setups": self.setups.names(),
        }

    def publish_setup(self) -> None:
        self.state.set_topic("setup", self.setup_view())

    def snapshot(self) -> dict[str, Any]:
        snap = self.state.snapshot()
        snap["viewers"] = {"count": self.hub.viewer_count}
        snap["control"] = {
            "armed": bool(self.orchestrator.armed),
            "busy": bool(self.orchestrator.busy),
        }
        return snap


def async_mode() -> str:
    return "eventlet" if runtime.eventlet_active() else "threading"


def create_app(
    data_dir: Path | str,
    *,
    orchestrator: Any = None,
    bus: ev.EventBus | None = None,
    auth_enabled: bool = False,
    push_interval_s: float = live.MIN_INTERVAL_S,
    emulator: Any = None,
) -> Flask:
    """Build the dashboard. ``orchestrator`` defaults to a real one on ``bus``;
    ``emulator`` (emulated modules running in this process) enables the fault panel."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "captures").mkdir(exist_ok=True)
    engineio_compat.install()  # binary pushes to WebSocket and polling viewers alike
    # Captures whose process died while recording: marked interrupted now, and the Rig page
    # says which modules they may have left recording.
    interrupted = store.mark_interrupted_captures(
        data_dir, by=f"lanxi-dashboard serve (pid {os.getpid()} on {os.uname().nodename})"
    )
    from webapp.web.manage import remove_leftovers

    remove_leftovers(data_dir)  # captures deleted just before the last stop

    app = Flask(
        "webapp.web",
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        static_url_path="/static",
    )
    app.config["JSON_SORT_KEYS"] = False
    app.config["LANXI_DATA_DIR"] = data_dir
    app.config["LANXI_INTERRUPTED"] = interrupted
    app.config["MAX_CONTENT_LENGTH"] = bodies.MAX_BODY  # 413 above it, login included
    bodies.register_errors(app)
    auth.init_app(app, data_dir, auth_enabled)  # also the session key (.secret_key, 0600)

    bus = bus or ev.EventBus()
    if orchestrator is None:
        from webapp.capture.orchestrator import Orchestrator

        # Each viewer picks the channel it shows; the hub tells the orchestrator which ones
        # are watched (watch_waveforms), so only those are decimated.
        orchestrator = Orchestrator(bus, data_dir, waveforms="all")

    socketio = SocketIO(app, async_mode=async_mode(), max_http_buffer_size=1_000_000)
    state = LiveState()
    setups = SetupStore(data_dir)

    fault_panel: list[FaultPanel] = []  # set below; the panel lists the rig's emulated modules

    def on_rig_change(view: dict[str, Any]) -> None:
        # The setup's channel table follows the rig (a probed module brings its channels).
        state.set_topic("rig", view)
        state.set_topic(
            "setup", {"setup": setups.for_rig(view["modules"]), "setups": setups.names()}
        )
        for panel in fault_panel:
            panel.publish()

    rig = RigStore(data_dir / "rig.json", orchestrator.probe, on_rig_change)
    if interrupted:
        rig.note_interrupted(interrupted)
    control = Control(orchestrator, rig, setups, state)
    faults = FaultPanel(rig, emulator, lambda v: state.set_topic("emulator", v))
    fault_panel.append(faults)
    hub = live.LiveHub(
        socketio,
        state,
        min_interval_s=push_interval_s,
        watch_waveforms=getattr(orchestrator, "watch_waveforms", None),
        watch_spectra=getattr(orchestrator, "watch_spectra", None),
        watch_frfs=getattr(orchestrator, "watch_frfs", None),
    )
    dashboard = Dashboard(
        data_dir=data_dir,
        bus=bus,
        orchestrator=orchestrator,
        state=state,
        rig=rig,
        setups=setups,
        control=control,
        faults=faults,
        hub=hub,
        socketio=socketio,
    )
    app.extensions["lanxi"] = dashboard

    bus.subscribe(state.on_event)
    state.set_topic("rig", rig.view())
    dashboard.publish_setup()
    faults.publish()
    hub.refresh_watch()  # nobody watches yet: no waveform is decoded

    from webapp.web import api, pages

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    from webapp.web import transducers_api

    app.register_blueprint(transducers_api.bp)
    transducers_api.watch_detections(dashboard)
    try:
        from webapp.web.analysis_api import bp as analysis_bp
    except ModuleNotFoundError as exc:
        if exc.name != "webapp.web.analysis_api":
            raise
    else:
        app.register_blueprint(analysis_bp)
    live.register(socketio, hub, control)
    # Last, with every handler registered: anonymous Socket.IO handshakes are refused (401)
    # from the very first one, before any HTTP request reached the app.
    auth.init_socketio(socketio, app)
    # Outermost, so Socket.IO's own responses carry the security headers too.
    app.wsgi_app = headers.SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    return app
