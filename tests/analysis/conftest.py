"""Synthetic captures with known content for the reader, report and export tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analysis.helpers import RATE, two_modules
from webapp.analysis.synthetic import write_capture


@pytest.fixture(scope="session")
def clean_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only: copy it before changing anything."""
    folder = tmp_path_factory.mktemp("analysis") / "clean"
    write_capture(folder, two_modules(), seconds=0.5, sample_rate=RATE, name="clean")
    return folder


@pytest.fixture(scope="session")
def faulty_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only. Overload on module 1 signal 1, two lost blocks, module 2 starting one block late and
    running two blocks longer, and module 1's file cut inside its last message."""
    folder = tmp_path_factory.mktemp("analysis") / "faulty"
    modules = two_modules(quality=[(2, 1, 0x02), (4, 1, 0)], dropped=[(5, 2)], truncate=1000)
    modules[1].first_block = 1
    modules[1].extra_blocks = 2
    write_capture(
        folder,
        modules,
        seconds=0.75,
        sample_rate=RATE,
        name="faulty",
        events=[
            {
                "kind": "channel-fault",
                "t": 1700000000.5,
                "module": "BK3160-100001",
                "channel": 1,
                "anol": "curr",
                "cmol": "none",
                "cf": "none",
            }
        ],
    )
    return folder
