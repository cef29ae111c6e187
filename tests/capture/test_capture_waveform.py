"""A waveform file streamed through a generator output during a recording:
``capture --generator-waveform N:OUT:FILE@GAIN`` against an emulated 3160 whose output 1 is
cabled to input 1. The recorded input must be the file's samples (as the client writes them,
stream-format.md §13) × 10 V × GAIN, sample by sample up to the 50 µV noise floor; a file at a
rate the output cannot stream is refused before any generator request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.capture.test_capture_emulated import request_log, run_cli
from tests.streamcheck import check_file
from tests.support.emulator import FAST_EMULATOR as FAST
from webapp.emulator import EmulatedRig
from webapp.emulator.rig import NOISE_FLOOR_VOLTS
from webapp.openapi.outputstream import FULL_SCALE_COUNTS

FS = 131072
TONES = ((1000.0, 0.5), (3000.0, 0.3), (7000.0, 0.15))
"""A multi-sine of whole hertz: it repeats every second."""


@pytest.fixture
def rig() -> Iterator[EmulatedRig]:
    rig = EmulatedRig.start(1, types="3160", **FAST)
    yield rig
    rig.stop()


def multisine(seconds: float) -> np.ndarray:
    t = np.arange(int(FS * seconds)) / FS
    return sum(a * np.sin(2 * np.pi * f * t) for f, a in TONES)


def test_capture_streams_a_waveform_file_through_the_loopback(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    wav = tmp_path / "multisine.wav"
    soundfile.write(wav, multisine(4.0), FS, subtype="FLOAT")
    out = tmp_path / "out"
    result = run_cli(
        rig.addresses[0], "-t", "1", "-o", str(out), "--generator-waveform", f"1:1:{wav}@0.5"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((out / "capture.json").read_text())
    (output,) = meta["modules"][0]["generator"]
    assert output["gain"] == 0.5 and output["inputs"][0]["file"] == str(wav)
    sent = [e for e in rig.modules[0].emulator.requests if e["path"].endswith("generator/output")]
    body = json.loads(sent[0]["body"])  # the module never sees the file's name
    assert body["outputs"][0]["inputs"][0] == {
        "number": 1, "signalType": "stream", "gain": 1.0, "samplingRate": 0,
    }  # fmt: skip

    report = check_file(out / meta["modules"][0]["files"][0]["file"], keep_values=True)
    sig = report.signal(1)
    recorded = (sig.values() * sig.descriptors["scale_factor"] / 2**23)[:FS]
    assert recorded.size == FS
    period = 10.0 * 0.5 * np.rint(multisine(1.0) * FULL_SCALE_COUNTS) / 2**23
    # The file started before the measurement: find where in its 1 s period the recording
    # begins, then every sample must match up to the noise floor.
    lag = int(np.argmax(np.fft.irfft(np.fft.rfft(recorded) * np.conj(np.fft.rfft(period)))))
    residual = recorded - np.roll(period, lag)
    assert np.sqrt(np.mean(residual**2)) < 1.3 * NOISE_FLOOR_VOLTS
    assert np.max(np.abs(residual)) < 8 * NOISE_FLOOR_VOLTS


def test_a_waveform_at_a_rate_the_output_lacks_is_refused_before_any_generator_request(
    rig: EmulatedRig, tmp_path: Path
) -> None:
    wav = tmp_path / "cd.wav"
    soundfile.write(wav, multisine(0.1)[:4410], 44100)
    bad = run_cli(rig.addresses[0], "-o", str(tmp_path / "o"), "--generator-waveform", f"1:1:{wav}")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "streams at 131072, 65536, 32768, 16384 Hz; the waveform is at 44100 Hz" in bad.stdout
    assert not any(e[3].startswith("gen") for e in request_log(rig))
    worse = run_cli(rig.addresses[0], "--generator-waveform", "1:x:y")
    assert worse.returncode == 2 and "N:OUT:FILE[@GAIN]" in worse.stdout
