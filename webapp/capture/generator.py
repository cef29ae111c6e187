"""Generator outputs started with a recording (PROTOCOL.md §3.3 step 3, §3.8, §5.7).

The capture settings' ``generators`` name, per module, the outputs to drive. Before the
recording's measurement starts, every generator module gets ``generator/prepare``,
``generator/output`` and ``generator/start`` (slaves first, the master last); a synchronized
(multi-module) session then sends ``apply`` to the trigger master alone, which starts every
generator at one time. After the recording the outputs are stopped (best effort: a module
that does not answer is named in a warning, the recording stays). No module state changes.
"""

from __future__ import annotations

from typing import Any

from webapp.capture.session import ModuleRun, Session
from webapp.capture.settings import SettingsError
from webapp.capture.waveform_streams import (
    module_outputs,
    prime_streams,
    stop_feeding,
    waveform_file,
)
from webapp.openapi.client import ModuleError


def generator_runs(s: Session) -> list[tuple[ModuleRun, list[dict[str, Any]]]]:
    """The modules with generator outputs to drive, slaves first and the master last."""
    wanted = s.settings.generators
    runs = [(m, wanted[m.address]) for m in s.modules if wanted.get(m.address)]
    runs.sort(key=lambda item: item[0] is s.master)
    return runs


def check_outputs(
    number: int, address: str, count: int, outputs: list[dict[str, Any]], field: str
) -> None:
    """Refuse an output module ``number`` (``count`` outputs) does not have."""
    for j, output in enumerate(outputs):
        n = output.get("number")
        if not isinstance(n, int) or not 1 <= n <= count:
            has = f"has generator outputs 1 to {count}" if count else "has no generator"
            raise SettingsError(
                f"{field}.{address}[{j}].number",
                f"module {number} ({address}) {has}: output {n} cannot be driven",
            )


def check_generators(s: Session) -> None:
    """Refuse outputs a module does not have, before anything is sent to it."""
    for m, outputs in generator_runs(s):
        count = m.info.output_channels if m.info is not None else 0
        check_outputs(m.number, m.address, count, outputs, "generators")
        for j, output in enumerate(outputs):
            waveform_file(output, f"generators.{m.address}[{j}]")  # a streamed file's rate


def drive(
    runs: list[tuple[ModuleRun, list[dict[str, Any]]]],
    apply_to: ModuleRun | None,
    feeds: list[Any] | None = None,
) -> None:
    """prepare, output, start on every module of ``runs`` in order (slaves first); then
    ``apply`` to the trigger master ``apply_to`` (a synchronized session). Streamed inputs are
    primed before the start, their feeds added to ``feeds``. A refusal names the module, its
    outputs, the request and the module's message."""
    for m, outputs in runs:
        numbers = [int(o["number"]) for o in outputs]
        with named(m, numbers):
            m.client.prepare_generator(numbers)
            m.client.set_generator(module_outputs(outputs))
            primed = prime_streams(m, outputs)
            if feeds is not None:
                feeds.extend(primed)
            m.client.start_generator(numbers)
    if apply_to is not None:
        with named(apply_to, []):
            apply_to.client.apply()


class named:
    """Re-raise a module's refusal as "module N (ADDR) output 1: PUT … failed: …"."""

    def __init__(self, m: ModuleRun, numbers: list[int]) -> None:
        self.m, self.numbers = m, numbers

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, _tb: Any) -> None:
        if isinstance(exc, ModuleError) and not exc.module.startswith(f"{self.m.number} ("):
            outs = ", ".join(map(str, self.numbers))
            what = f" output{'s' if len(self.numbers) > 1 else ''} {outs}" if outs else ""
            raise ModuleError(
                f"{self.m.number} ({self.m.address}){what}", exc.request, exc.status, exc.message
            ) from None


def start_generators(s: Session) -> None:
    """prepare, output, start on every generator module; then apply to the master."""
    runs = generator_runs(s)
    if not runs:
        return
    check_generators(s)
    drive(runs, s.master if s.synchronized else None, s.waveform_feeds)


def stop_generators(s: Session) -> list[str]:
    """Stop every driven output; returns what went wrong, one sentence per module."""
    troubles = []
    for m, outputs in generator_runs(s):
        if m.gone:
            continue
        try:
            m.client.stop_generator([int(o["number"]) for o in outputs])
        except ModuleError as exc:
            troubles.append(f"module {m.number}: the generator did not stop ({exc})")
    stop_feeding(s.waveform_feeds)
    return troubles
