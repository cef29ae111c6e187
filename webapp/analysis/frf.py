"""FRF of a recorded capture: H1, H2 and coherence between a reference channel and responses.

Channels may sit on different modules: a synchronized capture is sample-synchronous, so the
samples are aligned by their PTP time (the latest first sample of the channels involved is the
common start). Segments that touch a gap (lost data) are left out, never smeared: the
averaging restarts after it. The numbers come from :mod:`webapp.dsp.frf`; magnitudes are given
in dB re 1 (response unit per reference unit), phases in degrees.

``uff58`` writes the result as Universal File Format dataset 58 function records (pyuff):
one complex FRF record (function type 4, H1) and one coherence record (function type 9) per
response, abscissa in Hz.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from webapp.analysis.reader import Capture
from webapp.dsp.frf import FrfAverager, FrfResult
from webapp.openapi.stream import TICKS_PER_SECOND

NFFT_CHOICES = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
CHUNK_SEGMENTS = 32


def compute(
    cap: Capture,
    reference: str,
    responses: list[str],
    start_s: float | None = None,
    end_s: float | None = None,
    nfft: int = 4096,
) -> tuple[FrfResult, dict[str, Any]]:
    """The FRF of the window [start_s, end_s) (seconds from the capture start; None: all)."""
    if nfft not in NFFT_CHOICES:
        raise ValueError(f"nfft must be one of {', '.join(map(str, NFFT_CHOICES))}")
    if not responses:
        raise ValueError("choose at least one response channel")
    if reference in responses:
        raise ValueError(f"channel {reference} cannot be its own response")
    ref = cap.channel(reference)
    chans = [cap.channel(k) for k in responses]
    rates = {c.sample_rate for c in [ref, *chans]}
    if len(rates) != 1:
        raise ValueError("the reference and the responses must have one sample rate")
    fs = ref.sample_rate
    everything = [ref, *chans]
    t0 = max(c.start_ticks for c in everything)
    t1 = min(c.end_ticks for c in everything)
    if start_s is not None:
        t0 = max(t0, cap.start_ticks + round(start_s * TICKS_PER_SECOND))
    if end_s is not None:
        t1 = min(t1, cap.start_ticks + round(end_s * TICKS_PER_SECOND))
    starts = [max(0, c.index_at(t0)) for c in everything]
    total = max(0, (t1 - t0) // ref.ticks_per_sample)
    averager = FrfAverager(fs, len(chans), nperseg=nfft)
    chunk = nfft * CHUNK_SEGMENTS
    skipped = 0
    for offset in range(0, int(total), chunk):
        n = int(min(chunk, total - offset))
        rows = [
            cap.read(c, s + offset, s + offset + n, np.float64)
            for c, s in zip(everything, starts, strict=True)
        ]
        block = np.vstack(rows)
        if np.isnan(block).any():
            skipped += 1
            averager.restart()
            continue
        averager.add(block[0], block[1:])
    result = averager.result()
    facts = {
        "reference": reference,
        "responses": responses,
        "sample_rate": fs,
        "nfft": nfft,
        "averages": result.averages,
        "skipped_chunks_with_gaps": skipped,
        "units": {"reference": ref.unit, "responses": [c.unit for c in chans]},
    }
    return result, facts


def as_json(result: FrfResult, facts: dict[str, Any]) -> dict[str, Any]:
    def db(h: np.ndarray) -> list[float | None]:
        with np.errstate(divide="ignore"):
            values = 20 * np.log10(np.abs(h))
        return [float(v) if np.isfinite(v) else None for v in values]

    def deg(h: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in np.angle(h, deg=True)]

    rows = []
    for i, key in enumerate(facts["responses"]):
        unit = facts["units"]["responses"][i]
        rows.append(
            {
                "channel": key,
                "unit": f"{unit}/{facts['units']['reference']}",
                "h1_db": db(result.h1[i]),
                "h1_phase_deg": deg(result.h1[i]),
                "h2_db": db(result.h2[i]),
                "h2_phase_deg": deg(result.h2[i]),
                "coherence": [float(v) for v in result.coherence[i]],
            }
        )
    return {
        **facts,
        "db_reference": "dB re 1 (response unit per reference unit)",
        "freq": result.frequency.tolist(),
        "frf": rows,
    }


def uff58(path: Path, result: FrfResult, facts: dict[str, Any], name: str) -> None:
    """UFF dataset 58 function records: H1 (type 4, complex) and coherence (type 9)."""
    import pyuff

    ref_unit = facts["units"]["reference"]
    records = []
    about = f"{facts['averages']} averages, nfft {facts['nfft']}, Hann"
    for i, key in enumerate(facts["responses"]):
        unit = facts["units"]["responses"][i]
        for func_type, label, units_label, data in (
            (4, "H1", unit, np.nan_to_num(result.h1[i]).astype(np.complex128)),
            (9, "coherence", "NONE", result.coherence[i].astype(np.float64)),
        ):
            records.append(
                pyuff.prepare_58(
                    binary=1,
                    id1=name[:80],
                    id2=f"{label} {key} / {facts['reference']}"[:80],
                    id3=about[:80],
                    func_type=func_type,
                    rsp_node=i + 1,
                    rsp_dir=0,
                    ref_node=0,
                    ref_dir=0,
                    abscissa_spacing=1,
                    abscissa_spec_data_type=18,  # frequency
                    abscissa_axis_units_lab="Hz",
                    ordinate_spec_data_type=0,
                    ordinate_axis_units_lab=(units_label or "NONE")[:20],
                    orddenom_spec_data_type=0,
                    orddenom_axis_units_lab=(ref_unit or "NONE")[:20] if func_type == 4 else "",
                    z_axis_spec_data_type=0,
                    data=data,
                    x=result.frequency.astype(np.float64),
                )
            )
    if path.exists():
        path.unlink()
    uff = pyuff.UFF(str(path))
    for record in records:
        uff.write_sets(record, mode="add")
