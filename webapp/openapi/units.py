"""Units, dB references and full scale: the one place every level on every page comes from.

A signal's unit (the transducer's, as the stream's interpretation carries it: "Pa", "m/s^2",
"V", ...) decides its quantity and the reference its dB figures are relative to. References are
ISO 1683:2015's preferred values, written out wherever a dB figure is shown:

=================  =========  ============================
quantity           reference  e.g.
=================  =========  ============================
sound pressure     20 µPa     94.0 dB re 20 µPa (SPL)
acceleration       1 µm/s²    140.0 dB re 1 µm/s² = 10 m/s²
velocity           1 nm/s
displacement       1 pm
force              1 µN
voltage            1 V        (dBV; not an ISO 1683 quantity)
anything else      1 unit
=================  =========  ============================

Full scale: a LAN-XI input range is the peak voltage the range is specified for ("10 Vpeak");
the converter clips 1.5 dB above it (the headroom, PROTOCOL.md §7.3), which is why a stream's
scale factor is range × headroom / sensitivity. 0 dBFS is the range's peak (range / sensitivity
in the signal's unit), so the converter clips at +1.5 dBFS, and dBFS of a level is
20·log10(level / full scale).

Units are printed for people with :func:`unit_label` ("m/s^2" → "m/s²"); files keep the unit
string the module sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from webapp.openapi.model import HEADROOM_MILLIONTHS, range_volts

HEADROOM = HEADROOM_MILLIONTHS / 1e6
"""Converter full scale over the range's peak (1.5 dB)."""
CLIP_DBFS = 20.0 * math.log10(HEADROOM)
"""Where the converter clips, in dB re the range's full scale (+1.5 dB)."""


@dataclass(frozen=True)
class Reference:
    """What a unit measures and what its dB figures are relative to."""

    quantity: str
    unit: str
    """The unit as people read it ("m/s²")."""
    value: float
    """The reference in the signal's own unit (20e-6 for Pa)."""
    label: str
    """The reference written out ("20 µPa")."""
    standard: str = "ISO 1683"

    @property
    def db_label(self) -> str:
        return f"dB re {self.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "unit_label": self.unit,
            "reference": self.label,
            "reference_value": self.value,
            "db_label": self.db_label,
            "standard": self.standard,
        }


_ACCELERATION = ("m/s^2", "m/s2", "m/s²", "m/s/s", "m s^-2", "ms^-2", "ms-2")
_REFERENCES: dict[str, Reference] = {
    "Pa": Reference("sound pressure", "Pa", 20e-6, "20 µPa"),
    "m/s²": Reference("acceleration", "m/s²", 1e-6, "1 µm/s²"),
    "m/s": Reference("velocity", "m/s", 1e-9, "1 nm/s"),
    "m": Reference("displacement", "m", 1e-12, "1 pm"),
    "N": Reference("force", "N", 1e-6, "1 µN"),
    "V": Reference("voltage", "V", 1.0, "1 V", standard=""),
}


def unit_label(unit: str | None) -> str:
    """The unit as printed on screen: every spelling of metres per second squared is m/s²."""
    text = (unit or "").strip()
    if text.replace(" ", "") in _ACCELERATION:
        return "m/s²"
    return text


def reference(unit: str | None) -> Reference:
    """Quantity and dB reference of a signal in ``unit`` (1 unit for one ISO 1683 lacks)."""
    label = unit_label(unit)
    known = _REFERENCES.get(label)
    if known is not None:
        return known
    return Reference("", label, 1.0, f"1 {label}".strip(), standard="")


def db(value: float | None, unit: str | None) -> float | None:
    """Level of an RMS or peak ``value`` in dB re the unit's reference; None for silence."""
    return ratio_db(value, reference(unit).value)


def ratio_db(value: float | None, ref: float | None) -> float | None:
    """20·log10(value / ref); None when either is missing, zero or not finite."""
    if value is None or ref is None:
        return None
    value, ref = abs(float(value)), abs(float(ref))
    if not (value > 0 and ref > 0 and math.isfinite(value) and math.isfinite(ref)):
        return None
    return 20.0 * math.log10(value / ref)


def full_scale(range_text: str, sensitivity: float) -> float:
    """0 dBFS in the signal's unit: the range's peak volts over the transducer's sensitivity."""
    if not sensitivity:
        raise ValueError("transducer sensitivity must be non-zero")
    return range_volts(range_text) / abs(float(sensitivity))


def full_scale_of(scale_factor: float) -> float:
    """0 dBFS from a stream's scale factor (range × headroom / sensitivity, as the module
    computed it from the setup's range): the same value as :func:`full_scale`."""
    return abs(float(scale_factor)) / HEADROOM


def dbfs(value: float | None, full: float | None) -> float | None:
    """A level in dB re the range's full scale (0 dBFS = the range's peak)."""
    return ratio_db(value, full)


def readout(
    rms: float | None,
    peak: float | None,
    unit: str | None,
    full: float | None = None,
    digits: int | None = None,
) -> dict[str, Any]:
    """RMS and peak in engineering units with their dB and dBFS figures and the reference
    written out: what a meter, a report line or an export's metadata shows of one signal."""

    def rounded(x: float | None) -> float | None:
        return x if x is None or digits is None else round(x, digits)

    ref = reference(unit)
    return {
        "rms": rms,
        "peak": peak,
        "unit": unit or "",
        **ref.to_dict(),
        "db": rounded(ratio_db(rms, ref.value)),
        "peak_db": rounded(ratio_db(peak, ref.value)),
        "full_scale": full,
        "dbfs": rounded(dbfs(peak, full)),
        "rms_dbfs": rounded(dbfs(rms, full)),
        "clip_dbfs": rounded(CLIP_DBFS) if full else None,
    }


def describe(unit: str | None) -> dict[str, Any]:
    """The unit and reference of a signal for a page that labels a plot (no values)."""
    return {"unit": unit or "", **reference(unit).to_dict()}


def sensitivity_text(sensitivity: Any, unit: str | None) -> str:
    """A transducer's sensitivity for people: "48.00 mV/Pa", "10.00 mV/(m/s²)", "1 V/V"."""
    label = unit_label(unit) or "unit"
    per = f"({label})" if "/" in label else label
    try:
        value = float(sensitivity)
    except (TypeError, ValueError):
        return f"{sensitivity} V/{per}"
    if 0 < abs(value) < 1:
        return f"{value * 1000:.2f} mV/{per}"
    return f"{value:g} V/{per}"


def level_text(level: dict[str, Any]) -> str:
    """One line for a terminal: "1 Pa RMS = 94.00 dB re 20 µPa, peak 1.414 Pa (-32.5 dBFS)"."""
    if level.get("rms") is None:
        return "no samples"
    unit = level.get("unit_label") or unit_label(level.get("unit"))
    db_text = "−∞" if level.get("db") is None else f"{level['db']:.2f}"
    text = f"{level['rms']:.6g} {unit} RMS = {db_text} {level.get('db_label', 'dB')}"
    if level.get("peak") is not None:
        text += f", peak {level['peak']:.6g} {unit}"
        if level.get("dbfs") is not None:
            text += f" ({level['dbfs']:.1f} dBFS)"
    return text
