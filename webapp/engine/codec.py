"""JSON with bytes for what crosses Redis: journal records, snapshots, commands, answers.

Waveforms and spectra carry float32 bytes; they travel base64-encoded as ``{"$b": "..."}``.
Nothing is unpickled: a record is data, never code.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

from webapp.capture import events as ev

_BYTES = "$b"


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    if hasattr(value, "tolist"):  # a numpy array
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} cannot cross the message queue")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _BYTES in obj:
        return base64.b64decode(obj[_BYTES])
    return obj


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"), allow_nan=True)


def loads(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_hook)


def _event_classes() -> dict[str, type[ev.Event]]:
    out: dict[str, type[ev.Event]] = {}
    todo: list[type[ev.Event]] = [ev.Event]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not ev.Event:
            out[cls.kind] = cls
    return out


_EVENTS = _event_classes()


def event_to_dict(event: ev.Event) -> dict[str, Any]:
    return event.to_dict()


def event_from_dict(data: dict[str, Any]) -> ev.Event | None:
    """The event ``to_dict`` made (extra keys such as unit descriptions dropped); None for a
    kind this version does not know."""
    cls = _EVENTS.get(str(data.get("kind")))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in data.items() if k in names})
