"""``create_app()``: the dashboard's Flask app, its Socket.IO server and the services behind.

The web layer only translates: the capture engine (:mod:`webapp.engine`, in this process or
another one behind Redis) runs captures; :class:`~webapp.engine.state.LiveState` holds what they
look like; :mod:`webapp.web.live` pushes it to browsers; :mod:`webapp.web.api` turns HTTP
requests into engine calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from webapp import runtime
from webapp.capture import events as ev
from webapp.engine.control import RequestError
from webapp.engine.state import LiveState
from webapp.web import bodies, engineio_compat, headers, live
from webapp.web.access.install import init_app
from webapp.web.access.sockets import init_socketio

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Dashboard:
    """Everything a request handler needs, kept in ``app.extensions["lanxi"]``. ``engine`` is
    the capture engine in this process, or this process's handle on one elsewhere (through
    Redis); ``orchestrator``, ``rig``, ``setups``, ``control`` and ``faults`` are its parts,
    called the same way in both cases."""

    data_dir: Path
    bus: ev.EventBus
    orchestrator: Any
    state: LiveState
    rig: Any
    setups: Any
    control: Any
    faults: Any
    hub: live.LiveHub
    socketio: SocketIO
    engine: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def setup_view(self) -> dict[str, Any]:
        return dict(self.engine.setup_view())

    def publish_setup(self) -> None:
        self.engine.publish_setup()

    def snapshot(self) -> dict[str, Any]:
        snap = self.state.snapshot()
        if self.engine.on_viewer_count is None:
            snap["viewers"] = {"count": self.hub.viewer_count}
        try:
            status = self.engine.status()
        except RequestError as exc:  # no engine answers: say so instead of failing the page
            snap["control"] = {"armed": False, "busy": False, "engine": exc.message}
        else:
            snap["control"] = {"armed": status["armed"], "busy": status["busy"]}
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
    message_queue: str | None = None,
) -> Flask:
    """Build the dashboard. ``orchestrator`` defaults to a real one on ``bus``;
    ``emulator`` (emulated modules running in this process) enables the fault panel. With
    ``message_queue`` (``redis://HOST:PORT/DB``) the capture engine is not built here: a
    ``lanxi-dashboard engine`` on the same queue runs it, and this process serves its state
    and passes it the requests (docs/deploy.md)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engineio_compat.install()  # binary pushes to WebSocket and polling viewers alike

    engine: Any
    if message_queue:
        from webapp.engine.remote import RemoteEngine

        engine = RemoteEngine(message_queue)
        bus = ev.EventBus()  # the engine's events reach this process as state, not on a bus
    else:
        from webapp.engine.core import EngineCore

        engine = EngineCore(data_dir, orchestrator=orchestrator, bus=bus, emulator=emulator)
        bus = engine.bus
    (data_dir / "captures").mkdir(exist_ok=True)

    app = Flask(
        "webapp.web",
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        static_url_path="/static",
    )
    app.config["JSON_SORT_KEYS"] = False
    app.config["LANXI_DATA_DIR"] = data_dir
    app.config["LANXI_INTERRUPTED"] = engine.interrupted
    app.config["LANXI_MESSAGE_QUEUE"] = message_queue  # None: one process, no Redis
    app.config["MAX_CONTENT_LENGTH"] = bodies.MAX_BODY  # 413 above it, login included
    bodies.register_errors(app)
    init_app(app, data_dir, auth_enabled)  # also the session key (.secret_key, 0600)
    if message_queue:
        from webapp.web.access.store import share_through_redis

        # The control lock, ended sessions and revoked share links, shared by every process.
        share_through_redis(app, message_queue)

    socketio = SocketIO(app, async_mode=async_mode(), max_http_buffer_size=1_000_000)
    state = engine.state
    watches = getattr(engine, "watches", True)
    hub = live.LiveHub(
        socketio,
        state,
        min_interval_s=push_interval_s,
        watch_waveforms=engine.watch_waveforms if watches else None,
        watch_spectra=engine.watch_spectra if watches else None,
        on_viewer_count=engine.on_viewer_count,
        watch_frfs=engine.watch_frfs if watches else None,
    )
    dashboard = Dashboard(
        data_dir=data_dir,
        bus=bus,
        orchestrator=engine.orchestrator,
        state=state,
        rig=engine.rig,
        setups=engine.setups,
        control=engine.control,
        faults=engine.faults,
        hub=hub,
        socketio=socketio,
        engine=engine,
    )
    app.extensions["lanxi"] = dashboard
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
    live.register(socketio, hub, engine.control)
    # Last, with every handler registered: anonymous Socket.IO handshakes are refused (401)
    # from the very first one, before any HTTP request reached the app.
    init_socketio(socketio, app)
    # Outermost, so Socket.IO's own responses carry the security headers too.
    app.wsgi_app = headers.SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    return app
