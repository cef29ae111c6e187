"""``lanxi-dashboard inspect`` and ``export`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from webapp.cli import main


def test_inspect_prints_the_report(clean_capture: Path, faulty_capture: Path, capsys) -> None:
    assert main(["inspect", str(clean_capture)]) == 0
    out = capsys.readouterr().out
    assert "sample-synchronous" in out and "Verdict: ok" in out
    assert main(["inspect", str(faulty_capture), "--json", "--no-checksums"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "errors"
    files = sorted(str(p) for p in faulty_capture.glob("*.stream"))
    assert main(["inspect", *files]) == 1
    assert "incomplete SignalData" in capsys.readouterr().out


def test_inspect_unreadable(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_export_command(faulty_capture: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.h5"
    assert main(["export", str(faulty_capture), "--format", "hdf5", "--trim", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    with h5py.File(out) as h5:
        assert h5.attrs["trimmed"]
    assert main(["export", str(faulty_capture), "-f", "csv", "--channels", "m9-ch1"]) == 2
    assert "no channel 'm9-ch1'" in capsys.readouterr().err
    code = main(["export", str(faulty_capture), "-f", "wav", "-o", str(tmp_path / "w")])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["faulty.m1.wav", "faulty.m2.wav"]
