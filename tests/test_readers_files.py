"""Readers: real Bruker files through rosettasciio, PyMca's .mca, plain HDF5, and clear errors."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from PyMca5 import PyMcaDataDir

from proto.dataset import DatasetError, open_dataset
from training.convert import convert, main
from training.readers import ReaderError, read

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPX = DATA / "bruker_m6_jetstream_example.spx"
BCF = DATA / "bruker_eds_30x30_example.bcf"
MCA = Path(PyMcaDataDir.PYMCA_DATA_DIR) / "XRFSpectrum.mca"
needs_data = pytest.mark.skipif(not SPX.exists() or not BCF.exists(),
                                reason=f"real Bruker test files not found in {DATA}")


@needs_data
def test_m6_spx_calibration_and_times(tmp_path):
    scan = read(SPX)
    assert scan.counts.shape == (1, 1, 4096)
    assert scan.grid.offset == pytest.approx(-0.9555, abs=1e-4)
    assert scan.grid.gain == pytest.approx(0.009999, rel=1e-6)
    assert scan.live_time_s[0, 0] == pytest.approx(28.05, abs=0.01)
    assert scan.real_time_s[0, 0] == pytest.approx(30.0)
    assert scan.instrument["detector"] == "XFlash 430"
    out = convert(SPX, tmp_path / "spx.h5")
    with open_dataset(out) as ds:
        assert ds.shape == (1, 1, 4096) and ds.grid == scan.grid
        np.testing.assert_array_equal(ds.counts[0, 0], scan.counts[0, 0])
        assert ds.scan["converted_from"] == SPX.name


@needs_data
def test_bcf_spectrum_image(tmp_path):
    """A .bcf has no live time: the real time stands in, and the dataset says so."""
    out = convert(BCF, tmp_path / "bcf.h5")
    with open_dataset(out) as ds:
        assert ds.shape == (30, 30, 2048)
        assert ds.grid.gain == pytest.approx(0.01, rel=1e-3)
        assert ds.counts[...].sum() > 0
        np.testing.assert_allclose(ds.live_time_s, 70.07298 / 900, rtol=1e-5)
        np.testing.assert_array_equal(ds.live_time_s, ds.real_time_s)
        assert any("live time not in the .bcf" in w for w in ds.scan["warnings"])
        assert ds.scan["live_time_source"].startswith("real time")


@needs_data
@pytest.mark.parametrize("source", [SPX, BCF], ids=["spx", "bcf"])
def test_truncated_bruker_files_name_the_file(tmp_path, source):
    bad = tmp_path / f"cut{source.suffix}"
    data = source.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReaderError, match=f"cut\\{source.suffix}"):
        read(bad)
    garbage = tmp_path / f"junk{source.suffix}"
    garbage.write_bytes(b"\x00\x01garbage" * 64)
    with pytest.raises(ReaderError, match="junk"):
        read(garbage)


def test_pymca_mca_single_spectrum(tmp_path):
    scan = read(MCA)
    assert scan.counts.shape == (1, 1, 4096) and scan.grid is None
    assert scan.counts.sum() > 1e6 and scan.live_time_s is None  # no time in the file
    with pytest.raises(ReaderError, match="no energy calibration"):
        convert(MCA, tmp_path / "m.h5")
    with pytest.raises(ReaderError, match="no live time: pass --live-time"):
        convert(MCA, tmp_path / "m.h5", offset=0.0, gain=0.005)
    assert main([str(MCA), str(tmp_path / "m.h5"), "--offset", "0", "--gain", "0.005",
                 "--live-time", "100"]) == 0
    with open_dataset(tmp_path / "m.h5") as ds:
        assert ds.shape == (1, 1, 4096) and ds.grid.gain == 0.005
        assert ds.live_time_s[0, 0] == 100


def test_mca_with_calibration_header(tmp_path):
    path = tmp_path / "two.mca"
    lines = ["#F two.mca", "#S 1 test", "#@MCA %16C", "#@CHANN 8 0 7 1",
             "#@CALIB -0.5 0.02 0", "#@CTIME 10 9.5 10"]
    for value in (3, 5):
        lines.append("@A " + " ".join(str(value * i) for i in range(8)))
    path.write_text("\n".join(lines) + "\n")
    scan = read(path)
    assert scan.counts.shape == (1, 2, 8)
    assert scan.grid.offset == -0.5 and scan.grid.gain == 0.02
    assert scan.live_time_s[0, 1] == 9.5 and scan.real_time_s[0, 0] == 10
    np.testing.assert_array_equal(scan.counts[0, 1], 5 * np.arange(8))


def test_plain_hdf5_cube_and_list(tmp_path):
    cube = np.random.default_rng(0).poisson(2, (3, 4, 64)).astype(np.int32)
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("entry/spectra", data=cube)
        d.attrs["calibration"] = [0.1, 0.02]
        f.create_dataset("entry/live_time", data=np.full((3, 4), 0.5))
        f.attrs["real_time_s"] = 0.6
    out = convert(path, tmp_path / "out.h5")
    with open_dataset(out) as ds:
        assert ds.shape == (3, 4, 64) and ds.grid.offset == 0.1 and ds.grid.gain == 0.02
        np.testing.assert_array_equal(ds.counts[...], cube)
        assert ds.live_time_s[2, 3] == 0.5 and ds.real_time_s[0, 0] == pytest.approx(0.6)
    # (N, C) list of spectra with offset/gain attributes -> one row; our own format passes through
    with h5py.File(path, "w") as f:
        d = f.create_dataset("counts", data=cube.reshape(12, 64).astype(np.float64))
        d.attrs["offset"], d.attrs["gain"] = 0.0, 0.01
    assert read(path).counts.shape == (1, 12, 64)
    assert read(out).counts.shape == (3, 4, 64)


def test_bad_inputs_are_refused(tmp_path):
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ReaderError, match="unsupported extension"):
        read(tmp_path / "x.txt")
    with pytest.raises(ReaderError, match="no such file"):
        read(tmp_path / "missing.spx")
    frac = tmp_path / "frac.h5"
    with h5py.File(frac, "w") as f:
        f.create_dataset("counts", data=np.full((2, 8), 0.5))
    with pytest.raises(ReaderError, match="whole numbers"):
        read(frac)
    cut = tmp_path / "cut.h5"
    with h5py.File(tmp_path / "ok.h5", "w") as f:
        f.create_dataset("counts", data=np.ones((50, 50, 64), np.uint16))
    data = (tmp_path / "ok.h5").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.h5"):
        read(cut)
