"""Exports read back with the libraries other tools use equal the reader's arrays."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import soundfile

from tests.analysis.helpers import RATE
from webapp.analysis import export_csv
from webapp.analysis.export import export
from webapp.analysis.export_common import ExportError
from webapp.analysis.reader import Capture


def test_wav_per_module_and_per_channel(faulty_capture: Path, tmp_path: Path) -> None:
    with Capture.open(faulty_capture) as cap:
        arrays = cap.arrays(dtype=np.float32)
        t0, _t1 = cap.span()
        result = export(cap, "wav", tmp_path / "mod")
        assert [p.name for p in result.paths] == ["faulty.m1.wav", "faulty.m2.wav"]
        # Every file spans the whole capture, so frame i is the same instant in each of them.
        m1, fs = soundfile.read(tmp_path / "mod/faulty.m1.wav", dtype="float32")
        assert fs == RATE and m1.shape == (14 * 4096, 2)
        assert np.array_equal(m1[: 12 * 4096, 0], np.nan_to_num(arrays["m1-ch1"]))
        # Module 1's channel 2 lost its last block to the cut: zeros pad it to the file length.
        assert np.array_equal(m1[: 11 * 4096, 1], np.nan_to_num(arrays["m1-ch2"]))
        assert not m1[11 * 4096 :, 1].any() and not m1[12 * 4096 :, 0].any()
        m2, _ = soundfile.read(tmp_path / "mod/faulty.m2.wav", dtype="float32")
        assert m2.shape == (14 * 4096, 2)
        assert np.array_equal(m2[4096:, 1], arrays["m2-ch3"]) and not m2[:4096].any()
        assert result.filled == (2 + 2 + 3 + 2) * 4096 + 2 * 4096

        export(cap, "wav", tmp_path / "one.wav", per="channel", keys=["m2-ch1"], trim=True)
        one, _ = soundfile.read(tmp_path / "one.wav", dtype="float32")
        assert np.array_equal(one, cap.arrays(trim=True, dtype=np.float32)["m2-ch1"])
        with pytest.raises(ExportError, match="give a folder"):
            export(cap, "wav", tmp_path / "two.wav", per="channel")
        assert t0 == cap.channel("m1-ch1").start_ticks


def test_hdf5_datasets_attributes_and_quality(faulty_capture: Path, tmp_path: Path) -> None:
    with Capture.open(faulty_capture) as cap:
        arrays = cap.arrays(dtype=np.float32)
        (path,) = export(cap, "hdf5", tmp_path).paths
        assert path.name == "faulty.h5"
        with h5py.File(path) as h5:
            assert h5.attrs["capture_id"] == cap.id
            for ch in cap.channels:
                ds = h5[f"module{ch.module}/channel{ch.channel}"]
                assert ds.dtype == np.float32
                assert np.array_equal(ds[:], arrays[ch.key], equal_nan=True)
                assert ds.attrs["unit"] == ch.unit
                assert ds.attrs["sample_rate"] == RATE
                assert int(ds.attrs["start_ticks"]) == ch.start_ticks
                assert ds.attrs["module_type"] == cap.modules[ch.module].type
            mic = h5["module1/channel1"].attrs
            assert mic["transducer_type"] == "4189" and mic["transducer_sensitivity"] == 0.05
            quality = h5["module1/channel1_quality"][:]
            assert quality["sample"].tolist() == [2 * 4096, 4 * 4096, 7 * 4096, 8 * 4096]
            assert quality["overload"].tolist() == [True, False, False, False]
            assert quality["overrun"].tolist() == [False, False, True, False]
            gaps = h5["module1/channel1_gaps"][:]
            assert gaps["sample"].tolist() == [5 * 4096] and gaps["missing"].tolist() == [8192]
            assert h5["module1"].attrs["name"] == "BK3160-100001"


def test_hdf5_trimmed_span(faulty_capture: Path, tmp_path: Path) -> None:
    with Capture.open(faulty_capture) as cap:
        trimmed = cap.arrays(trim=True, dtype=np.float32)
        start, _ = cap.span(trim=True)
        export(cap, "hdf5", tmp_path / "t.h5", trim=True)
    with h5py.File(tmp_path / "t.h5") as h5:
        for key, values in trimmed.items():
            module, channel = key[1:].split("-ch")
            ds = h5[f"module{module}/channel{channel}"]
            assert np.array_equal(ds[:], values, equal_nan=True)
            assert int(ds.attrs["start_ticks"]) == start
        # The overload was already on at the common start (block 1 of module 1): row at 0.
        assert h5["module1/channel1_quality"]["sample"].tolist()[0] == 4096


def test_mat_structs(clean_capture: Path, tmp_path: Path) -> None:
    with Capture.open(clean_capture) as cap:
        arrays = cap.arrays()
        export(cap, "mat", tmp_path / "c.mat")
    mat = scipy.io.loadmat(tmp_path / "c.mat", simplify_cells=True)
    assert np.array_equal(mat["m1_ch1"]["data"], arrays["m1-ch1"])
    assert mat["m1_ch1"]["unit"] == "Pa" and mat["m1_ch1"]["fs"] == RATE
    assert np.array_equal(mat["m2_ch3"]["data"], arrays["m2-ch3"])
    assert list(mat["capture"]["channels"]) == ["m1_ch1", "m1_ch2", "m2_ch1", "m2_ch3"]


def test_csv_short_capture_and_refusal(faulty_capture: Path, tmp_path: Path, monkeypatch) -> None:
    with Capture.open(faulty_capture) as cap:
        arrays = cap.arrays()
        export(cap, "csv", tmp_path / "c.csv", keys=["m1-ch1", "m2-ch1"])
        with open(tmp_path / "c.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[1] == ["time_s", "m1-ch1 [Pa]", "m2-ch1 [V]"]
        body = rows[2:]
        assert len(body) == 14 * 4096
        col = np.array([float(r[1]) if r[1] else np.nan for r in body])
        assert np.allclose(col[: 12 * 4096], arrays["m1-ch1"], rtol=1e-8, equal_nan=True)
        assert body[5 * 4096][1] == ""  # a lost sample is an empty cell
        assert body[0][2] == ""  # module 2 starts a block later
        assert float(body[4096][0]) == pytest.approx(4096 / RATE)
        monkeypatch.setattr(export_csv, "CSV_MAX_VALUES", 1000)
        with pytest.raises(ExportError, match="CSV is for short captures"):
            export(cap, "csv", tmp_path / "big.csv")
        export(cap, "csv", tmp_path / "cut.csv", start_s=0.25, duration_s=150 / RATE)
        assert len((tmp_path / "cut.csv").read_text().splitlines()) == 2 + 150


def test_uff58(clean_capture: Path, tmp_path: Path) -> None:
    import pyuff

    with Capture.open(clean_capture) as cap:
        arrays = cap.arrays()
        export(cap, "uff", tmp_path / "c.uff")
    sets = pyuff.UFF(str(tmp_path / "c.uff")).read_sets()
    assert len(sets) == 4
    mic = sets[0]
    assert mic["func_type"] == 1 and mic["ordinate_axis_units_lab"] == "Pa"
    assert mic["rsp_node"] == 1
    assert np.array_equal(mic["data"], arrays["m1-ch1"])
    assert mic["x"][1] == pytest.approx(1 / RATE)


def test_unknown_format_and_empty_span(clean_capture: Path, tmp_path: Path) -> None:
    with Capture.open(clean_capture) as cap:
        with pytest.raises(ExportError, match="unknown format"):
            export(cap, "xls", tmp_path)
        with pytest.raises(ExportError, match="no samples"):
            export(cap, "hdf5", tmp_path, start_s=10.0)
