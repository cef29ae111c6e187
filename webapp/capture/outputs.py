"""Generator outputs started and stopped by hand, and what every output is doing.

A test engineer starts a shaker or a loudspeaker to check levels before recording, or keeps it
running while monitoring; :class:`HandOutputs` does that with the same sequence a recording
uses (:func:`webapp.capture.generator.drive`: prepare, output, start on every module, slaves
first; then ``apply`` to the trigger master of a synchronized session, which starts them all at
one time). When may it:

* the rig is idle (no module opened): each module starts its outputs when its request arrives
  (a module that is not opened in a multi-module session starts at once; there is no common
  trigger, so outputs of different modules start milliseconds apart);
* the rig is armed or monitoring (recordings cut from the monitoring included): through the
  armed session, synchronized across modules by ``apply``;
* not while the rig is being armed, torn down, or records a capture started with Start (that
  recording's outputs are the ones its start request names): refused with the phase.

Stopping is allowed at any time, on every module asked, even when one of them fails (the
others are still stopped; the failures are reported together).

Every start and stop is a :class:`~webapp.capture.events.GeneratorChanged` event; so is the end
of a recording that drove outputs and the recorder's close at disarming, which stops every
output of the modules it closes (the module restores its default generator setup).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from webapp.capture.events import CapturePrepared, Event, GeneratorChanged, Phase, PhaseChanged
from webapp.capture.generator import check_outputs, drive, named
from webapp.capture.session import CaptureBusyError, ModuleRun, Session
from webapp.openapi.client import ModuleClient, ModuleError

CLOSED_NOTE = "stopped when the recorder was closed (disarming stops every output)"
_ENDED = (Phase.IDLE, Phase.COMPLETED, Phase.FAILED)
_TEARDOWN = (Phase.DISARMING, Phase.STOPPING, Phase.FINISHING, Phase.CLOSING)


class HandOutputs:
    """The outputs started by hand, and the running state of every driven output."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        client_factory: Callable[[str], ModuleClient],
        session_modules: Callable[[], list[str]] = list,
    ) -> None:
        self._publish = publish
        self._current_modules = session_modules
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self.running: dict[str, dict[int, dict[str, Any]]] = {}
        """Per module address, per output number: the output object it runs."""
        self._session_modules: set[str] = set()
        self._by_hand: set[tuple[str, int]] = set()

    # --- by hand ----------------------------------------------------------------------------

    def start(
        self,
        generators: dict[str, list[dict[str, Any]]],
        session: Session | None,
        rig: list[str],
    ) -> None:
        """Start ``generators`` (module address → output objects). ``session``: the armed
        session (None: the rig is idle; ``rig`` are its modules, the master first)."""
        runs = self._runs(generators, session, rig)
        for m, outputs in runs:
            count = m.info.output_channels if m.info is not None else 0
            check_outputs(m.number, m.address, count, outputs, "generators")
        apply_to = session.master if session is not None and session.synchronized else None
        try:
            drive(runs, apply_to)
        except ModuleError:
            # Outputs prepared or waiting for apply on the modules before the failure: stop
            # them, so nothing starts later with an apply meant for something else.
            for m, outputs in runs:
                with contextlib.suppress(ModuleError):
                    m.client.stop_generator([int(o["number"]) for o in outputs])
            raise
        for m, outputs in runs:
            for output in outputs:
                self._changed(m.address, int(output["number"]), True, "hand", dict(output))

    def stop(
        self, outputs: dict[str, list[int]] | None, session: Session | None, rig: list[str]
    ) -> None:
        """Stop these outputs (module address → numbers; None: every running output). Every
        module is asked even when one fails; the failures are raised together afterwards."""
        with self._lock:
            wanted = (
                {a: sorted(o) for a, o in self.running.items() if o}
                if outputs is None
                else {a: list(n) for a, n in outputs.items() if n}
            )
        troubles: list[ModuleError] = []
        for m, numbers in self._module_runs(wanted, session, rig):
            try:
                with named(m, numbers):
                    m.client.stop_generator(numbers)
            except ModuleError as exc:
                troubles.append(exc)
                continue
            for n in numbers:
                self._changed(m.address, n, False, "hand")
        if troubles:
            first = troubles[0]
            if len(troubles) > 1:
                rest = "; ".join(str(t) for t in troubles[1:])
                raise ModuleError(first.module, first.request, first.status,
                                  f"{first.message}; also {rest}")  # fmt: skip
            raise first

    # --- driven by a recording, stopped by a close --------------------------------------------

    def recording_drives(self, s: Session, runs: list[tuple[ModuleRun, list[dict[str, Any]]]],
                         running: bool) -> None:  # fmt: skip
        """A recording started (``running``) or stopped the outputs of ``runs``."""
        for m, outputs in runs:
            for output in outputs:
                number = int(output["number"])
                self._changed(m.address, number, running, "recording",
                              dict(output) if running else None)  # fmt: skip

    def on_event(self, event: Event) -> None:
        """Bus subscriber: the recorder's close (disarming) stops every output of its modules."""
        if isinstance(event, CapturePrepared):
            self._session_modules = set(event.modules)
        elif isinstance(event, PhaseChanged) and event.phase in _TEARDOWN:
            self._session_modules |= set(self._current_modules())
        elif (
            isinstance(event, PhaseChanged)
            and event.phase in _ENDED
            and event.previous in _TEARDOWN
        ):
            with self._lock:
                closed = [
                    (a, n)
                    for a, outs in self.running.items()
                    if a in self._session_modules
                    for n in outs
                ]
            for address, number in closed:
                self._changed(address, number, False, "hand", note=CLOSED_NOTE)

    # --- helpers ----------------------------------------------------------------------------

    def _changed(self, address: str, number: int, running: bool, how: str,
                 output: dict[str, Any] | None = None, note: str = "") -> None:  # fmt: skip
        with self._lock:
            mine = self.running.setdefault(address, {})
            if running and output is not None:
                mine[number] = output
            else:
                mine.pop(number, None)
            if running and how == "hand":
                self._by_hand.add((address, number))
            else:
                self._by_hand.discard((address, number))
        self._publish(GeneratorChanged(module=address, number=number, running=running, how=how,
                                       output=output, note=note))  # fmt: skip

    def _runs(
        self, generators: dict[str, list[dict[str, Any]]], session: Session | None, rig: list[str]
    ) -> list[tuple[ModuleRun, list[dict[str, Any]]]]:
        modules = self._modules(list(generators), session, rig, need_info=True)
        return [(m, generators[m.address]) for m in modules]

    def _module_runs(
        self, outputs: dict[str, list[int]], session: Session | None, rig: list[str]
    ) -> list[tuple[ModuleRun, list[int]]]:
        modules = self._modules(list(outputs), session, rig, need_info=False)
        return [(m, outputs[m.address]) for m in modules]

    def _modules(
        self, addresses: list[str], session: Session | None, rig: list[str], need_info: bool
    ) -> list[ModuleRun]:
        """The modules named, slaves first and the master last: the session's runs, or (idle)
        new clients numbered as the rig lists them (``module/info`` read for the outputs)."""
        if session is not None:
            known = {m.address: m for m in session.modules}
            missing = [a for a in addresses if a not in known]
            if missing:
                raise CaptureBusyError(
                    f"{missing[0]} is not one of the armed modules; disarm to use it"
                )
            runs = [known[a] for a in addresses]
            runs.sort(key=lambda m: (m is session.master, m.number))
            return runs
        order = {a: i for i, a in enumerate(rig)}
        out = []
        for address in addresses:
            number = order.get(address, len(order)) + 1
            m = ModuleRun(number, address, self._client_factory(address), "")
            if need_info:
                m.info = m.client.info()
            out.append(m)
        out.sort(key=lambda m: (m.number == 1, m.number))
        return out

    def by_hand(self, address: str) -> list[dict[str, Any]]:
        """The outputs of ``address`` running by hand now (what a recording starting now
        records as driven by hand), by number."""
        with self._lock:
            mine = self.running.get(address, {})
            return [dict(mine[n]) for n in sorted(mine) if (address, n) in self._by_hand]

    def snapshot(self) -> dict[str, dict[int, dict[str, Any]]]:
        with self._lock:
            return {a: dict(o) for a, o in self.running.items() if o}


def describe_state(phase: Phase, armed: bool, monitoring: bool, busy: bool) -> str | None:
    """Why outputs may not be started by hand now (None: they may)."""
    if not busy and not armed:
        return None
    if armed and (monitoring or not busy):
        return None
    if armed:
        return (
            f"the rig is {phase}: a capture started with Start drives the outputs its request "
            "names (monitor to drive outputs by hand while recording)"
        )
    return f"the rig is {phase}; wait until it is armed or idle"
