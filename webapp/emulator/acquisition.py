"""The signals of an applied channel setup, precomputed once as ready-to-send messages.

Generating full bandwidth for many modules must cost next to nothing per block, so each enabled
signal is synthesised once, when the setup is applied: one loop of blocks covering whole seconds
of absolute time (32 blocks of 4096 values at 131072 S/s), encoded to complete SignalData
messages. Sending block *a* of the absolute grid is then a copy of message ``a mod loop`` and an
8-byte patch of its header time. Faults that change the samples (overload clips, a cable fault
kills the signal) use variants of the loop built on first use.
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np

from webapp.emulator.clock import block_ticks
from webapp.emulator.rig import FULL_SCALE, RigChannel, quantise
from webapp.openapi.model import ChannelSetup, enabled_channels
from webapp.openapi.stream import SignalInterpretation, encode_interpretation, encode_signal_data

OVERLOAD_GAIN = 8
OVERLOAD_PEAK = 2.0
"""An injected analog overload amplifies a signal at least OVERLOAD_GAIN times and so that its
peak reaches OVERLOAD_PEAK times full scale, so the converter really clips it."""


class Variant(Enum):
    NORMAL = "normal"
    OVERLOAD = "overload"  # amplified and clipped at full scale
    DEAD = "dead"  # cable fault: nothing arrives


class Feed(Protocol):
    """Blocks of a signal that change with time (an input looped back from a generator)."""

    def message(self, absolute_block: int) -> bytes | None: ...

    def warm(self) -> None: ...


FeedFactory = Any
"""Callable (signal_id, setup, sample_rate, block_values, block_ticks) -> Feed | None."""


@dataclass
class SignalPlan:
    signal_id: int
    setup: ChannelSetup
    interpretation: SignalInterpretation
    raw: np.ndarray
    """One loop of raw Q23 values (normal variant)."""
    clips: bool
    """The signal itself exceeds the input range: every block is clipped."""
    messages: dict[Variant, list[bytes]] = field(default_factory=dict)
    feed: Feed | None = None
    """When set and it has a block, its block replaces the normal one."""

    @property
    def channel(self) -> int:
        return self.setup.channel

    def level(self, variant: Variant = Variant.NORMAL) -> tuple[float, float]:
        """(rms, peak) as fractions of full scale, as channelStatus reports them."""
        raw = self._raw(variant).astype(np.float64)
        if not raw.size:
            return 0.0, 0.0
        return (
            float(np.sqrt(np.mean(raw * raw)) / FULL_SCALE),
            float(np.max(np.abs(raw)) / FULL_SCALE),
        )

    def _raw(self, variant: Variant) -> np.ndarray:
        if variant is Variant.OVERLOAD:
            peak = max(1, int(np.max(np.abs(self.raw))))
            gain = max(OVERLOAD_GAIN, OVERLOAD_PEAK * FULL_SCALE / peak)
            wide = np.rint(self.raw.astype(np.float64) * gain)
            return np.clip(wide, -FULL_SCALE, FULL_SCALE - 1).astype(np.int32)
        if variant is Variant.DEAD:
            return np.zeros_like(self.raw)
        return self.raw


class Acquisition:
    """Everything the streamer needs to know about what an applied setup produces."""

    def __init__(
        self,
        channels: list[ChannelSetup],
        rig: list[RigChannel],
        module_index: int,
        block_values: int,
        feed_for: FeedFactory | None = None,
    ) -> None:
        enabled = enabled_channels(channels)
        if not enabled:
            raise ValueError("no channel is enabled")
        self.sample_rate = enabled[0].sample_rate
        self.block_values = block_values
        self.block_ticks = block_ticks(self.sample_rate, block_values)
        by_channel = {r.channel: r for r in rig}
        # Blocks per loop: the loop must span whole seconds so whole-hertz tones repeat (a few
        # seconds for a tone in tenths of a hertz, e.g. a calibration shaker's 159.2 Hz).
        seconds = math.lcm(
            1, *(by_channel[s.channel].loop_seconds for s in enabled if s.channel in by_channel)
        )
        self.loop_blocks = math.lcm(self.sample_rate * seconds, block_values) // block_values
        n = self.loop_blocks * block_values
        self.signals: list[SignalPlan] = []
        self._lock = threading.Lock()
        for sid, setup in enumerate(enabled, start=1):
            rig_channel = by_channel.get(setup.channel) or RigChannel(setup.channel, "", None)
            seed = zlib.crc32(f"{module_index}:{setup.channel}".encode())
            volts = rig_channel.connector_volts(self.sample_rate, n, setup.ccld, seed)
            raw, clips = quantise(volts, setup.range)
            interp = SignalInterpretation(
                signal_id=sid,
                scale_factor=setup.scale_factor,
                offset=0.0,
                sample_rate=self.sample_rate,
                unit=setup.transducer.unit,
            )
            plan = SignalPlan(sid, setup, interp, raw, clips)
            if feed_for is not None:
                plan.feed = feed_for(sid, setup, self.sample_rate, block_values, self.block_ticks)
            plan.messages[Variant.NORMAL] = self._encode(plan, Variant.NORMAL)
            self.signals.append(plan)

    def _encode(self, plan: SignalPlan, variant: Variant) -> list[bytes]:
        raw = plan._raw(variant)
        bv = self.block_values
        return [
            encode_signal_data(0, plan.signal_id, raw[j * bv : (j + 1) * bv])
            for j in range(self.loop_blocks)
        ]

    def block_message(self, plan: SignalPlan, variant: Variant, absolute_block: int) -> bytes:
        """The SignalData message of one block with header time 0 (the caller patches it)."""
        if plan.feed is not None and variant is Variant.NORMAL:
            fed = plan.feed.message(absolute_block)
            if fed is not None:
                return fed
        messages = plan.messages.get(variant)
        if messages is None:
            with self._lock:
                messages = plan.messages.get(variant)
                if messages is None:
                    messages = plan.messages[variant] = self._encode(plan, variant)
        return messages[absolute_block % self.loop_blocks]

    def warm_feeds(self) -> None:
        for plan in self.signals:
            if plan.feed is not None:
                plan.feed.warm()

    def interpretation_message(self, plan: SignalPlan, time_ticks: int) -> bytes:
        return encode_interpretation(time_ticks, plan.interpretation)

    @property
    def message_size(self) -> int:
        return len(self.signals[0].messages[Variant.NORMAL][0])
