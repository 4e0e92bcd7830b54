"""The dataset file contract: round trip, lazy reads, labels and clear errors for bad files."""

import json

import h5py
import numpy as np
import pytest

from proto.dataset import DatasetError, open_dataset, set_labels, write_dataset
from proto.elements import MAP_DEFINITION, MAP_UNITS
from proto.energy import EnergyGrid

GRID = EnergyGrid(-0.9555, 0.01, 256)


def make(tmp_path, h=5, w=7, dtype=np.uint16, **kw):
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, (h, w, GRID.channels)).astype(dtype)
    live = np.full((h, w), 0.09, np.float32)
    real = np.full((h, w), 0.1, np.float32)
    path = write_dataset(tmp_path / "scan.h5", counts, GRID, live, real,
                         instrument={"name": "M6"}, scan={"dwell_s": 0.1}, **kw)
    return path, counts, live, real


def test_round_trip_with_ground_truth(tmp_path):
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    maps = {"Fe": np.ones((5, 7), np.float32), "Pb": np.full((5, 7), 2.5, np.float32)}
    pig = np.zeros((5, 7), np.int16)
    path, counts, live, real = make(
        tmp_path, dtype=np.uint32, photo_rgb=rgb, original_rgb=rgb[..., ::-1].copy(),
        element_maps=maps, pigments=pig, pigment_names=["lead white"])
    with open_dataset(path) as ds:
        assert ds.shape == (5, 7, 256) and ds.grid == GRID
        assert ds.counts.dtype == np.uint32
        np.testing.assert_array_equal(ds.counts[2, 3], counts[2, 3])  # lazy slice
        np.testing.assert_array_equal(ds.counts[...], counts)
        np.testing.assert_array_equal(ds.live_time_s, live)
        np.testing.assert_array_equal(ds.real_time_s, real)
        np.testing.assert_array_equal(ds.photo_rgb, rgb)
        np.testing.assert_array_equal(ds.original_rgb, rgb[..., ::-1])
        assert ds.acquired.all() and ds.status == "complete"
        assert set(ds.element_maps) == {"Fe", "Pb"} and ds.element_maps["Pb"][0, 0] == 2.5
        assert ds.pigment_names == ["lead white"]
        assert ds.instrument == {"name": "M6"} and ds.scan == {"dwell_s": 0.1}
        assert ds.labels is None
        node = ds.file["ground_truth/element_maps"]
        assert node.attrs["units"] == MAP_UNITS and node.attrs["definition"] == MAP_DEFINITION
        assert ds.counts.chunks[2] == 256 and ds.counts.compression == "gzip" and ds.counts.shuffle
        blocks = list(ds.spectra(rows_per_block=2))
        assert [b.shape[0] for _, b in blocks] == [2, 2, 1]


def test_labels_are_stored_and_replaced(tmp_path):
    path, *_ = make(tmp_path)
    set_labels(path, {"Ca": np.ones((5, 7))}, source="pymca", config="[fit]")
    set_labels(path, {"Ca": np.full((5, 7), 3.0), "Fe": np.zeros((5, 7))}, source="pymca 2")
    with open_dataset(path) as ds:
        assert set(ds.labels) == {"Ca", "Fe"} and ds.labels["Ca"][1, 1] == 3.0
        assert ds.file["labels/element_maps"].attrs["source"] == "pymca 2"
    with pytest.raises(ValueError, match="element maps"):
        set_labels(path, {"Ca": np.ones((4, 7))}, source="x")


def test_truncated_file_names_file_and_problem(tmp_path):
    path, *_ = make(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "half.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"half\.h5") as err, open_dataset(bad, verify=True):
        pass
    assert "truncat" in str(err.value) or "corrupt" in str(err.value)


def test_not_hdf5_and_missing(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"hello" * 100)
    with pytest.raises(DatasetError, match=r"junk\.h5"):
        open_dataset(junk)
    with pytest.raises(DatasetError, match="no such file"):
        open_dataset(tmp_path / "nope.h5")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.__delitem__("live_time_s"), "missing dataset 'live_time_s'"),
        (lambda f: f.attrs.__setitem__("gain", -1.0), "bad energy calibration"),
        (lambda f: f.attrs.__setitem__("channels", 128), "calibration says 128 channels"),
        (lambda f: f.attrs.__delitem__("format"), "not a maxrf-dataset"),
        (lambda f: f.attrs.__setitem__("format_version", "9.0"), "unsupported format_version"),
        (lambda f: (f.__delitem__("acquired"), f.create_dataset("acquired", data=np.ones((5, 6)))),
         "'acquired' has shape"),
        (lambda f: (f.__delitem__("counts"),
                    f.create_dataset("counts", data=np.zeros((5, 7, 256)))), "counts dtype"),
        (lambda f: f.create_dataset("ground_truth/element_maps", data=np.zeros((2, 5, 7)))
         .attrs.__setitem__("names", json.dumps(["Fe"])), "ground_truth/element_maps"),
    ],
)
def test_inconsistent_files_are_refused(tmp_path, mutate, message):
    path, *_ = make(tmp_path)
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(DatasetError, match=message) as err:
        open_dataset(path)
    assert "scan.h5" in str(err.value)


def test_write_dataset_checks_inputs(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        write_dataset(tmp_path / "a.h5", np.zeros((2, 2, 256), np.float32), GRID,
                      np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="live_time_s"):
        write_dataset(tmp_path / "a.h5", np.zeros((2, 2, 256), np.uint16), GRID,
                      np.ones((2, 3)), np.ones((2, 2)))
    assert not (tmp_path / "a.h5").exists()


def test_corrupt_chunk_is_caught_by_verify(tmp_path):
    path, *_ = make(tmp_path)
    data = bytearray(path.read_bytes())
    with open_dataset(path) as ds:  # locate the first compressed chunk of the cube
        offset = ds.counts.id.get_chunk_info(0).byte_offset
    data[offset + 8: offset + 64] = b"\xff" * 56
    bad = tmp_path / "flipped.h5"
    bad.write_bytes(bytes(data))
    with open_dataset(bad) as ds:  # metadata intact: opens lazily ...
        assert ds.shape == (5, 7, 256)
    with pytest.raises(DatasetError, match=r"flipped\.h5: corrupt data"):
        open_dataset(bad, verify=True)  # ... and verify decodes every chunk
