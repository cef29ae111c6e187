"""The measurement setup the Setup page edits, and named setups saved beside it.

A setup is plain JSON:

    {"bandwidth": "51.2 kHz" or null for the highest all modules support, "multi_socket": false,
     "channels": {"<address>": [{"channel": 1, "enabled": true, "range": "10 Vpeak",
                                 "filter": "7.0 Hz", "ccld": null, "polvolt": null,
                                 "transducer": null}, ...]}}

``ccld``, ``polvolt`` and ``transducer`` left ``null`` take what TEDS detection found; a
``transducer`` object (sensitivity, unit, serial, type) is a manual entry for a sensor without
TEDS. The current setup lives in ``<data-dir>/setup.json``, named ones in
``<data-dir>/setups/<name>.json``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from webapp import statefile
from webapp.capture.labels import LABEL_FIELDS
from webapp.capture.names import check_name as check_file_name
from webapp.capture.schemas import FieldError
from webapp.engine import schemas

DEFAULT_BANDWIDTH = None
"""None: the highest bandwidth every module of the rig supports."""
SETUP_NAME_MAX = schemas.SETUP_NAME_MAX


def _is_name(stem: str) -> bool:
    try:
        return check_file_name(stem, "the setup name", SETUP_NAME_MAX) == stem
    except ValueError:
        return False


class SetupError(FieldError):
    """A bad setup or setup name (``field`` the machine path, ``message`` the user's words)."""


def check_setup(data: Any, partial: bool = False) -> dict[str, Any]:
    """A validated copy of a setup object (the rules: :class:`webapp.engine.schemas.Setup`);
    ``partial`` keeps only the keys given."""
    if not isinstance(data, dict):
        raise SetupError("setup", "the setup must be a JSON object")
    try:
        return schemas.setup_json(schemas.check(schemas.Setup, data), partial)
    except FieldError as exc:
        raise SetupError(exc.field, exc.message) from None


def default_channel(channel: int) -> dict[str, Any]:
    return {
        "channel": channel,
        "enabled": True,
        "range": None,
        "filter": None,
        "ccld": None,
        "polvolt": None,
        "transducer": None,
        **{key: "" for key in LABEL_FIELDS},
    }


class SetupStore:
    def __init__(self, data_dir: Path):
        self.path = data_dir / "setup.json"
        self.named_dir = data_dir / "setups"
        self._lock = threading.Lock()
        self._setup = check_setup({})
        with contextlib.suppress(OSError, ValueError):  # none yet, or unreadable: start afresh
            self._setup = check_setup(json.loads(self.path.read_text()))

    def current(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._setup))

    def for_rig(self, modules: list[dict[str, Any]]) -> dict[str, Any]:
        """The setup with a row for every input channel of every probed module in the rig."""
        setup = self.current()
        channels: dict[str, list[dict[str, Any]]] = {}
        for module in modules:
            address = module["address"]
            rows = {r["channel"]: r for r in setup["channels"].get(address, [])}
            count = (module.get("info") or {}).get("input_channels") or len(rows)
            channels[address] = [rows.get(n) or default_channel(n) for n in range(1, count + 1)]
        setup["channels"] = channels
        return setup

    def update(self, data: Any) -> dict[str, Any]:
        """Merge a (partial) setup: given modules' channel lists replace the stored ones."""
        change = check_setup(data, partial=True)
        with self._lock:
            merged = json.loads(json.dumps(self._setup))
            merged.update({k: v for k, v in change.items() if k != "channels"})
            merged["channels"].update(change.get("channels", {}))
            self._setup = merged
            self._write(self.path, merged)
            return json.loads(json.dumps(merged))

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        statefile.write_json(path, data, indent=2)

    # --- named setups ------------------------------------------------------------------------

    @staticmethod
    def check_name(name: Any) -> str:
        try:
            return schemas.check(schemas.SetupSave, {"name": name}).name
        except FieldError as exc:
            raise SetupError(exc.field, exc.message) from None

    def names(self) -> list[str]:
        if not self.named_dir.is_dir():
            return []
        return sorted(p.stem for p in self.named_dir.glob("*.json") if _is_name(p.stem))

    def save_as(self, name: Any) -> str:
        name = self.check_name(name)
        self._write(self.named_dir / f"{name}.json", self.current())
        return name

    def load(self, name: Any) -> dict[str, Any]:
        name = self.check_name(name)
        if name not in self.names():
            raise SetupError("name", f"there is no saved setup named {name!r}")
        data = check_setup(json.loads((self.named_dir / f"{name}.json").read_text()))
        with self._lock:
            self._setup = data
            self._write(self.path, data)
        return self.current()

    def delete(self, name: Any) -> None:
        name = self.check_name(name)
        if name not in self.names():
            raise SetupError("name", f"there is no saved setup named {name!r}")
        (self.named_dir / f"{name}.json").unlink()
