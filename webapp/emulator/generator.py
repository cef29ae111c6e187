"""The generator of an emulated module: setup, prepare/start/stop/apply, and its loop-backs.

PROTOCOL.md §3.8 and §5.7. Generator requests never change ``moduleState``; they are accepted
in Idle and every open state. A start on a module opened with ``singleModule: false`` waits for
``PUT apply`` to the trigger master, which starts every waiting output of its trigger domain at
one time; otherwise the output starts at once.

Every change (start, stop, a level change while running) is an *epoch* with the time it takes
effect. An input wired to an output (:class:`~webapp.emulator.waveforms.Loopback`) reads, block
by block, the epoch in force at the block's start: the output's waveform since its start, as a
loop of ready-to-send messages built once per epoch; while the output is stopped the input
sees its noise floor, as an open input would.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import bilinear, lfilter

from webapp.emulator.clock import TICKS_PER_SECOND, now_ticks
from webapp.emulator.outputstream import (
    MAX_BUFFER_SAMPLES,
    MIN_BUFFER_SAMPLES,
    StreamedOutput,
    align_start,
)
from webapp.emulator.rig import NOISE_FLOOR_VOLTS, quantise
from webapp.emulator.waveforms import (
    Loopback,
    OutputSetup,
    WaveformError,
    default_output,
)
from webapp.openapi.stream import encode_signal_data

APPLY_LATENCY_SECONDS = 0.05
"""From ``PUT apply`` to the synchronized start of the waiting outputs."""


@dataclass(frozen=True)
class Epoch:
    serial: int
    from_tick: int
    """Blocks starting at or after this tick carry this epoch."""
    anchor_tick: int
    """When the output started: time 0 of its waveform."""
    setup: OutputSetup | None
    """None: the output is stopped."""


def default_loopbacks(type_number: str) -> tuple[Loopback, ...]:
    """A 3160's output 1 is cabled to its input 1 (HBK's loopback.py set-up)."""
    return (Loopback(1, 1),) if type_number == "3160" else ()


def _output_numbers(body: Any, outputs: int) -> list[int]:
    """The outputs a prepare/start/stop body lists (PROTOCOL.md §5.7)."""
    items = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise WaveformError('the body must list outputs: {"outputs": [{"number": 1}, …]}')
    numbers = []
    for item in items:
        n = item.get("number") if isinstance(item, dict) else None
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= outputs:
            raise WaveformError(f"generator output number must be 1 to {outputs}, not {n!r}")
        numbers.append(n)
    return numbers


class Generator:
    """The outputs of one module. Callers hold the module's lock for every method."""

    def __init__(self, outputs: int, loopbacks: tuple[Loopback, ...]) -> None:
        self.outputs = outputs
        self.loopbacks = loopbacks
        self.stream_host = "127.0.0.1"
        """Where streamed outputs listen (the module's address)."""
        self.streams: dict[int, StreamedOutput] = {}
        self._serial = 0
        self.reset()

    def close_streams(self, numbers: list[int] | None = None) -> None:
        for n in list(self.streams) if numbers is None else numbers:
            stream = self.streams.pop(n, None)
            if stream is not None:
                stream.close()

    def reset(self) -> None:
        """Power-on (and close): defaults, every output stopped, streamed inputs closed."""
        self.close_streams()
        self.setups = {
            n: OutputSetup.parse(default_output(n), self.outputs)
            for n in range(1, self.outputs + 1)
        }
        self.prepared: set[int] = set()
        self.waiting: set[int] = set()
        self.started: dict[int, int] = {}  # output -> anchor tick
        self.history: dict[int, list[Epoch]] = {n: [] for n in self.setups}

    def _require_outputs(self) -> None:
        if not self.outputs:
            raise WaveformError("this module has no generator outputs")

    def _epoch(self, output: int, tick: int, anchor: int, setup: OutputSetup | None) -> None:
        self._serial += 1
        # A new list, not an append: feeds read the history without the module's lock.
        # Epochs older than the last 64 are beyond every send buffer.
        self.history[output] = [
            *self.history[output][-63:],
            Epoch(self._serial, tick, anchor, setup),
        ]

    # --- requests --------------------------------------------------------------------------

    def put_output(self, body: Any) -> None:
        self._require_outputs()
        items = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise WaveformError('the body must be {"outputs": [output, …]}')
        parsed = [OutputSetup.parse(item, self.outputs) for item in items]
        numbers = [p.number for p in parsed]
        if len(set(numbers)) != len(numbers):
            raise WaveformError("an output is listed twice")
        buffer_samples = _buffer_size(body)
        now = now_ticks()
        for setup in parsed:
            self._configure_stream(setup, buffer_samples)
            self.setups[setup.number] = setup
            anchor = self.started.get(setup.number)
            if anchor is not None:  # a level change while running: the waveform goes on
                self._epoch(setup.number, now, anchor, setup)

    def _configure_stream(self, setup: OutputSetup, buffer_samples: int | None) -> None:
        n = setup.number
        if not setup.streamed:
            self.close_streams([n])
            return
        stream = self.streams.get(n)
        if stream is None:
            stream = self.streams[n] = StreamedOutput(n, self.stream_host)
        stream.configure(setup.inputs[0].sampling_rate_exponent, buffer_samples)

    def get_output(self) -> dict[str, Any]:
        return {"outputs": [self._describe(n) for n in sorted(self.setups)]}

    def _describe(self, n: int) -> dict[str, Any]:
        raw = dict(self.setups[n].raw)
        raw["number"] = n
        inputs = []
        for i, w in enumerate(self.setups[n].inputs, start=1):
            item = {**{"number": i, "signalType": w.kind}, **_original_keys(raw, i)}
            if w.kind == "stream" and n in self.streams:
                item.update(source="socket", port=self.streams[n].port, errorcode=0)
            inputs.append(item)
        raw["inputs"] = inputs
        return raw

    def prepare(self, body: Any) -> None:
        self._require_outputs()
        now = now_ticks()
        for n in _output_numbers(body, self.outputs):
            self.prepared.add(n)
            self.waiting.discard(n)
            if self.started.pop(n, None) is not None:
                self._epoch(n, now, now, None)
            if n in self.streams:
                self.streams[n].stop(now)
                self.streams[n].reset()

    def start(self, body: Any, waits_for_apply: bool) -> None:
        self._require_outputs()
        numbers = _output_numbers(body, self.outputs)
        unprepared = [n for n in numbers if n not in self.prepared]
        if unprepared:
            raise WaveformError(
                f"output {unprepared[0]} is not prepared (PUT generator/prepare first)"
            )
        if waits_for_apply:
            self.waiting.update(numbers)
            return
        self.begin(numbers, now_ticks())

    def begin(self, numbers: list[int] | set[int], tick: int) -> None:
        for n in sorted(numbers):
            self.waiting.discard(n)
            if n in self.started:
                continue
            stream = self.streams.get(n)
            start = align_start(tick) if stream is not None else tick
            self.started[n] = start
            self._epoch(n, start, start, self.setups[n])
            if stream is not None:
                stream.start(start)

    def stop(self, body: Any) -> None:
        """Stop the listed outputs; a stop without a body (HBK's loopback.py) stops them all."""
        self._require_outputs()
        now = now_ticks()
        numbers = list(self.setups) if body is None else _output_numbers(body, self.outputs)
        for n in numbers:
            self.waiting.discard(n)
            if self.started.pop(n, None) is not None:
                self._epoch(n, now, now, None)
            if n in self.streams:
                self.streams[n].stop(now)

    def snapshot(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs,
            "prepared": sorted(self.prepared),
            "waiting": sorted(self.waiting),
            "running": sorted(self.started),
            "streams": [self.streams[n].snapshot() for n in sorted(self.streams)],
            "loopbacks": [
                {
                    "output": lb.output,
                    "input": lb.input,
                    "resonanceHz": lb.resonance_hz,
                    "damping": lb.damping if lb.resonance_hz else None,
                    "gain": lb.gain,
                }
                for lb in self.loopbacks
            ],
        }

    # --- what a looped-back input sees -----------------------------------------------------

    def epoch_at(self, output: int, tick: int) -> Epoch | None:
        for epoch in reversed(self.history.get(output, [])):
            if epoch.from_tick <= tick:
                return epoch
        return None

    def loopback_to(self, channel: int) -> Loopback | None:
        for lb in self.loopbacks:
            if lb.input == channel and lb.output <= self.outputs:
                return lb
        return None


def apply_start(modules: list[Any]) -> None:
    """``PUT apply`` on a trigger master: start every waiting output of ``modules`` at once."""
    tick = now_ticks() + int(APPLY_LATENCY_SECONDS * TICKS_PER_SECOND)
    for m in modules:
        with m.cond:
            if m.generator.waiting:
                m.generator.begin(set(m.generator.waiting), tick)


def _buffer_size(body: dict[str, Any]) -> int | None:
    """The optional ``bufferSize`` of a generator/output body: samples per streamed output."""
    size = body.get("bufferSize")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int):
        raise WaveformError(f"bufferSize must be a whole number of samples, not {size!r}")
    if not MIN_BUFFER_SAMPLES <= size <= MAX_BUFFER_SAMPLES:
        raise WaveformError(
            f"bufferSize must be {MIN_BUFFER_SAMPLES} to {MAX_BUFFER_SAMPLES} samples, not {size}"
        )
    return size


def _original_keys(raw: dict[str, Any], number: int) -> dict[str, Any]:
    for item in raw.get("inputs", []) or []:
        if isinstance(item, dict) and item.get("number") == number:
            return {k: v for k, v in item.items() if k != "number"}
    return {}


class LoopFeed:
    """The blocks of one input wired to a generator output, one cached loop per epoch."""

    def __init__(
        self,
        generator: Generator,
        loopback: Loopback,
        signal_id: int,
        sample_rate: int,
        block_values: int,
        block_ticks: int,
        range_text: str,
    ) -> None:
        self.generator = generator
        self.loopback = loopback
        self.signal_id = signal_id
        self.sample_rate = sample_rate
        self.block_values = block_values
        self.block_ticks = block_ticks
        self.range_text = range_text
        self._loops: dict[int, list[bytes]] = {}
        self._build_lock = threading.Lock()
        self._streamed: dict[int, bytes] = {}
        self._filter_state: tuple[int, np.ndarray] | None = None
        self._sample_ticks = (
            np.arange(block_values, dtype=np.int64) * TICKS_PER_SECOND // sample_rate
        )

    def message(self, absolute_block: int) -> bytes | None:
        """The block's message, or None while the output is stopped (the normal signal)."""
        start = absolute_block * self.block_ticks
        stream = self.generator.streams.get(self.loopback.output)
        if stream is not None and stream.anchor_tick is not None:
            stop = stream.stop_tick
            if stream.anchor_tick < start + self.block_ticks and (stop is None or stop > start):
                return self._stream_message(stream, absolute_block)
        epoch = self.generator.epoch_at(self.loopback.output, start)
        if epoch is None or epoch.setup is None or epoch.setup.streamed:
            return None
        loop = self._loop(epoch)
        anchor_block = -(-epoch.anchor_tick // self.block_ticks)
        return loop[(absolute_block - anchor_block) % len(loop)]

    def warm(self) -> None:
        """Build the loop of the output's newest epoch now, not in the streamer's time."""
        history = self.generator.history.get(self.loopback.output) or []
        if history and history[-1].setup is not None and not history[-1].setup.streamed:
            self._loop(history[-1])

    def _stream_message(self, stream: StreamedOutput, absolute_block: int) -> bytes:
        """A block of an input wired to a streamed output: what the connector carried at each
        sample's own time (0 V while the output did not play), plus the input's noise floor."""
        cached = self._streamed.get(absolute_block)
        if cached is not None:
            return cached
        ticks = absolute_block * self.block_ticks + self._sample_ticks
        values, playing = stream.played_at(ticks)
        anchor = stream.anchor_tick or 0
        epoch = self.generator.epoch_at(self.loopback.output, int(ticks[0]))
        setup = epoch.setup if epoch is not None and epoch.setup is not None else None
        if setup is None or not setup.streamed:
            setup = self.generator.setups[self.loopback.output]
        t = (ticks - anchor).astype(np.float64) / TICKS_PER_SECOND
        volts = np.where(playing, setup.stream_volts(values, t), 0.0) if setup.streamed else values
        volts = self._through_structure(volts, absolute_block)
        rng = np.random.default_rng(
            zlib.crc32(f"stream:{self.signal_id}:{absolute_block}".encode())
        )
        volts = volts + rng.normal(0.0, NOISE_FLOOR_VOLTS, volts.size)
        raw, _clipped = quantise(volts, self.range_text)
        message = encode_signal_data(0, self.signal_id, raw)
        self._streamed[absolute_block] = message
        while len(self._streamed) > 16:
            self._streamed.pop(next(iter(self._streamed)))
        return message

    def _through_structure(self, volts: np.ndarray, absolute_block: int) -> np.ndarray:
        """A plain cable scales; a resonance filters, its state carried from block to block
        (bilinear transform pre-warped at fn; restarted when a block is skipped)."""
        lb = self.loopback
        if lb.resonance_hz is None:
            return lb.gain * volts
        b, a = self._structure_filter()
        state = self._filter_state
        zi = state[1] if state is not None and state[0] == absolute_block - 1 else np.zeros(2)
        out, zf = lfilter(b, a, volts, zi=zi)
        self._filter_state = (absolute_block, zf)
        return out

    def _structure_filter(self) -> tuple[np.ndarray, np.ndarray]:
        lb = self.loopback
        assert lb.resonance_hz is not None
        wn = 2 * np.pi * lb.resonance_hz
        # Pre-warping: the analogue fn lands exactly on the digital fn.
        warp = wn / (2 * self.sample_rate * np.tan(wn / (2 * self.sample_rate)))
        num = [lb.gain * (wn * warp) ** 2]
        den = [1.0, 2 * lb.damping * wn * warp, (wn * warp) ** 2]
        b, a = bilinear(num, den, self.sample_rate)
        return np.asarray(b), np.asarray(a)

    def _loop(self, epoch: Epoch) -> list[bytes]:
        loop = self._loops.get(epoch.serial)
        if loop is not None:
            return loop
        with self._build_lock:
            loop = self._loops.get(epoch.serial)
            if loop is None:
                assert epoch.setup is not None
                loop = self._build(epoch.setup, epoch.serial)
                if len(self._loops) > 4:
                    self._loops.pop(next(iter(self._loops)))
                self._loops[epoch.serial] = loop
        return loop

    def _build(self, setup: OutputSetup, serial: int) -> list[bytes]:
        bv = self.block_values
        blocks = max(1, -(-int(round(setup.loop_seconds() * self.sample_rate)) // bv))
        n = blocks * bv
        volts = self.loopback.apply(setup.volts(self.sample_rate, n), self.sample_rate)
        rng = np.random.default_rng(zlib.crc32(f"loop:{self.signal_id}:{serial}".encode()))
        volts = volts + rng.normal(0.0, NOISE_FLOOR_VOLTS, n)
        raw, _clipped = quantise(volts, self.range_text)
        return [
            encode_signal_data(0, self.signal_id, raw[j * bv : (j + 1) * bv]) for j in range(blocks)
        ]


def generator_request(module: Any, action: str, body: Any) -> dict[str, Any] | None:
    """One generator request to ``module`` (a ModuleEmulator); WaveformError means 400."""
    gen: Generator = module.generator
    with module.cond:
        if action == "get":
            return gen.get_output()
        if action == "default":
            if not gen.outputs:
                raise WaveformError("this module has no generator outputs")
            return {"outputs": [default_output(n) for n in range(1, gen.outputs + 1)]}
        if action == "output":
            gen.put_output(body)
        elif action == "prepare":
            gen.prepare(body)
        elif action == "start":
            gen.start(body, waits_for_apply=not module.single_module)
        elif action == "stop":
            gen.stop(body)
        acquisition = module.acquisition
    if action == "apply":
        apply_start(trigger_domain_members(module))
        for m in trigger_domain_members(module):
            if m.acquisition is not None:
                m.acquisition.warm_feeds()
    elif acquisition is not None:
        acquisition.warm_feeds()
    return None


def trigger_domain_members(module: Any) -> list[Any]:
    """The modules a trigger master's ``apply`` reaches: its PTP trigger domain, or itself."""
    with module.cond:
        if module.single_module or not module.is_ptp:
            return [module]
        domain = module.sync.get("triggerDomain", module.sync.get("domain"))
    members = [module]
    for other in module.network.ptp_modules():
        if other is module:
            continue
        with other.cond:
            if other.sync.get("triggerDomain", other.sync.get("domain")) == domain:
                members.append(other)
    return members


def loop_feed_factory(module: Any) -> Any:
    """For Acquisition: a LoopFeed for each enabled input wired to a generator output."""
    gen: Generator = module.generator

    def feed_for(
        signal_id: int, setup: Any, sample_rate: int, block_values: int, block_ticks: int
    ) -> LoopFeed | None:
        lb = gen.loopback_to(setup.channel)
        if lb is None:
            return None
        return LoopFeed(
            gen, lb, signal_id, sample_rate, block_values, block_ticks, str(setup.range)
        )

    return feed_for
