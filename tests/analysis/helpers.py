"""Synthetic capture layouts shared by the analysis tests."""

from __future__ import annotations

from typing import Any

from webapp.analysis.synthetic import SynthChannel, SynthModule, calibrator_channel

RATE = 65536


def two_modules(**module1: Any) -> list[SynthModule]:
    """Module 1: calibrator microphone + PTP-time tone; module 2: tone + noise, ch 2 disabled."""
    return [
        SynthModule(
            1,
            [calibrator_channel(1), SynthChannel(2, "tone", frequency=440, amplitude=2.0)],
            **module1,
        ),
        SynthModule(
            2,
            [
                SynthChannel(1, "tone", frequency=440, amplitude=2.0),
                SynthChannel(2, enabled=False),
                SynthChannel(3, "noise", amplitude=0.5, range="0.316 Vpeak"),
            ],
            type="3050",
        ),
    ]
