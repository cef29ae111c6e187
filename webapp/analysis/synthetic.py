"""Capture folders made from known signals: the reader's tests, its benchmark and demos.

A synthetic capture is byte for byte what the orchestrator writes (``docs/capture-format.md``):
one ``<name>.<n>.stream`` per module (or ``<name>.<n>.ch<c>.stream`` per channel when
multi-socket), encoded with the project's stream codec, and a ``capture.json``. Because the
signals are known exactly, a reader can be checked against them:

* ``calibrator``: 1 kHz sine at 1 Pa RMS (94 dB SPL), as a sound calibrator on a microphone;
* ``tone``: a sine whose phase is a function of absolute time (the sample's header-time ticks),
  so every module that samples the same instant produces the same value;
* ``noise``: reproducible white noise; ``zero``: silence.

Faults are injected per module: DataQuality changes at given blocks, dropped blocks announced by
an Overrun flag (data loss), late first blocks and extra blocks at the end (modules that start
or stop a block apart), and a final message cut short (a crash while writing).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from webapp.openapi.model import BLOCK_VALUES, bandwidth_for_rate, scale_factor
from webapp.openapi.stream import (
    TICKS_PER_SECOND,
    SignalInterpretation,
    Validity,
    encode_data_quality,
    encode_interpretation,
    encode_signal_data,
    ticks_per_sample,
)

FULL_SCALE = 1 << 23


@dataclass
class SynthChannel:
    channel: int
    kind: str = "tone"  # calibrator | tone | noise | zero
    frequency: float = 1000.0
    amplitude: float = 1.0
    """Peak value in the channel's unit (calibrator: ignored, always 1 unit RMS)."""
    unit: str = "V"
    sensitivity: float = 1.0
    """Transducer sensitivity in V per unit."""
    range: str = "10 Vpeak"
    enabled: bool = True
    transducer_type: str = "None"
    transducer_serial: int = 0
    seed: int = 0

    @property
    def scale_factor(self) -> float:
        return scale_factor(self.range, self.sensitivity)


def calibrator_channel(channel: int) -> SynthChannel:
    """A 1/2-inch microphone (50 mV/Pa) on a 94 dB SPL, 1 kHz sound calibrator."""
    return SynthChannel(
        channel,
        kind="calibrator",
        frequency=1000.0,
        unit="Pa",
        sensitivity=0.05,
        transducer_type="4189",
        transducer_serial=2600000 + channel,
    )


@dataclass
class SynthModule:
    number: int
    channels: list[SynthChannel]
    type: str = "3160"
    serial: int = 0
    first_block: int = 0
    """Blocks this module misses at the start (it starts later than the others)."""
    extra_blocks: int = 0
    """Blocks this module sends past the nominal end (stop is not a sample-exact event)."""
    quality: list[tuple[int, int, int]] = field(default_factory=list)
    """(block, signal id, validity) DataQuality changes, sent before that block's data."""
    dropped: list[tuple[int, int]] = field(default_factory=list)
    """(first block, number of blocks) lost; an Overrun flag precedes the next block."""
    truncate: int = 0
    """Bytes cut off the end of the module's (first) stream file."""

    def enabled(self) -> list[SynthChannel]:
        return sorted((c for c in self.channels if c.enabled), key=lambda c: c.channel)


def tone_values(
    start_ticks: int, count: int, sample_rate: int, frequency: int, amplitude: float
) -> np.ndarray:
    """amplitude · sin(2π f t) at the absolute sample times; exact for integer ``frequency``.

    The phase (f · ticks mod 2^32) / 2^32 is computed in integers, so it does not suffer from
    the float64 resolution of present-day tick counts.
    """
    tps = ticks_per_sample(sample_rate)
    ticks = (start_ticks % TICKS_PER_SECOND) + np.arange(count, dtype=np.int64) * tps
    phase = (int(frequency) * (ticks % TICKS_PER_SECOND)) % TICKS_PER_SECOND
    return amplitude * np.sin(2 * np.pi * phase / TICKS_PER_SECOND)


def channel_values(
    ch: SynthChannel, start_ticks: int, count: int, sample_rate: int, sample_index: int
) -> np.ndarray:
    """Physical values of ``count`` samples starting at absolute time ``start_ticks``."""
    if ch.kind == "calibrator":
        return tone_values(start_ticks, count, sample_rate, int(ch.frequency), math.sqrt(2.0))
    if ch.kind == "tone":
        return tone_values(start_ticks, count, sample_rate, int(ch.frequency), ch.amplitude)
    if ch.kind == "noise":
        rng = np.random.default_rng([ch.seed, ch.channel, sample_index])
        return rng.normal(0.0, ch.amplitude, count)
    return np.zeros(count)


def to_raw(values: np.ndarray, scale: float) -> np.ndarray:
    """Physical values -> Q23 raw samples (what the module's ADC path produces), clipped."""
    raw = np.rint(values / scale * FULL_SCALE)
    return np.clip(raw, -FULL_SCALE, FULL_SCALE - 1).astype(np.int32)


def expected_physical(ch: SynthChannel, raw: np.ndarray) -> np.ndarray:
    return raw * (ch.scale_factor / FULL_SCALE)


def module_messages(
    module: SynthModule,
    start_ticks: int,
    blocks: int,
    sample_rate: int,
    block_values: int = BLOCK_VALUES,
    channel: int | None = None,
) -> Iterator[bytes]:
    """The messages of one module's stream, in the order a LAN-XI module sends them.

    ``channel`` restricts the stream to one channel (multi-socket streaming).
    """
    enabled = module.enabled()
    signals = [(i + 1, ch) for i, ch in enumerate(enabled)]
    if channel is not None:
        signals = [(sid, ch) for sid, ch in signals if ch.channel == channel]
    sids = {sid for sid, _ in signals}
    for sid, ch in signals:
        interp = SignalInterpretation(sid, ch.scale_factor, sample_rate=sample_rate, unit=ch.unit)
        yield encode_interpretation(start_ticks, interp)
    tps = ticks_per_sample(sample_rate)
    dropped = set()
    resume = set()
    for first, count in module.dropped:
        dropped.update(range(first, first + count))
        resume.add(first + count)
    quality: dict[int, list[tuple[int, int]]] = {}
    for block, sid, validity in module.quality:
        if sid in sids:
            quality.setdefault(block, []).append((sid, validity))
    overrun_set: set[int] = set()
    for b in range(module.first_block, blocks + module.extra_blocks):
        t = start_ticks + b * block_values * tps
        if b in dropped:
            continue
        changes = list(quality.get(b, []))
        if b in resume:
            changes += [(sid, int(Validity.OVERRUN)) for sid in sorted(sids)]
            overrun_set.update(sids)
        elif overrun_set:
            # The loss is reported once: the flag clears with the next block.
            changes += [(sid, int(Validity.VALID)) for sid in sorted(overrun_set)]
            overrun_set.clear()
        if changes:
            yield encode_data_quality(t, changes)
        for sid, ch in signals:
            values = channel_values(ch, t, block_values, sample_rate, b * block_values)
            yield encode_signal_data(t, sid, to_raw(values, ch.scale_factor))


def write_capture(
    folder: str | Path,
    modules: list[SynthModule],
    *,
    seconds: float = 1.0,
    sample_rate: int = 65536,
    start_ticks: int | None = None,
    name: str = "synthetic",
    multi_socket: bool = False,
    block_values: int = BLOCK_VALUES,
    write_json: bool = True,
    outcome: str = "completed",
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write a capture folder; return its capture.json content.

    ``start_ticks`` defaults to a fixed instant on the 4096-block grid (a measurement started
    on a common trigger). ``seconds`` is rounded up to whole blocks.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tps = ticks_per_sample(sample_rate)
    if start_ticks is None:
        grid = block_values * tps
        start_ticks = ((1_700_000_000 << 32) // grid) * grid
    blocks = max(1, math.ceil(seconds * sample_rate / block_values))
    module_entries = []
    for module in modules:
        enabled = module.enabled()
        if multi_socket:
            targets = [
                (f"{name}.{module.number}.ch{ch.channel}.stream", ch.channel) for ch in enabled
            ]
        else:
            targets = [(f"{name}.{module.number}.stream", None)]
        files = []
        for i, (fname, channel) in enumerate(targets):
            path = folder / fname
            digest = hashlib.sha256()
            size = 0
            with open(path, "wb") as f:
                for msg in module_messages(
                    module, start_ticks, blocks, sample_rate, block_values, channel
                ):
                    f.write(msg)
                    digest.update(msg)
                    size += len(msg)
            if module.truncate and i == 0:
                size -= module.truncate
                with open(path, "r+b") as f:
                    f.truncate(size)
                digest = hashlib.sha256(path.read_bytes())
            files.append(
                {
                    "file": fname,
                    "channels": [channel] if channel else [c.channel for c in enabled],
                    "bytes": size,
                    "sha256": digest.hexdigest(),
                }
            )
        module_entries.append(_module_json(module, sample_rate, files))
    doc = {
        "format": "lanxi-capture/1",
        "id": f"20231114-221320-{name}",
        "name": name,
        "created": datetime.fromtimestamp(start_ticks / TICKS_PER_SECOND, UTC).isoformat(),
        "outcome": outcome,
        "reason": "",
        "requested_duration_s": seconds,
        "recorded_s": blocks * block_values / sample_rate,
        "start_ticks": start_ticks,
        "start_time": datetime.fromtimestamp(start_ticks >> 32, UTC)
        .replace(microsecond=((start_ticks & 0xFFFFFFFF) * 1_000_000) >> 32)
        .isoformat(),
        "ptp": {"domain": 42, "master": "127.0.4.11"},
        "bandwidth": bandwidth_for_rate(sample_rate),
        "sample_rate": sample_rate,
        "streaming": "multi-socket" if multi_socket else "single-socket",
        "modules": module_entries,
        "events": list(events or []),
    }
    if write_json:
        (folder / "capture.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return doc


def _module_json(
    module: SynthModule, sample_rate: int, files: list[dict[str, Any]]
) -> dict[str, Any]:
    serial = module.serial or 100000 + module.number
    setup = []
    transducers: list[dict[str, Any] | None] = []
    for ch in sorted(module.channels, key=lambda c: c.channel):
        transducer = {
            "requires200V": False,
            "requiresCcld": ch.transducer_type != "None",
            "sensitivity": ch.sensitivity,
            "serialNumber": ch.transducer_serial,
            "type": {"model": "", "number": ch.transducer_type, "prefix": "", "variant": ""},
            "unit": ch.unit,
        }
        setup.append(
            {
                "bandwidth": bandwidth_for_rate(sample_rate),
                "ccld": ch.transducer_type != "None",
                "channel": ch.channel,
                "destinations": ["socket"],
                "enabled": ch.enabled,
                "filter": "7.0 Hz",
                "floating": False,
                "name": f"Channel {ch.channel}",
                "polvolt": False,
                "range": ch.range,
                "transducer": transducer,
            }
        )
        transducers.append(transducer if ch.transducer_type != "None" else None)
    return {
        "number": module.number,
        "address": f"127.0.4.{10 + module.number}",
        "role": "master" if module.number == 1 else "slave",
        "type": module.type,
        "serial": serial,
        "name": f"BK{module.type}-{serial:06d}",
        "firmware": "2.10.0.501",
        "hardware": "1.0.0.0",
        "setup": {"channels": setup},
        "transducers": transducers,
        "signals": [
            {"signal_id": i + 1, "channel": ch.channel} for i, ch in enumerate(module.enabled())
        ],
        "files": files,
        "bytes": sum(f["bytes"] for f in files),
    }


def expected_values(
    module: SynthModule,
    channel: int,
    start_ticks: int,
    blocks: int,
    sample_rate: int,
    block_values: int = BLOCK_VALUES,
) -> np.ndarray:
    """What a reader must return for a channel: from the module's first block to its last,
    calibrated exactly as the codec's Q23 values say, NaN where blocks were dropped."""
    ch = next(c for c in module.channels if c.channel == channel)
    tps = ticks_per_sample(sample_rate)
    lost = {b for first, n in module.dropped for b in range(first, first + n)}
    parts = []
    for b in range(module.first_block, blocks + module.extra_blocks):
        if b in lost:
            parts.append(np.full(block_values, np.nan))
            continue
        t = start_ticks + b * block_values * tps
        raw = to_raw(
            channel_values(ch, t, block_values, sample_rate, b * block_values), ch.scale_factor
        )
        parts.append(expected_physical(ch, raw))
    return np.concatenate(parts)
