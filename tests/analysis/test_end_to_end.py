"""A real capture, made by the orchestrator from emulated modules (in-process, free ports of
127.0.0.1), read back: synchronism, calibration, exports and a crash-truncated file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile

from tests.support.emulator import FAST_EMULATOR
from webapp.analysis.export import export
from webapp.analysis.integrity import build_report
from webapp.analysis.reader import Capture
from webapp.capture.events import EventBus, Phase
from webapp.capture.orchestrator import Orchestrator
from webapp.capture.settings import CaptureSettings
from webapp.emulator import EmulatedRig
from webapp.openapi.stream import HEADER_SIZE, parse_header

CALIBRATOR_CHANNEL = 1  # the emulator's default rig: microphone on a 94 dB calibrator
TIME_TONE_CHANNEL = 3  # 160 Hz, 1 V peak, phase from absolute PTP time
TIME_TONE_HZ = 160


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e2e")
    rig = EmulatedRig.start(3, **FAST_EMULATOR)
    try:
        orch = Orchestrator(EventBus(), out)
        orch.start(CaptureSettings(modules=rig.addresses, duration_s=1.0, name="e2e"))
        assert orch.wait(60)
        assert orch.phase == Phase.COMPLETED, orch.last_error
        folder = orch.last_folder
    finally:
        rig.stop()
    assert folder is not None
    return Path(folder)


def test_report_is_clean_and_synchronous(capture: Path) -> None:
    meta = json.loads((capture / "capture.json").read_text())
    with Capture.open(capture) as cap:
        report = build_report(cap)
    assert report["verdict"] == "ok", report["problems"]
    assert report["sync"]["synchronous"]
    assert report["sync"]["common_start_ticks"] == meta["start_ticks"]
    assert {f["checksum"] for f in report["files"]} == {"ok"}
    assert len(report["modules"]) == 3
    for mod in report["modules"]:
        assert mod["first_sample_ticks"] == meta["start_ticks"]


def test_time_tone_has_the_same_phase_on_every_module(capture: Path) -> None:
    with Capture.open(capture) as cap:
        keys = [c.key for c in cap.channels if c.channel == TIME_TONE_CHANNEL]
        assert len(keys) == 3
        arrays = cap.arrays(trim=True, keys=keys)
        t0, _ = cap.span(trim=True)
        tps = cap.channel(keys[0]).ticks_per_sample
        rate = cap.channel(keys[0]).sample_rate
    n = len(arrays[keys[0]])
    ticks = t0 + np.arange(n, dtype=np.int64) * tps
    # Phase of the tone in absolute time, exact in integers (2^32 ticks per second).
    basis = np.exp(-2j * np.pi * ((TIME_TONE_HZ * (ticks % 2**32)) % 2**32) / 2**32)
    lags = []
    for key in keys:
        phase = np.angle(np.dot(arrays[key], basis) * 1j)  # sin -> 0 rad when aligned
        lags.append(phase / (2 * np.pi * TIME_TONE_HZ) * rate)
    assert max(lags) - min(lags) < 1.0, lags  # the same phase within one sample
    assert max(abs(lag) for lag in lags) < 1.0, lags  # and the phase PTP time gives it


def test_calibrator_reads_94_db_spl(capture: Path) -> None:
    with Capture.open(capture) as cap:
        mics = [c for c in cap.channels if c.channel == CALIBRATOR_CHANNEL]
        assert [c.unit for c in mics] == ["Pa"] * 3
        for mic in mics:
            pa = cap.read(mic.key)
            level = 20 * np.log10(np.sqrt(np.mean(pa**2)) / 20e-6)
            assert level == pytest.approx(94.0, abs=0.2), mic.key


def test_wav_and_hdf5_read_back_equal(capture: Path, tmp_path: Path) -> None:
    with Capture.open(capture) as cap:
        arrays = cap.arrays(dtype=np.float32)
        wavs = export(cap, "wav", tmp_path / "wav").paths
        (h5path,) = export(cap, "hdf5", tmp_path / "e2e.h5").paths
        for number, path in enumerate(wavs, start=1):
            frames, rate = soundfile.read(path, dtype="float32")
            keys = cap.modules[number].channels
            assert rate == cap.channel(keys[0]).sample_rate
            for j, key in enumerate(keys):
                # Files span the whole capture: a module stopped earlier is padded with zeros.
                n = len(arrays[key])
                assert np.array_equal(frames[:n, j], arrays[key]), key
                assert not frames[n:, j].any()
        with h5py.File(h5path, "r") as h5:
            for ch in cap.channels:
                ds = h5[f"module{ch.module}/channel{ch.channel}"]
                assert np.array_equal(ds[:], arrays[ch.key]), ch.key
                assert ds.attrs["unit"] == ch.unit


def _message_ends(data: bytes) -> list[int]:
    ends, pos = [], 0
    while pos + HEADER_SIZE <= len(data):
        pos += HEADER_SIZE + parse_header(data, pos)[3]
        ends.append(pos)
    return ends


@pytest.mark.parametrize("fraction", [0.0001, 0.37, 0.5, 0.999999])
def test_a_file_cut_at_any_byte(capture: Path, tmp_path: Path, fraction: float) -> None:
    folder = tmp_path / "cut"
    shutil.copytree(capture, folder)
    path = folder / "e2e.2.stream"
    data = path.read_bytes()
    cut = max(1, int(len(data) * fraction))
    path.write_bytes(data[:cut])
    complete = max([0] + [e for e in _message_ends(data) if e <= cut])
    with Capture.open(capture) as full, Capture.open(folder) as part:
        sf = next(f for f in part.files if f.path.name == "e2e.2.stream")
        assert sf.index.end == complete
        assert sf.index.truncated_bytes == cut - complete
        if cut > complete:
            assert any(
                p.where == "e2e.2.stream" and "incomplete" in p.message for p in part.problems
            )
        for ch in part.channels:
            got = part.read(ch.key)
            assert np.array_equal(got, full.read(ch.key)[: len(got)])
        lost = sum(
            full.channel(k).length - part.channel(k).length for k in part.modules[2].channels
        )
        kept = sum(part.channel(k).length for k in part.modules[2].channels)
        assert kept == sum(
            (e - s - HEADER_SIZE - 8) // 3
            for s, e in zip([0, *_message_ends(data)], _message_ends(data), strict=False)
            if e <= complete and parse_header(data, s)[0] == 1
        )
        assert lost > 0
        report = build_report(part, checksums=True)
        assert report["verdict"] == "errors"
        assert any(f["checksum"] == "mismatch" for f in report["files"])
