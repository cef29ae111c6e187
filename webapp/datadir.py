"""Where the dashboard's commands keep their data unless told (``--data-dir``)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = "data"


def default_data_dir() -> Path:
    """Where ``serve``, ``engine``, ``user`` and ``calibrate`` keep their data unless told:
    $LANXI_DATA_DIR, else ./data."""
    return Path(os.environ.get("LANXI_DATA_DIR", DEFAULT_DATA_DIR))
