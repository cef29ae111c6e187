"""The default rig of an emulated module: which transducer sits on which input, what it measures.

Every module gets the same deterministic rig, with serial numbers and sensitivities derived
from its index so that modules can be told apart:

* channel 1: a TEDS microphone (type 4189, about 50 mV/Pa, CCLD) on a 1 kHz sound calibrator
  at exactly 94.0 dB SPL (1.0024 Pa RMS);
* channel 2: a TEDS accelerometer (type 4533-B, about 10 mV/(m/s^2), CCLD) on a vibrating
  structure (80 Hz and 237 Hz lines over a little broadband noise), or, with the
  calibration-shaker option, on a handheld calibration shaker (10 m/s^2 RMS at 159.2 Hz);
* channel 3: a plain voltage input carrying a 160 Hz, 1 V peak sine whose phase is taken from
  absolute PTP time, identical on every module, so cross-module phase alignment can be
  checked from the stored streams;
* every further channel: low input noise (50 uV RMS).

Signals are described as the voltage at the connector. A transducer that needs CCLD power
delivers nothing but noise while the channel's ``ccld`` is off, as on a real front end. Tones
above the channel's bandwidth are removed, as the anti-aliasing filter would. All tone
frequencies are whole hertz, so every signal repeats after one second of absolute time; the
noise is drawn once per second-long loop, which keeps generation a table lookup. A tone in
tenths of a hertz (the shaker's 159.2 Hz) makes its channel's loop span the few whole seconds
after which it repeats (5 s for 159.2 Hz).
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass

import numpy as np

from webapp.openapi.model import HEADROOM_MILLIONTHS, Transducer, range_volts

FULL_SCALE = 1 << 23
NOISE_FLOOR_VOLTS = 50e-6
PTP_TONE_HZ = 160.0
PTP_TONE_VOLTS = 1.0
CALIBRATOR_HZ = 1000.0
CALIBRATOR_PA_RMS = 20e-6 * 10 ** (94.0 / 20)  # 94.0 dB SPL re 20 uPa: 1.0024 Pa
SHAKER_HZ = 159.2  # ω = 1000 rad/s, as handheld calibration shakers run
SHAKER_RMS = 10.0  # m/s^2 RMS (140.0 dB re 1 µm/s²)
MAX_LOOP_SECONDS = 10


@dataclass(frozen=True)
class Tone:
    frequency: float  # whole hertz or tenths: the loop must be periodic over whole seconds
    amplitude: float  # peak, in the transducer's unit
    phase: float = 0.0  # radians at a whole second of absolute time (of the loop's start)

    @property
    def loop_seconds(self) -> int:
        """The fewest whole seconds over which this tone completes whole cycles."""
        for seconds in range(1, MAX_LOOP_SECONDS + 1):
            cycles = self.frequency * seconds
            if abs(cycles - round(cycles)) < 1e-9:
                return seconds
        raise ValueError(f"a {self.frequency} Hz tone does not repeat within whole seconds")


@dataclass(frozen=True)
class RigChannel:
    """What is connected to one input and what it sees."""

    channel: int
    description: str
    transducer: Transducer | None
    """The TEDS transducer a detection finds (None: nothing with TEDS on this input)."""
    sensitivity: float = 1.0
    """Volts per unit of the signal below (the transducer's true sensitivity)."""
    tones: tuple[Tone, ...] = ()
    noise_rms: float = 0.0
    """Broadband noise of the measured quantity, in the transducer's unit."""
    requires_ccld: bool = False

    @property
    def loop_seconds(self) -> int:
        """Whole seconds after which this channel's signal repeats."""
        return math.lcm(1, *(tone.loop_seconds for tone in self.tones))

    def connector_volts(
        self, sample_rate: int, n_samples: int, ccld_on: bool, seed: int
    ) -> np.ndarray:
        """The input voltage for samples 0..n-1, sample 0 at a whole second of absolute time."""
        t = np.arange(n_samples, dtype=np.float64) / sample_rate
        physical = np.zeros(n_samples)
        powered = ccld_on or not self.requires_ccld
        bandwidth = sample_rate / 2.56
        if powered:
            for tone in self.tones:
                if tone.frequency < bandwidth:
                    physical += tone.amplitude * np.sin(2 * np.pi * tone.frequency * t + tone.phase)
        volts = physical * self.sensitivity
        rng = np.random.default_rng(seed)
        noise = NOISE_FLOOR_VOLTS
        if powered and self.noise_rms:
            noise = float(np.hypot(noise, self.noise_rms * self.sensitivity))
        volts += rng.normal(0.0, noise, n_samples)
        return volts


def quantise(volts: np.ndarray, range_text: str) -> tuple[np.ndarray, bool]:
    """Connector volts -> raw Q23 values for an input range; also whether anything clipped."""
    full_scale_volts = range_volts(range_text) * HEADROOM_MILLIONTHS / 1e6
    raw = np.rint(volts * (FULL_SCALE / full_scale_volts))
    clipped = bool(np.any(raw >= FULL_SCALE) or np.any(raw < -FULL_SCALE))
    return np.clip(raw, -FULL_SCALE, FULL_SCALE - 1).astype(np.int32), clipped


def _teds_blob(type_number: str, serial: int, sensitivity: float) -> str:
    """A deterministic stand-in for the transducer's TEDS memory (base64, as modules report)."""
    raw = struct.pack("<4sId", type_number.encode()[:4].ljust(4, b"\0"), serial, sensitivity)
    return base64.b64encode(raw + bytes(8)).decode("ascii")


def microphone(index: int) -> Transducer:
    serial = 3_021_100 + index
    sensitivity = round(0.0480 + 0.0009 * (index % 5), 6)
    return Transducer(
        type_number="4189",
        type_model="A",
        type_variant="021",
        serial_number=serial,
        sensitivity=sensitivity,
        unit="Pa",
        requires_ccld=True,
        requires_200v=False,
        extra={"teds": _teds_blob("4189", serial, sensitivity)},
    )


def accelerometer(index: int) -> Transducer:
    serial = 50_900 + index
    sensitivity = round(0.0100 + 0.00015 * (index % 7), 6)
    return Transducer(
        type_number="4533",
        type_model="B",
        type_variant="001",
        serial_number=serial,
        sensitivity=sensitivity,
        unit="m/s^2",
        requires_ccld=True,
        requires_200v=False,
        extra={"direction": "z", "teds": _teds_blob("4533", serial, sensitivity)},
    )


def default_rig(
    index: int, input_channels: int, calibration_shaker: bool = False
) -> list[RigChannel]:
    """The rig of module ``index`` (0-based) with ``input_channels`` inputs; with
    ``calibration_shaker`` the accelerometer sits on a handheld calibration shaker."""
    mic = microphone(index)
    acc = accelerometer(index)
    channels: list[RigChannel] = []
    for ch in range(1, input_channels + 1):
        if ch == 1:
            channels.append(
                RigChannel(
                    ch,
                    "microphone on a 94.0 dB, 1 kHz sound calibrator",
                    mic,
                    mic.sensitivity,
                    (Tone(CALIBRATOR_HZ, CALIBRATOR_PA_RMS * np.sqrt(2.0)),),
                    noise_rms=1e-4,
                    requires_ccld=True,
                )
            )
        elif ch == 2 and calibration_shaker:
            channels.append(
                RigChannel(
                    ch,
                    f"accelerometer on a {SHAKER_RMS:g} m/s² RMS, {SHAKER_HZ:g} Hz calibration shaker",
                    acc,
                    acc.sensitivity,
                    (Tone(SHAKER_HZ, SHAKER_RMS * np.sqrt(2.0)),),
                    noise_rms=0.005,
                    requires_ccld=True,
                )
            )
        elif ch == 2:
            channels.append(
                RigChannel(
                    ch,
                    "accelerometer on a vibrating structure",
                    acc,
                    acc.sensitivity,
                    (Tone(80.0, 7.0, 0.3), Tone(237.0, 2.0, 1.1)),
                    noise_rms=0.05,
                    requires_ccld=True,
                )
            )
        elif ch == 3:
            channels.append(
                RigChannel(
                    ch,
                    f"{PTP_TONE_HZ:g} Hz reference tone locked to absolute time",
                    None,
                    1.0,
                    (Tone(PTP_TONE_HZ, PTP_TONE_VOLTS),),
                )
            )
        else:
            channels.append(RigChannel(ch, "open input (noise floor)", None))
    return channels


def module_serial(type_number: str, index: int) -> int:
    """Six digits, as mDNS names need (BK3050-105101); distinct per type and index."""
    return 100_000 + (int(type_number) % 100) * 1000 + 101 + index
