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


def check_generators(s: Session) -> None:
    """Refuse outputs a module does not have, before anything is sent to it."""
    for m, outputs in generator_runs(s):
        count = m.info.output_channels if m.info is not None else 0
        for j, output in enumerate(outputs):
            n = output.get("number")
            if not isinstance(n, int) or not 1 <= n <= count:
                has = f"has generator outputs 1 to {count}" if count else "has no generator"
                raise SettingsError(
                    f"generators.{m.address}[{j}].number",
                    f"module {m.number} ({m.address}) {has}: output {n} cannot be driven",
                )
            waveform_file(output, f"generators.{m.address}[{j}]")  # a streamed file's rate


def start_generators(s: Session) -> None:
    """prepare, output, start on every generator module; then apply to the master."""
    runs = generator_runs(s)
    if not runs:
        return
    check_generators(s)
    for m, outputs in runs:
        numbers = [int(o["number"]) for o in outputs]
        m.client.prepare_generator(numbers)
        m.client.set_generator(module_outputs(outputs))
        s.waveform_feeds.extend(prime_streams(m, outputs))
        m.client.start_generator(numbers)
    if s.synchronized:
        s.master.client.apply()


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
