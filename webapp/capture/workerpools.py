"""The orchestrator's side of receiver workers (:mod:`webapp.capture.workers`): which recording
gets a pool, starting it while the modules are armed, ending it with the recording. A base
class of :class:`webapp.capture.recording.Recording`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webapp import runtime
from webapp.capture.events import Event
from webapp.capture.session import ModuleRun, Session
from webapp.capture.workers import ReceiverPool
from webapp.capture.workersetting import worker_count


class PoolStart:
    """A :class:`ReceiverPool` started in the background (while the modules are armed), so
    the workers' start costs the recording nothing."""

    def __init__(self, count: int, publish: Callable[[Event], None]) -> None:
        self.count = count
        self._publish = publish
        self._pool: ReceiverPool | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        runtime.spawn(self._run, name="receiver workers start")

    def _run(self) -> None:
        try:
            self._pool = ReceiverPool(self.count, self._publish)
        except Exception as exc:
            self._error = exc
        finally:
            self._done.set()

    def take(self) -> ReceiverPool:
        """The pool (waiting for its start); a fresh one if a worker ended while it waited."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        pool = self._pool
        assert pool is not None
        if any(w.gone.is_set() for w in pool.workers):
            pool.close()
            pool = ReceiverPool(self.count, self._publish)
        return pool

    def discard(self) -> None:
        """Not needed after all (the session ended): its workers end, in the background."""

        def end() -> None:
            self._done.wait()
            if self._pool is not None:
                self._pool.close()

        runtime.spawn(end, name="receiver workers end")


class WorkerReceivers:
    """Receiver worker pools of the recordings (the orchestrator provides the setting and the
    event publishing declared here)."""

    receiver_workers: int | str
    _receiver_pool: ReceiverPool | None = None
    _spare_pool: PoolStart | None = None

    def _publish(self, event: Event) -> None:
        raise NotImplementedError

    def _receiver_ended(self, s: Session, receiver: Any, error: str | None) -> None:
        raise NotImplementedError

    def _stream_reconnected(self, receiver: Any, drop: dict[str, Any]) -> None:
        raise NotImplementedError

    def _prestart_receivers(self, s: Session) -> None:
        """Start the next recording's receiver workers now, if it will have any (arming takes
        longer than their start)."""
        count = worker_count(self.receiver_workers, len(s.modules))
        if count > 1 and self._spare_pool is None:
            self._spare_pool = PoolStart(count, self._publish)

    def _drop_spare_receivers(self) -> None:
        spare, self._spare_pool = self._spare_pool, None
        if spare is not None:
            spare.discard()

    def _recording_pool(self, s: Session) -> ReceiverPool | None:
        """The worker pool of the recording about to connect its streams (None: its receivers
        run in the engine)."""
        count = worker_count(self.receiver_workers, len(s.modules))
        if count <= 1:
            return None
        spare, self._spare_pool = self._spare_pool, None
        if spare is not None and spare.count == count:
            pool = spare.take()
        else:
            if spare is not None:
                spare.discard()
            pool = ReceiverPool(count, self._publish)
        self._receiver_pool = pool
        return pool

    def _open_in_worker(
        self,
        pool: ReceiverPool,
        s: Session,
        m: ModuleRun,
        port: int,
        path: Path,
        only: int | None,
        channels: list[int],
        signal_channel: dict[int, int],
    ) -> None:
        """A receiver of ``m``'s stream ``port`` into ``path`` in its worker, in ``m``'s list
        (``only``: the channel of a multi-socket stream)."""
        assert m.live is not None
        remote = pool.open(
            m.number,
            m.client,
            port,
            path,
            m.live,
            lambda r, err: self._receiver_ended(s, r, err),
            label=f"{m.address} port {port}",
            channel=only,
            channels=channels,
            signal_channel=signal_channel,
            reconnect=s.settings.on_stream_drop == "reconnect",
            on_reconnect=self._stream_reconnected,
        )
        m.receivers.append(remote)  # type: ignore[arg-type]

    def _end_recording_pool(self) -> None:
        """Every receiver closed: the worker processes end."""
        pool, self._receiver_pool = self._receiver_pool, None
        if pool is not None:
            pool.close()
