"""A calibration check in numbers: reference, measured tone, sensitivity, deviation, verdict.

A sound calibrator (94 or 114 dB re 20 µPa at 1 kHz) or a handheld shaker (10 m/s² RMS at
159.2 Hz) puts a known RMS value of the quantity on the transducer. The channel is measured in
volts (neutral transducer), the tone's RMS is read from a flat-top spectrum (within 0.01 dB of
the tone wherever it falls between lines, and blind to the broadband noise outside its few
lines), and

    sensitivity = tone volts RMS / reference RMS           (V/Pa, V/(m/s²))
    deviation   = 20·log10(sensitivity / stored sensitivity)  dB

passes when ``|deviation| ≤ tolerance`` (default 0.3 dB). 94.0 dB re 20 µPa is 1.0024 Pa RMS.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from webapp.dsp.spectrum import LINES, SpectrumAverager, fft_size
from webapp.openapi.units import reference as unit_reference

DEFAULT_TOLERANCE_DB = 0.3
P_REF_PA = 20e-6
FREQUENCY_TOLERANCE = 0.03
"""The strongest line must lie within 3 % of the reference frequency."""
MIN_TONE_SHARE = 0.7
"""The tone must carry at least this share of the signal's RMS (else the calibrator is off,
not on this transducer, or drowned in noise)."""


class CalibrationError(ValueError):
    """A check that cannot give a result, in the user's terms."""


@dataclass(frozen=True)
class CalibrationReference:
    """What the calibrator or shaker produces."""

    text: str
    """As the user wrote it, normalised ("94dB@1kHz", "10m/s2@159.2Hz")."""
    kind: str
    """"sound calibrator" or "shaker"."""
    unit: str
    """The transducer unit it calibrates ("Pa", "m/s^2")."""
    rms: float
    """RMS of the quantity, in ``unit``."""
    frequency_hz: float
    level_db: float
    """The same RMS in dB re the unit's ISO 1683 reference."""

    @property
    def db_label(self) -> str:
        return unit_reference(self.unit).db_label

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "db_label": self.db_label}


STANDARD_REFERENCES = ("94dB@1kHz", "114dB@1kHz", "10m/s2@159.2Hz")

_REF = re.compile(
    r"^\s*(?P<level>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>db|m/s\^?2|m/s²)\s*@\s*"
    r"(?P<freq>[0-9]+(?:\.[0-9]+)?)\s*(?P<fu>khz|hz)\s*$",
    re.IGNORECASE,
)


def parse_reference(text: str) -> CalibrationReference:
    """``94dB@1kHz``, ``114dB@1kHz`` (sound pressure re 20 µPa) or ``10m/s2@159.2Hz``
    (acceleration RMS); any level and frequency in these forms."""
    m = _REF.match(str(text or ""))
    if not m:
        raise CalibrationError(
            f"reference {text!r} is not understood: write e.g. {', '.join(STANDARD_REFERENCES)}"
        )
    level = float(m["level"])
    freq = float(m["freq"]) * (1000.0 if m["fu"].lower() == "khz" else 1.0)
    if not 1.0 <= freq <= 20_000.0:
        raise CalibrationError(f"reference {text!r}: the frequency must be 1 Hz to 20 kHz")
    if m["unit"].lower() == "db":
        if not 60.0 <= level <= 160.0:
            raise CalibrationError(f"reference {text!r}: the level must be 60 to 160 dB")
        rms = P_REF_PA * 10.0 ** (level / 20.0)
        return CalibrationReference(
            f"{level:g}dB@{_freq_text(freq)}", "sound calibrator", "Pa", rms, freq, level
        )
    if not 0.0 < level <= 1000.0:
        raise CalibrationError(f"reference {text!r}: the level must be above 0 m/s²")
    return CalibrationReference(
        f"{level:g}m/s2@{_freq_text(freq)}",
        "shaker",
        "m/s^2",
        level,
        freq,
        20.0 * math.log10(level / 1e-6),
    )


def _freq_text(freq: float) -> str:
    return f"{freq / 1000:g}kHz" if freq >= 1000 and freq % 100 == 0 else f"{freq:g}Hz"


@dataclass(frozen=True)
class ToneReading:
    rms: float
    """RMS of the tone (flat-top line at the reference frequency), in the samples' unit."""
    frequency_hz: float
    """The strongest tone's frequency (centroid of its lines)."""
    total_rms: float
    strongest_rms: float
    """RMS of the strongest tone, wherever it is."""
    frames: int


def read_tone(samples: np.ndarray, sample_rate: float, frequency_hz: float) -> ToneReading:
    """The RMS of the tone at ``frequency_hz`` in ``samples`` from an averaged flat-top
    spectrum (webapp.dsp.spectrum), the frequency of the strongest line, the total RMS."""
    x = np.asarray(samples, dtype=float)
    lines = next((n for n in reversed(LINES) if fft_size(n) <= len(x)), None)
    if lines is None:
        raise CalibrationError(
            f"{len(x)} samples are too few for a spectrum (at least {fft_size(LINES[0])})"
        )
    averager = SpectrumAverager(sample_rate, "flattop", lines)
    averager.feed(x)
    taken = averager.take()
    assert taken is not None  # at least one frame by the choice of lines
    power, frames = taken
    df = averager.df
    if frequency_hz >= lines * df:
        raise CalibrationError(
            f"{frequency_hz:g} Hz is above the channel's bandwidth ({lines * df:g} Hz)"
        )
    centre = int(round(frequency_hz / df))
    span = max(5, int(math.ceil(frequency_hz * FREQUENCY_TOLERANCE / df)))
    lo, hi = max(1, centre - span), min(len(power) - 1, centre + span)
    peak = lo + int(np.argmax(power[lo : hi + 1]))
    strongest = 1 + int(np.argmax(power[1:]))
    # The tone's frequency between lines: the centroid of the flat top's main lobe (symmetric
    # about the tone, about ±4 lines wide).
    lobe = np.arange(max(1, strongest - 4), min(len(power), strongest + 5))
    frequency = float(np.sum(power[lobe] * lobe) / np.sum(power[lobe])) * df
    total = float(np.sqrt(np.mean((x - x.mean()) ** 2)))
    return ToneReading(
        rms=float(np.sqrt(power[peak])),
        frequency_hz=frequency,
        total_rms=total,
        strongest_rms=float(np.sqrt(power[strongest])),
        frames=frames,
    )


@dataclass(frozen=True)
class CalibrationCheck:
    reference: CalibrationReference
    measured_volts_rms: float
    measured_frequency_hz: float
    sensitivity: float
    """The new sensitivity, volts per unit of the reference (V/Pa, V/(m/s²))."""
    stored_sensitivity: float | None
    deviation_db: float | None
    """20·log10(new / stored); None without a stored sensitivity."""
    tolerance_db: float
    passed: bool | None
    """None without a stored sensitivity to compare with."""
    level_with_stored_db: float | None
    """What the stored sensitivity makes of the tone, in dB re the unit's reference."""

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference.to_json(),
            "measured_volts_rms": self.measured_volts_rms,
            "measured_frequency_hz": self.measured_frequency_hz,
            "sensitivity": self.sensitivity,
            "unit": self.reference.unit,
            "stored_sensitivity": self.stored_sensitivity,
            "deviation_db": self.deviation_db,
            "tolerance_db": self.tolerance_db,
            "passed": self.passed,
            "level_with_stored_db": self.level_with_stored_db,
            "db_label": self.reference.db_label,
        }


def check_tolerance(tolerance_db: float) -> float:
    try:
        value = float(tolerance_db)
    except (TypeError, ValueError):
        raise CalibrationError("tolerance must be a number of dB") from None
    if not 0.0 < value <= 6.0:
        raise CalibrationError("tolerance must be above 0 and at most 6 dB")
    return value


def evaluate(
    volts: np.ndarray,
    sample_rate: float,
    reference: CalibrationReference,
    stored_sensitivity: float | None,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
) -> CalibrationCheck:
    """The check of a channel measured in volts while the reference is applied."""
    tolerance_db = check_tolerance(tolerance_db)
    tone = read_tone(volts, sample_rate, reference.frequency_hz)
    f_ref = reference.frequency_hz
    elsewhere = abs(tone.frequency_hz - f_ref) > FREQUENCY_TOLERANCE * f_ref + 1.0
    if elsewhere and tone.strongest_rms >= MIN_TONE_SHARE * tone.total_rms > 0:
        raise CalibrationError(
            f"the strongest tone is at {tone.frequency_hz:.1f} Hz, not {f_ref:g} Hz: check the "
            f"{reference.kind}'s setting"
        )
    if tone.total_rms <= 0 or tone.rms < MIN_TONE_SHARE * tone.total_rms:
        raise CalibrationError(
            f"no {f_ref:g} Hz tone dominates the channel (tone {tone.rms * 1e3:.4g} mV of "
            f"{tone.total_rms * 1e3:.4g} mV RMS): is the {reference.kind} on this transducer "
            "and switched on?"
        )
    sensitivity = tone.rms / reference.rms
    deviation = passed = level = None
    if stored_sensitivity is not None and stored_sensitivity > 0:
        deviation = 20.0 * math.log10(sensitivity / stored_sensitivity)
        passed = abs(deviation) <= tolerance_db + 1e-9
        ref_value = unit_reference(reference.unit).value
        level = 20.0 * math.log10(tone.rms / stored_sensitivity / ref_value)
    return CalibrationCheck(
        reference=reference,
        measured_volts_rms=tone.rms,
        measured_frequency_hz=tone.frequency_hz,
        sensitivity=sensitivity,
        stored_sensitivity=stored_sensitivity,
        deviation_db=deviation,
        tolerance_db=tolerance_db,
        passed=passed,
        level_with_stored_db=level,
    )
