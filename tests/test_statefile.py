"""The one atomic-write rule every state file uses (capture.json, rig, setups, users)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from webapp import statefile
from webapp.engine.rig import RigStore
from webapp.engine.setups import SetupStore


def test_a_failed_rename_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    statefile.write_json(path, {"n": 1})

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError):
        statefile.write_json(path, {"n": 2})
    assert path.read_text() == '{\n "n": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_nan_is_refused_before_the_file_is_touched(tmp_path):
    path = tmp_path / "state.json"
    statefile.write_json(path, {"n": 1})
    with pytest.raises(ValueError):
        statefile.write_json(path, {"n": float("nan")})
    assert path.read_text() == '{\n "n": 1\n}\n'


def test_mode_is_set_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        statefile.atomic_write(tmp_path / "secret", b"x", 0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def _fsynced(monkeypatch) -> list[str]:
    """Record what is fsynced: a file's descriptor or its folder's."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd):
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_the_rig_and_setup_files_are_fsynced_file_and_folder(tmp_path, monkeypatch):
    seen = _fsynced(monkeypatch)
    rig = RigStore(tmp_path / "rig.json", probe=lambda address: None)  # type: ignore[arg-type,return-value]
    rig.add("127.0.0.1", probe=False)
    assert any(s.endswith(".tmp") for s in seen) and str(tmp_path) in seen
    seen.clear()
    setups = SetupStore(tmp_path)
    setups.save_as("gearbox")
    assert any(".tmp" in s for s in seen) and str(tmp_path / "setups") in seen
    assert not list(Path(tmp_path).rglob("*.tmp"))
