"""``lanxi-dashboard engine``: the capture engine on its own, served through Redis.

It runs the orchestrator, the receivers and the capture store (and, with ``--emulate N``,
emulated modules), with no web server: ``lanxi-dashboard serve --message-queue URL`` processes
serve the pages and pass it their requests (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from webapp.capture.shutdown import SHUTDOWN_TIMEOUT_S, ShutdownSignals
from webapp.capture.workersetting import add_receiver_workers_option
from webapp.datadir import default_data_dir
from webapp.engine.emulated import (
    add_emulate_options,
    emulate_options_refusal,
    replace_rig,
    start_from_options,
)

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "engine",
        help="run the capture engine apart from the web server, through Redis",
        description="Run the capture engine (orchestrator, receivers, capture store) without "
        "a web server; lanxi-dashboard serve --message-queue on the same URL serves its pages.",
    )
    p.add_argument(
        "--message-queue",
        required=True,
        metavar="URL",
        help="redis://HOST:PORT/DB shared with the web processes",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="captures, setups and rig live here; the web processes use the same folder "
        "(default ./data)",
    )
    add_emulate_options(p)
    add_receiver_workers_option(p)
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=SHUTDOWN_TIMEOUT_S,
        metavar="SECONDS",
        help="after SIGTERM or Ctrl-C, how long stopping a capture and closing the modules may "
        f"take before the engine quits anyway (default {SHUTDOWN_TIMEOUT_S:g})",
    )
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"lanxi-dashboard engine: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import redis

    from webapp.engine.core import EngineCore
    from webapp.engine.journal import JournaledState
    from webapp.engine.remote import connect
    from webapp.engine.service import AnotherEngineRunning, EngineService, Heartbeat
    from webapp.engine.shutdown import SIGNAL_POLL_S, end_serving

    if not args.message_queue.startswith(("redis://", "rediss://", "unix://")):
        return _fail("--message-queue takes redis://HOST:PORT/DB")
    refusal = emulate_options_refusal(args)
    if refusal:
        return _fail(refusal)
    if not args.stop_timeout > 0:
        return _fail("--stop-timeout must be more than 0 seconds")
    data_dir: Path = args.data_dir.resolve()
    try:
        client = connect(args.message_queue)
        heartbeat = Heartbeat(client)
        heartbeat.claim()
    except redis.RedisError as exc:
        return _fail(f"cannot reach {args.message_queue}: {exc}")
    except AnotherEngineRunning as exc:
        return _fail(str(exc))

    emulated = start_from_options(args)
    try:
        core = EngineCore(
            data_dir, emulator=emulated, state=JournaledState(), process="lanxi-dashboard engine"
        )
        core.orchestrator.receiver_workers = args.receiver_workers
        from webapp.calibration.database import TransducerDatabase
        from webapp.calibration.records import detection_subscriber

        core.bus.subscribe(detection_subscriber(TransducerDatabase(data_dir)))
        if emulated is not None:
            replace_rig(core.rig, emulated.addresses)
        service = EngineService(client, core)
        service.start()
        core.rig.probe_all()
        signals = ShutdownSignals()
        with signals:
            print(
                f"LAN-XI capture engine on {args.message_queue} — data in {data_dir}"
                + (f" — {args.emulate} emulated modules" if emulated else ""),
                flush=True,
            )
            while not signals.count:
                time.sleep(SIGNAL_POLL_S)
            service.stop_commands()

            def before_exit() -> None:
                service.stop()
                heartbeat.release()

            # Ends the capture cleanly (every module back to Idle, files complete), then exits
            # as serve does.
            end_serving(
                core.orchestrator,
                signals,
                args.stop_timeout,
                "lanxi-dashboard engine",
                before_exit,
            )
    finally:
        if emulated is not None:
            emulated.stop()
    return 0
