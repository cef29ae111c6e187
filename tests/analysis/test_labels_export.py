"""Channel names, points and directions and the test metadata, read back from every export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from webapp.analysis.export import export
from webapp.analysis.reader import Capture

LABELS = [
    {"module": 1, "channel": 1, "name": "Driver's ear", "point": "cabin:7", "direction": "",
     "group": "acoustics", "note": "B&K 4189"},
    {"module": 1, "channel": 2, "name": "Gearbox 1X+", "point": "gearbox:1", "direction": "+X",
     "group": "gearbox", "note": ""},
    {"module": 2, "channel": 3, "name": "Mount −Z", "point": "mount:12", "direction": "-Z",
     "group": "", "note": "rear left"},
]  # fmt: skip
TEST = {"object": "Car 7", "operator": "Ada", "notes": "road, 80 km/h\nwindows closed",
        "tags": ["nvh", "road"]}  # fmt: skip


@pytest.fixture
def labelled(clean_capture: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "labelled"
    shutil.copytree(clean_capture, folder)
    meta = json.loads((folder / "capture.json").read_text())
    meta.update(channels=LABELS, test=TEST, title="Run 3, second gear")
    (folder / "capture.json").write_text(json.dumps(meta))
    return folder


def test_reader_takes_labels_and_leaves_unlabelled_channels_alone(labelled: Path) -> None:
    with Capture.open(labelled) as cap:
        assert cap.title == "Run 3, second gear"
        assert cap.test == TEST
        gear = cap.channel("m1-ch2").metadata()
        assert (gear["name"], gear["point"], gear["direction"]) == (
            "Gearbox 1X+",
            "gearbox:1",
            "+X",
        )
        assert gear["dof"] == "gearbox:1:+X"
        assert cap.channel("m1-ch1").metadata()["dof"] == "cabin:7"  # a scalar: no direction
        plain = cap.channel("m2-ch1").metadata()
        assert plain["name"] == "Channel 1" and plain["dof"] == "" and plain["point"] == ""


def test_uff58_carries_points_and_directions(labelled: Path, tmp_path: Path) -> None:
    import pyuff

    with Capture.open(labelled) as cap:
        arrays = cap.arrays()
        export(cap, "uff", tmp_path / "c.uff")
    sets = {s["id1"].split()[-1]: s for s in pyuff.UFF(str(tmp_path / "c.uff")).read_sets()}
    mic, gear, plain, mount = sets["m1-ch1"], sets["m1-ch2"], sets["m2-ch1"], sets["m2-ch3"]
    assert (mic["rsp_ent_name"], mic["rsp_node"], mic["rsp_dir"]) == ("cabin", 7, 0)
    assert (gear["rsp_ent_name"], gear["rsp_node"], gear["rsp_dir"]) == ("gearbox", 1, 1)
    assert (mount["rsp_ent_name"], mount["rsp_node"], mount["rsp_dir"]) == ("mount", 12, -3)
    assert (plain["rsp_ent_name"], plain["rsp_node"], plain["rsp_dir"]) == ("M2", 1, 0)
    assert gear["id1"].startswith("Run 3, second gear")
    assert gear["id2"].startswith("Gearbox 1X+;")
    assert np.array_equal(gear["data"], arrays["m1-ch2"])


def test_hdf5_attributes(labelled: Path, tmp_path: Path) -> None:
    import h5py

    with Capture.open(labelled) as cap:
        export(cap, "hdf5", tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5") as h5:
        assert h5.attrs["title"] == "Run 3, second gear"
        assert h5.attrs["test_object"] == "Car 7" and h5.attrs["test_operator"] == "Ada"
        assert h5.attrs["test_notes"] == TEST["notes"]
        assert json.loads(h5.attrs["test_tags"]) == ["nvh", "road"]
        mount = h5["module2/channel3"].attrs
        assert mount["name"] == "Mount −Z" and mount["dof"] == "mount:12:-Z"
        assert (mount["point"], mount["direction"], mount["note"]) == (
            "mount:12",
            "-Z",
            "rear left",
        )
        assert h5["module1/channel1"].attrs["group"] == "acoustics"


def test_mat_fields(labelled: Path, tmp_path: Path) -> None:
    import scipy.io

    with Capture.open(labelled) as cap:
        export(cap, "mat", tmp_path / "c.mat")
    mat = scipy.io.loadmat(tmp_path / "c.mat", simplify_cells=True)
    gear = mat["m1_ch2"]
    assert (gear["name"], gear["point"], gear["direction"], gear["dof"]) == (
        "Gearbox 1X+", "gearbox:1", "+X", "gearbox:1:+X")  # fmt: skip
    assert gear["group"] == "gearbox"
    info = mat["capture"]
    assert info["title"] == "Run 3, second gear" and info["test_object"] == "Car 7"
    assert list(info["tags"]) == ["nvh", "road"]


def test_wav_names_its_channels(labelled: Path, tmp_path: Path) -> None:
    import soundfile

    with Capture.open(labelled) as cap:
        result = export(cap, "wav", tmp_path, per="module")
    with soundfile.SoundFile(result.paths[0]) as wav:
        assert wav.title == "Run 3, second gear"
        assert wav.comment == (
            "1: Driver's ear (m1-ch1, cabin:7, Pa); 2: Gearbox 1X+ (m1-ch2, gearbox:1:+X, V)"
        )


def test_an_unlabelled_capture_exports_as_before(clean_capture: Path, tmp_path: Path) -> None:
    import pyuff

    with Capture.open(clean_capture) as cap:
        assert cap.title == cap.name and cap.test["tags"] == []
        export(cap, "uff", tmp_path / "c.uff")
    first = pyuff.UFF(str(tmp_path / "c.uff")).read_sets()[0]
    assert (first["rsp_ent_name"], first["rsp_node"], first["rsp_dir"]) == ("M1", 1, 0)
