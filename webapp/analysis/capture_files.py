"""Which stream files a capture has and which module each belongs to: from capture.json (an
interrupted capture's too, and files it never named), or from the files' names alone. A base
class of :class:`webapp.analysis.reader.Capture`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from webapp.analysis.capture_errors import CaptureError
from webapp.analysis.index import FileIndex
from webapp.analysis.model import CaptureModule, Problem, StreamFile
from webapp.capture.writer import read_as_interrupted

STREAM_FILE_NAME = re.compile(r"^(?P<name>.*)\.(?P<module>\d+)(?:\.ch(?P<channel>\d+))?\.stream$")
"""A stream file's name: NAME.MODULE[.chCHANNEL].stream."""


class CaptureFiles:
    """Opening steps of :class:`~webapp.analysis.reader.Capture` (which holds the state declared
    here)."""

    folder: Path | None
    meta: dict[str, Any] | None
    _files: list[StreamFile]
    _modules: dict[int, CaptureModule]
    _problems: list[Problem]

    def _load_meta(self, folder: Path) -> dict[str, Any] | None:
        path = folder / "capture.json"
        if not path.exists():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self._problems.append(Problem("error", "capture.json", f"unreadable: {exc}"))
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("modules", []), list):
            self._problems.append(Problem("error", "capture.json", "not a capture description"))
            return None
        return read_as_interrupted(meta, folder)

    def _open_folder(self) -> None:
        assert self.folder is not None
        self.meta = self._load_meta(self.folder)
        if self.meta is None:
            streams = sorted(self.folder.glob("*.stream"))
            if not streams:
                raise CaptureError(f"{self.folder} holds neither capture.json nor .stream files")
            self._problems.append(
                Problem("warning", "capture.json", "missing: modules and channels are inferred")
            )
            self._add_loose_files(streams)
            return
        listed: set[Path] = set()
        for mod in self.meta.get("modules", []):
            number = int(mod.get("number", len(self._modules) + 1))
            self._modules[number] = _module_from_json(number, mod)
            for entry in mod.get("files", []):
                path = self.folder / str(entry.get("file", ""))
                listed.add(path.resolve())
                if not path.is_file():
                    self._problems.append(
                        Problem("error", path.name, f"listed for module {number} but missing")
                    )
                    continue
                self._files.append(self._listed_file(path, number, entry))
        unlisted = [p for p in sorted(self.folder.glob("*.stream")) if p.resolve() not in listed]
        for path in unlisted:
            # An interrupted capture may have files capture.json never named: read them too.
            self._problems.append(
                Problem("warning", path.name, "in the folder but not in capture.json; read")
            )
        self._add_loose_files(unlisted)
        if not self._files and not self._problems:
            raise CaptureError(f"{self.folder}/capture.json lists no stream files")

    def _open_files(self, paths: list[Path]) -> None:
        folders = {p.resolve().parent for p in paths}
        meta = self._load_meta(next(iter(folders))) if len(folders) == 1 else None
        wanted = {p.resolve() for p in paths}
        if meta is not None:
            self.folder = next(iter(folders))
            self.meta = meta
            for mod in meta.get("modules", []):
                number = int(mod.get("number", len(self._modules) + 1))
                entries = [
                    e
                    for e in mod.get("files", [])
                    if (self.folder / str(e.get("file", ""))).resolve() in wanted
                ]
                if not entries:
                    continue
                self._modules[number] = _module_from_json(number, mod)
                for entry in entries:
                    path = self.folder / str(entry["file"])
                    wanted.discard(path.resolve())
                    self._files.append(self._listed_file(path, number, entry))
        rest = [p for p in paths if p.resolve() in wanted]
        if rest:
            if meta is None:
                self._problems.append(
                    Problem("info", "capture.json", "not found: modules and channels are inferred")
                )
            self._add_loose_files(rest)

    def _add_loose_files(self, paths: list[Path]) -> None:
        next_number = max(self._modules, default=0) + 1
        for path in paths:
            if path.is_dir():
                raise CaptureError(f"{path} is a folder; give one capture folder or .stream files")
            match = STREAM_FILE_NAME.match(path.name)
            if match:
                number = int(match.group("module"))
                channels = [int(match.group("channel"))] if match.group("channel") else None
            else:
                number, channels = next_number, None
            next_number = max(next_number, number + 1)
            self._modules.setdefault(number, CaptureModule(number, name=f"module {number}"))
            self._files.append(self._stream_file(path, number, channels))

    def _listed_file(self, path: Path, module: int, entry: dict[str, Any]) -> StreamFile:
        """A stream file as capture.json lists it (channels, size, checksum)."""
        channels = entry.get("channels")
        return self._stream_file(
            path,
            module,
            [int(c) for c in channels] if channels else None,
            _int_or_none(entry.get("bytes")),
            entry.get("sha256") or None,
        )

    def _stream_file(
        self,
        path: Path,
        module: int,
        channels: list[int] | None,
        expected_bytes: int | None = None,
        expected_sha256: str | None = None,
    ) -> StreamFile:
        """A stream file, its index to come (``_build_channels``)."""
        return StreamFile(
            path, module, channels, FileIndex(path, 0), expected_bytes, expected_sha256
        )


def _module_from_json(number: int, mod: dict[str, Any]) -> CaptureModule:
    return CaptureModule(
        number=number,
        name=str(mod.get("name", f"module {number}")),
        type=str(mod.get("type", "")),
        serial=int(mod.get("serial", 0) or 0),
        address=str(mod.get("address", "")),
        role=str(mod.get("role", "")),
        firmware=str(mod.get("firmware", "")),
        hardware=str(mod.get("hardware", "")),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
