"""``lanxi-dashboard serve``: the dashboard, optionally on emulated modules in the same process."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.capture.shutdown import SHUTDOWN_TIMEOUT_S, ShutdownSignals, signal_name
from webapp.capture.workersetting import AUTO, add_receiver_workers_option
from webapp.datadir import default_data_dir
from webapp.engine.emulated import (
    add_emulate_options,
    emulate_options_refusal,
    replace_rig,
    start_from_options,
)
from webapp.engine.shutdown import SIGNAL_POLL_S, end_serving_on_signal

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the dashboard",
        description="Serve the dashboard. Bound to a loopback address it may run without login; "
        "any other address needs access control (lanxi-dashboard user add).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="TCP port (default 5000)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="captures, setups, rig and users live here (default ./data)",
    )
    add_emulate_options(p)
    add_receiver_workers_option(p)
    p.add_argument("--certfile", help="TLS certificate (PEM) to serve HTTPS directly")
    p.add_argument("--keyfile", help="TLS private key (PEM) for --certfile")
    p.add_argument(
        "--proxy-hops",
        type=int,
        default=None,
        metavar="N",
        help="N reverse proxies in front: trust their X-Forwarded-* headers (never without a "
        "proxy; default $LANXI_PROXY_HOPS or 0; docs/security.md)",
    )
    p.add_argument(
        "--mdns-interface",
        metavar="IP",
        help="the interface (its address) the Rig page's Find modules asks on (default: all)",
    )
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=SHUTDOWN_TIMEOUT_S,
        metavar="SECONDS",
        help="after SIGTERM or Ctrl-C, how long stopping a capture and closing the modules may "
        f"take before the dashboard quits anyway, naming what it leaves (default "
        f"{SHUTDOWN_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the address users reach the dashboard at (e.g. https://lab.example.org), for the "
        "share links it creates (default: the address the browser used)",
    )
    p.add_argument(
        "--setup-token",
        action="store_true",
        help="with no users yet: start with access control on and print a one-time link that "
        "lets the first visitor create the admin account (how the Docker image runs on 0.0.0.0)",
    )
    p.add_argument(
        "--message-queue",
        default=None,
        metavar="URL",
        help="redis://HOST:PORT/DB: the capture engine runs apart (lanxi-dashboard engine on "
        "the same URL) and this process serves its pages; several may (docs/deploy.md)",
    )
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from webapp.web.access.exposure import bind_refusal, transport_warning
    from webapp.web.access.proxy import trust_proxy
    from webapp.web.app import create_app

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    from webapp.web.access.setuptoken import install, setup_mode

    setup = setup_mode(getattr(args, "setup_token", False), data_dir)
    refusal = None if setup else bind_refusal(args.host, data_dir)
    if refusal:
        print(f"lanxi-dashboard serve: {refusal}", file=sys.stderr)
        return 2
    if bool(args.certfile) != bool(args.keyfile):
        print("lanxi-dashboard serve: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    refusal = emulate_options_refusal(args)
    if refusal:
        print(f"lanxi-dashboard serve: {refusal}", file=sys.stderr)
        return 2
    if not args.stop_timeout > 0:
        print("lanxi-dashboard serve: --stop-timeout must be more than 0 seconds", file=sys.stderr)
        return 2
    if args.proxy_hops is not None and not 0 <= args.proxy_hops <= 10:
        print("lanxi-dashboard serve: --proxy-hops takes 0..10", file=sys.stderr)
        return 2
    if args.public_url and not args.public_url.startswith(("http://", "https://")):
        print(
            "lanxi-dashboard serve: --public-url takes http://... or https://...", file=sys.stderr
        )
        return 2
    queue = getattr(args, "message_queue", None)
    if queue and args.emulate:
        print(
            "lanxi-dashboard serve: with --message-queue the emulated modules run in the "
            "engine (lanxi-dashboard engine --emulate N)",
            file=sys.stderr,
        )
        return 2
    if queue and args.receiver_workers != AUTO:
        print(
            "lanxi-dashboard serve: with --message-queue the receivers run in the engine "
            "(lanxi-dashboard engine --receiver-workers N)",
            file=sys.stderr,
        )
        return 2
    if queue and not queue.startswith(("redis://", "rediss://", "unix://")):
        print("lanxi-dashboard serve: --message-queue takes redis://HOST:PORT/DB", file=sys.stderr)
        return 2
    scheme = "https" if args.certfile else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"{scheme}://{host}:{args.port}/"
    try:
        listener = listening_socket(args.host, args.port)
    except OSError as exc:
        print(
            f"lanxi-dashboard serve: cannot listen on {address}: "
            f"{exc.strerror or exc}" + (" (is another dashboard running?)" if _in_use(exc) else ""),
            file=sys.stderr,
        )
        return 2
    warning = transport_warning(args.host, bool(args.certfile))
    if warning:
        print(f"lanxi-dashboard serve: warning: {warning}", file=sys.stderr)

    emulated = start_from_options(args)
    try:
        try:
            app = create_app(
                data_dir,
                auth_enabled=setup or _access_control_on(args.host, data_dir),
                emulator=emulated,
                message_queue=queue,
            )
        except Exception as exc:
            if not queue or not _is_redis_error(exc):
                raise
            print(f"lanxi-dashboard serve: cannot reach {queue}: {exc}", file=sys.stderr)
            return 2
        if args.proxy_hops:
            trust_proxy(app, args.proxy_hops)
        app.config["LANXI_MDNS_INTERFACE"] = args.mdns_interface
        if args.public_url:
            app.config["LANXI_PUBLIC_URL"] = args.public_url
        dashboard = app.extensions["lanxi"]
        if not queue:  # with a message queue the receivers are the engine's
            dashboard.orchestrator.receiver_workers = args.receiver_workers
        if emulated is not None:
            replace_rig(dashboard.rig, emulated.addresses)
        signals = ShutdownSignals()
        # The handler only counts; a greenlet looks at the count. (A greenlet scheduled from
        # the handler might wait for the hub's next wake-up, which an idle dashboard may not
        # have for a long time.)
        if queue:
            # The captures run in the engine: this process only stops serving its pages.
            runtime.spawn(_quit_on_signal, signals, name="shutdown watch")
        else:
            dashboard.rig.probe_all()
            runtime.spawn(
                end_serving_on_signal,
                dashboard.orchestrator,
                signals,
                args.stop_timeout,
                name="shutdown watch",
            )
        with signals:  # from before the start line: whoever saw it may send SIGTERM
            print(start_line(address, data_dir, app.config["LANXI_AUTH_ENABLED"]), flush=True)
            if queue:
                print(f"capture engine through {queue}", flush=True)
            if setup:
                print(setup_line(args.host, scheme, args.port, install(app)), flush=True)
            if dashboard.socketio.async_mode == "eventlet":
                _serve_eventlet(listener, app, args.certfile, args.keyfile)
            else:  # without eventlet (tests): werkzeug binds without SO_REUSEPORT itself
                listener.close()
                kwargs: dict[str, Any] = {
                    "host": args.host,
                    "port": args.port,
                    "log_output": False,
                }
                if args.certfile:
                    kwargs.update(certfile=args.certfile, keyfile=args.keyfile)
                kwargs["allow_unsafe_werkzeug"] = True
                dashboard.socketio.run(app, **kwargs)
    finally:
        listener.close()
        if emulated is not None:
            emulated.stop()
    return 0


def _quit_on_signal(signals: ShutdownSignals) -> None:
    """A web process in front of a separate engine: a signal ends only this process; any
    capture goes on in the engine and the viewers reconnect to another web process."""
    while not signals.count:
        time.sleep(SIGNAL_POLL_S)
    print(
        f"lanxi-dashboard serve: {signal_name(signals.first or signal.SIGTERM)}: exiting "
        "(captures go on in the capture engine)",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(0)


def _is_redis_error(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, redis.RedisError)


def start_line(address: str, data_dir: Path, access_control: bool) -> str:
    """What ``serve`` prints once it is up: where, which data folder, who gets in."""
    who = (
        "access control on (login required)"
        if access_control
        else "access control off (no users: anyone on this computer)"
    )
    return f"LAN-XI dashboard on {address} — data in {data_dir.resolve()} — {who}"


def setup_line(host: str, scheme: str, port: int, token: str) -> str:
    """The one-time link to create the first admin (on 127.0.0.1 when bound to all addresses,
    which is also how a published container port is reached from its host)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return (
        "No users yet: create the admin account, once, at\n"
        f"    {scheme}://{shown}:{port}/setup-admin/{token}"
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """The dashboard's listening socket, bound exclusively.

    ``eventlet.listen`` (what ``SocketIO.run`` uses) sets SO_REUSEPORT, so a second dashboard
    on the same port would listen too and the kernel would split the requests between them.
    This one sets only SO_REUSEADDR (a restart need not wait for TIME_WAIT): a taken port is
    an error.
    """
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE


def _serve_eventlet(
    listener: socket.socket, app: Any, certfile: str | None, keyfile: str | None
) -> None:
    import eventlet
    import eventlet.wsgi

    server_socket: Any = listener
    if certfile:
        server_socket = eventlet.wrap_ssl(
            listener, certfile=certfile, keyfile=keyfile, server_side=True
        )
    eventlet.wsgi.server(server_socket, app, log=_WsgiLog(), log_output=True)


class _WsgiLog:
    """eventlet's WSGI server log: its access lines are dropped (the audit log records what
    matters), but an exception it caught (answered 500) is logged with its traceback, so no
    failing request goes unseen (``log_output=False`` would silence both)."""

    _log = logging.getLogger("webapp.web.wsgi")

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if "Traceback (most recent call last)" in str(msg):
            self._log.error("request failed (answered 500):\n%s", msg)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log.error(msg, *args)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass

    def write(self, msg: str, *args: Any) -> None:
        self.info(msg)


def _access_control_on(host: str, data_dir: Path) -> bool:
    """On as soon as users exist, and always off the loopback (where bind_refusal has already
    made sure that users exist)."""
    from webapp.web.access.exposure import access_configured
    from webapp.web.access.requestchecks import is_loopback

    return access_configured(data_dir) or not is_loopback(host)
