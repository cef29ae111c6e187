"""What an emulated generator output puts out, and what a looped-back input then sees.

A generator output (PROTOCOL.md §5.7) mixes two waveform inputs (sum or product), applies the
output gain and offset and drives its connector; full scale (gain 1) is OUTPUT_FULL_SCALE_VOLTS.
The emulator feeds the output to an input through a :class:`Loopback` wire, directly or through
a simulated structure (a single-degree-of-freedom resonance). As everything the emulator
streams, the looped signal is one precomputed loop of whole blocks, repeated: each waveform
tells how long its loop must be (:func:`loop_seconds`), and the structure's response is its
periodic steady state over that loop (computed line by line from the analytic H), so the
measured response is known exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

OUTPUT_FULL_SCALE_VOLTS = 10.0
"""Output voltage (peak) at gain 1 and a waveform input at 1."""
GAIN_MAX = 0.999999
RANDOM_LOOP_SECONDS = 8
"""Random noise repeats after this long (a longer loop would cost memory, not realism)."""
MAX_LOOP_SECONDS = 20
"""A waveform whose period is longer (a slow sweep) is refused: its loop would not fit."""
TONE_LOOP_SECONDS = 8
"""A tone repeats after the fewest whole seconds up to this in which it has whole periods."""

SIGNAL_TYPES = ("none", "sine", "square", "dc", "linsweep", "logsweep", "random", "stream")
NOT_EMULATED = {"p_random": "pseudo-random"}


class WaveformError(ValueError):
    """A generator setup the emulator cannot or will not produce (a 400 answer)."""


def _number(obj: dict[str, Any], key: str, default: float, where: str) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WaveformError(f"{where}: {key} must be a number, not {value!r}")
    return float(value)


def _lower_keys(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise WaveformError("a generator output and its inputs must be JSON objects")
    return {str(k).lower(): v for k, v in obj.items()}


@dataclass(frozen=True)
class Waveform:
    """One waveform input of an output: its type and parameters (lower-case keys)."""

    kind: str
    params: dict[str, Any]

    @staticmethod
    def parse(raw: Any, where: str) -> Waveform:
        p = _lower_keys(raw)
        kind = str(p.get("signaltype", "none")).lower()
        if kind in NOT_EMULATED:
            raise WaveformError(f"{where}: {NOT_EMULATED[kind]} waveforms are not emulated")
        if kind not in SIGNAL_TYPES:
            known = ", ".join(SIGNAL_TYPES)
            raise WaveformError(f"{where}: unknown signalType {kind!r} (one of {known})")
        w = Waveform(kind, p)
        w.check(where)
        return w

    def num(self, key: str, default: float = 0.0) -> float:
        return _number(self.params, key, default, self.kind)

    def check(self, where: str) -> None:
        if self.kind in ("sine", "square") and self.num("frequency", 1000.0) <= 0:
            raise WaveformError(f"{where}: frequency must be above 0 Hz")
        if self.kind == "square":
            duty = self.num("dutycycle", 50.0)
            if not 0 <= duty <= 100:
                raise WaveformError(f"{where}: dutycycle must be 0 to 100 %")
            if self.num("repetitions", 0) != 0:
                raise WaveformError(f"{where}: a square wave with repetitions is not emulated")
        if self.kind in ("linsweep", "logsweep"):
            f1, f2 = self.num("start_frequency", 0.0), self.num("stop_frequency", 0.0)
            if f1 <= 0 or f2 <= 0 or f1 == f2:
                raise WaveformError(f"{where}: start and stop frequency must differ and be above 0")
            rate_key = "hz_second" if self.kind == "linsweep" else "decades_sec"
            if self.num(rate_key, 0.0) <= 0:
                raise WaveformError(f"{where}: {rate_key} must be above 0")
            if self.period() > MAX_LOOP_SECONDS:
                raise WaveformError(
                    f"{where}: a sweep lasting {self.period():.1f} s is not emulated "
                    f"(at most {MAX_LOOP_SECONDS} s)"
                )
        if self.kind == "random" and self.num("bandwidth", 0.0) <= 0:
            raise WaveformError(f"{where}: bandwidth must be above 0 Hz")
        if self.kind == "stream":
            rate = self.params.get("samplingrate", 0)
            if isinstance(rate, bool) or rate not in (0, 1, 2, 3):
                raise WaveformError(
                    f"{where}: samplingRate must be 0, 1, 2 or 3 (131072 Hz / 2^samplingRate)"
                )

    @property
    def sampling_rate_exponent(self) -> int:
        return int(self.params.get("samplingrate", 0))

    def period(self) -> float:
        """Seconds after which the waveform repeats (0: constant)."""
        if self.kind in ("sine", "square"):
            return 1.0 / self.num("frequency", 1000.0)
        if self.kind == "linsweep":
            span = abs(self.num("stop_frequency") - self.num("start_frequency"))
            one_way = span / self.num("hz_second")
        elif self.kind == "logsweep":
            decades = abs(math.log10(self.num("stop_frequency") / self.num("start_frequency")))
            one_way = decades / self.num("decades_sec")
        else:
            return 0.0
        return one_way * (2 if int(self.num("direction", 0)) == 1 else 1)

    def loop_seconds(self) -> float:
        if self.kind == "random":
            return float(RANDOM_LOOP_SECONDS)
        if self.kind in ("sine", "square"):
            f = self.num("frequency", 1000.0)
            for k in range(1, TONE_LOOP_SECONDS + 1):
                if abs(f * k - round(f * k)) < 1e-9:
                    return float(k)
            return 1.0  # not whole periods: a phase step once a second (documented)
        return self.period()

    def samples(self, t: np.ndarray, sample_rate: int) -> np.ndarray:
        """Values (full scale 1) at times t (seconds since the output started), t[0] = 0."""
        k = self.kind
        if k in ("none", "stream"):  # a stream's samples come from the client (stream_volts)
            return np.zeros_like(t)
        gain, offset = self.num("gain", 1.0), self.num("offset", 0.0)
        if k == "dc":
            return np.full_like(t, gain)
        if k == "sine":
            phase = math.radians(self.num("phase", 0.0))
            return gain * np.sin(2 * np.pi * self.num("frequency", 1000.0) * t + phase) + offset
        if k == "square":
            f = self.num("frequency", 1000.0)
            cycle = np.mod(t * f + self.num("phase", 0.0) / 360.0, 1.0)
            high = cycle < self.num("dutycycle", 50.0) / 100.0
            low_level, high_level = self.num("lowlevel", -1.0), self.num("highlevel", 1.0)
            return np.where(high, high_level, low_level) + offset
        if k in ("linsweep", "logsweep"):
            return gain * np.sin(self._sweep_phase(t)) + offset
        return gain * self._random(t.size, sample_rate) + offset

    def _sweep_phase(self, t: np.ndarray) -> np.ndarray:
        f1, f2 = self.num("start_frequency"), self.num("stop_frequency")
        up_down = int(self.num("direction", 0)) == 1
        one_way = self.period() / (2 if up_down else 1)
        tau = np.mod(t, self.period())
        if self.kind == "linsweep":
            rate = (f2 - f1) / one_way

            def phase(x: np.ndarray) -> np.ndarray:
                return 2 * np.pi * (f1 * x + rate * x * x / 2)
        else:
            growth = math.log(f2 / f1) / one_way

            def phase(x: np.ndarray) -> np.ndarray:
                return 2 * np.pi * f1 * np.expm1(growth * x) / growth

        start = math.radians(self.num("phase", 0.0))
        if not up_down:
            return start + phase(tau)
        top = phase(np.array([one_way]))[0]
        down = tau >= one_way
        out = phase(np.where(down, one_way, tau))
        # Coming down retraces the frequencies: the phase keeps growing, mirrored in time.
        out = np.where(down, 2 * top - phase(2 * one_way - tau), out)
        return start + out

    def _random(self, n: int, sample_rate: int) -> np.ndarray:
        """Gaussian noise in the band centre ± bandwidth/2, RMS 1/√2 (like a sine of peak 1)."""
        seed = int(self.num("gen_number", 0))
        rng = np.random.default_rng(0x6E4 + seed)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1.0 / sample_rate)
        centre, width = self.num("center_frequency", sample_rate / 5.12), self.num("bandwidth")
        keep = (f >= centre - width / 2) & (f <= centre + width / 2) & (f > 0)
        keep &= f < sample_rate / 2.56
        if int(self.num("hp_filter", 0)):
            keep &= f >= 7.0
        shape = np.where(keep, 1.0, 0.0)
        if int(self.num("pink_filter", 0)):
            shape = shape / np.sqrt(np.maximum(f, f[1] if f.size > 1 else 1.0))
        x = np.fft.irfft(spectrum * shape, n)
        rms = float(np.sqrt(np.mean(x * x)))
        return x / (rms * math.sqrt(2.0)) if rms > 0 else x


@dataclass(frozen=True)
class OutputSetup:
    """One output as PUT generator/output sets it."""

    number: int
    gain: float
    offset: float
    mix: str
    inputs: tuple[Waveform, Waveform]
    raw: dict[str, Any]
    """The output object as the client sent it (GET answers it back)."""

    @staticmethod
    def parse(raw: Any, outputs: int) -> OutputSetup:
        p = _lower_keys(raw)
        number = p.get("number")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= outputs:
            raise WaveformError(
                f"generator output number must be 1 to {outputs}, not {number!r}"
                if outputs
                else "this module has no generator outputs"
            )
        where = f"output {number}"
        gain = min(_number(p, "gain", 1.0, where), GAIN_MAX)
        offset = _number(p, "offset", 0.0, where)
        if gain < 0 or abs(offset) > GAIN_MAX:
            raise WaveformError(f"{where}: gain must be 0 to 0.999999 and offset within ±0.999999")
        mix = str(p.get("mixfunction", "sum")).lower()
        if mix not in ("sum", "mul"):
            raise WaveformError(f"{where}: mixfunction must be 'sum' or 'mul', not {mix!r}")
        given = p.get("inputs", [])
        if not isinstance(given, list):
            raise WaveformError(f"{where}: inputs must be a list")
        by_number: dict[int, Waveform] = {}
        for item in given:
            n = _lower_keys(item).get("number")
            if n not in (1, 2) or n in by_number:
                raise WaveformError(f"{where}: each input needs its own number 1 or 2")
            by_number[n] = Waveform.parse(item, f"{where}, input {n}")
        none = Waveform("none", {})
        if by_number.get(2, none).kind == "stream":
            raise WaveformError(f"{where}, input 2: a streamed waveform goes on input 1 only")
        if by_number.get(1, none).kind == "stream" and by_number.get(2, none).kind == "random":
            raise WaveformError(
                f"{where}, input 2: random noise mixed with a streamed input is not emulated"
            )
        return OutputSetup(
            number, gain, offset, mix, (by_number.get(1, none), by_number.get(2, none)), dict(raw)
        )

    @property
    def streamed(self) -> bool:
        """Input 1 is fed by the client over TCP (stream-format.md §13)."""
        return self.inputs[0].kind == "stream"

    def stream_volts(self, values: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Output voltage of a streamed output: ``values`` (full scale 1) as input 1, times
        its gain plus its offset, mixed with input 2 at times ``t`` since the start."""
        first = self.inputs[0]
        a = first.num("gain", 1.0) * values + first.num("offset", 0.0)
        b = self.inputs[1].samples(t, 0)
        mixed = a * b if self.mix == "mul" and self.inputs[1].kind != "none" else a + b
        return OUTPUT_FULL_SCALE_VOLTS * (self.gain * mixed + self.offset)

    @property
    def silent(self) -> bool:
        return all(w.kind == "none" for w in self.inputs)

    def loop_seconds(self) -> float:
        return max([1.0, *(w.loop_seconds() for w in self.inputs)])

    def volts(self, sample_rate: int, n: int) -> np.ndarray:
        """Output voltage for samples 0..n-1 after the output started."""
        t = np.arange(n, dtype=np.float64) / sample_rate
        a, b = (w.samples(t, sample_rate) for w in self.inputs)
        if self.mix == "mul" and self.inputs[1].kind != "none" and self.inputs[0].kind != "none":
            mixed = a * b
        else:
            mixed = a + b
        return OUTPUT_FULL_SCALE_VOLTS * (self.gain * mixed + self.offset)


def default_output(number: int) -> dict[str, Any]:
    """PROTOCOL.md Q17's default generator setup of one output."""
    return {
        "number": number,
        "floating": False,
        "gain": 1.0,
        "offset": 0.0,
        "mixfunction": "sum",
        "inputs": [
            {
                "number": 1,
                "signalType": "sine",
                "frequency": 1000.0,
                "gain": 0.0,
                "offset": 0.0,
                "phase": 0.0,
            },
            {"number": 2, "signalType": "none"},
        ],
    }


@dataclass(frozen=True)
class Loopback:
    """A wire from a generator output to an input, optionally through a resonant structure.

    ``resonance_hz`` None: a plain cable (the input sees the output voltage times ``gain``).
    Otherwise the input sees the output through H(s) = gain·ωn² / (s² + 2ζωn·s + ωn²): unity
    (times gain) at DC, gain/(2ζ) at fn, phase −90° at fn.
    """

    output: int
    input: int
    resonance_hz: float | None = None
    damping: float = 0.02
    gain: float = 1.0

    @staticmethod
    def parse(text: str) -> Loopback:
        """'OUT>IN' or 'OUT>IN:FN:ZETA[:GAIN]', e.g. '1>2:1000:0.02'."""
        try:
            wire, _, rest = text.partition(":")
            out_text, in_text = wire.split(">")
            out, inp = int(out_text), int(in_text)
            if not rest:
                return Loopback(out, inp)
            parts = [float(x) for x in rest.split(":")]
            fn, zeta = parts[0], parts[1]
            gain = parts[2] if len(parts) > 2 else 1.0
        except (ValueError, IndexError):
            raise ValueError(
                f"loop-back {text!r}: write OUTPUT>INPUT or OUTPUT>INPUT:FN_HZ:DAMPING[:GAIN]"
            ) from None
        if fn <= 0 or not 0 < zeta < 1 or len(parts) > 3:
            raise ValueError(f"loop-back {text!r}: needs FN above 0 Hz and DAMPING between 0 and 1")
        return Loopback(out, inp, fn, zeta, gain)

    def response(self, f: np.ndarray) -> np.ndarray:
        """The analytic frequency response of the wire at frequencies f (Hz)."""
        if self.resonance_hz is None:
            return np.full(np.shape(f), self.gain, dtype=complex)
        wn = 2 * np.pi * self.resonance_hz
        s = 2j * np.pi * np.asarray(f, dtype=float)
        return self.gain * wn * wn / (s * s + 2 * self.damping * wn * s + wn * wn)

    def apply(self, volts: np.ndarray, sample_rate: int) -> np.ndarray:
        """The input voltage for one loop of a periodic output: its periodic steady state.

        The loop repeats, so its response is exact line by line: each DFT line of the loop
        times the analytic H at that frequency (no discretisation of H, no warping).
        """
        if self.resonance_hz is None:
            return self.gain * volts
        lines = np.fft.rfft(volts)
        f = np.fft.rfftfreq(volts.size, 1.0 / sample_rate)
        return np.fft.irfft(lines * self.response(f), volts.size)
