"""Formats tested with files the tests write: a folder of Amptek PMCA .mca pixels (live time,
LIVE_TIME 0, grids), Bruker RPL/RAW through rosettasciio's ripple writer, and plain HDF5
with axis order, detector and time-dataset options."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from rsciio.ripple import file_writer as ripple_writer

from proto.dataset import open_dataset
from training.convert import convert, main
from training.readers import ReaderError, read

CAL = (0.0, 0.01)  # keV offset, gain of the written PMCA files
M6_TOML = Path(__file__).resolve().parents[1] / "training" / "instruments" / "m6_jetstream.toml"


def write_pmca(path, counts, live, real, calibration=CAL):
    """An Amptek PMCA file as DppMCA writes it (header, 2-point calibration, data, status)."""
    offset, gain = calibration
    lines = ["<<PMCA SPECTRUM>>", "TAG - live_data", "DESCRIPTION - test", "GAIN - 2",
             "THRESHOLD - 0", "LIVE_MODE - 0", "PRESET_TIME - 1",
             f"LIVE_TIME - {live}", f"REAL_TIME - {real}", "START_TIME - 01/01/2024 10:00:00",
             "SERIAL_NUMBER - 1234", "<<CALIBRATION>>", "LABEL - keV",
             f"100 {offset + 100 * gain:.6f}", f"900 {offset + 900 * gain:.6f}", "<<DATA>>",
             *(str(int(v)) for v in counts), "<<END>>", "<<DPP STATUS>>", "Fast Count: 1000",
             "Slow Count: 900", "<<DPP STATUS END>>"]
    path.write_text("\r\n".join(lines) + "\r\n")


@pytest.fixture
def pmca_folder(tmp_path):
    """6 pixels (a 3 x 2 grid); pixel 4 has LIVE_TIME 0 (the DPP did not report it)."""
    folder = tmp_path / "scan"
    folder.mkdir()
    spectra = np.random.default_rng(0).poisson(3, (6, 256))
    for i, counts in enumerate(spectra):
        write_pmca(folder / f"pixel_{i + 1}.mca", counts, 0 if i == 4 else 0.9 + 0.01 * i, 1.0)
    (folder / "notes.txt").write_text("not a spectrum")
    return folder, spectra


def test_pmca_folder_grid_and_live_time(pmca_folder, tmp_path, capsys):
    folder, spectra = pmca_folder
    scan = read(folder, grid="3x2")
    assert scan.counts.shape == (2, 3, 256)
    np.testing.assert_array_equal(scan.counts.reshape(6, 256), spectra)  # natural order
    assert scan.grid.gain == pytest.approx(0.01) and scan.grid.offset == pytest.approx(0.0)
    live = scan.live_time_s.reshape(-1)
    np.testing.assert_allclose(live[[0, 1, 5]], [0.9, 0.91, 0.95], rtol=1e-6)
    assert live[4] == 1.0 and (scan.real_time_s == 1.0).all()  # LIVE_TIME 0 -> real time
    assert scan.scan["live_time_fallback_pixels"] == 1
    assert "1 of 6 pixels had LIVE_TIME 0" in scan.warnings[0]
    assert read(folder, grid="3").counts.shape == (2, 3, 256)  # height from the count
    assert read(folder).counts.shape == (1, 6, 256)  # no grid: one row, and it says so
    assert main([str(folder), str(tmp_path / "s.h5"), "--grid", "3x2"]) == 0
    assert "LIVE_TIME 0" in capsys.readouterr().out
    with open_dataset(tmp_path / "s.h5") as ds:
        assert ds.shape == (2, 3, 256) and ds.live_time_s[1, 1] == 1.0
        assert "LIVE_TIME 0" in ds.scan["warnings"][0]


def test_pmca_folder_refusals(pmca_folder, tmp_path):
    folder, spectra = pmca_folder
    with pytest.raises(ReaderError, match=r"6 \.mca files do not fill a 4 x 2 grid"):
        read(folder, grid="4x2")
    with pytest.raises(ReaderError, match="not WxH"):
        read(folder, grid="3 by 2")
    write_pmca(folder / "pixel_7.mca", spectra[0], 0.9, 1.0, calibration=(0.1, 0.01))
    with pytest.raises(ReaderError, match=r"pixel_7\.mca: calibration .* differs"):
        read(folder)
    write_pmca(folder / "pixel_7.mca", spectra[0][:128], 0.9, 1.0)
    with pytest.raises(ReaderError, match="different channel counts"):
        read(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReaderError, match=r"no \.mca files"):
        read(tmp_path / "empty")
    with pytest.raises(ReaderError, match="does not take that option"):
        read(folder / "pixel_1.mca", grid="3x2")


def test_single_pmca_honours_its_times(tmp_path):
    counts = np.arange(64) % 7
    write_pmca(tmp_path / "a.mca", counts, 8.5, 10.0)
    scan = read(tmp_path / "a.mca")
    assert scan.live_time_s[0, 0] == 8.5 and scan.real_time_s[0, 0] == 10.0
    assert scan.scan["live_time_source"] == "Amptek LIVE_TIME" and not scan.warnings
    write_pmca(tmp_path / "b.mca", counts, 0, 10.0)
    scan = read(tmp_path / "b.mca")
    assert scan.live_time_s[0, 0] == 10.0 and "real time" in scan.warnings[0]
    write_pmca(tmp_path / "c.mca", counts, 11.0, 10.0)
    with pytest.raises(ReaderError, match=r"live time 11\.0 s exceeds real time"):
        read(tmp_path / "c.mca")


def _rpl(tmp_path, name, data, *, offset, live):
    """A ripple pair written by rosettasciio (HyperSpy keys: offset, scale, live time)."""
    axes = [{"name": n, "size": size, "scale": 1, "offset": 0, "units": "mm", "navigate": True}
            for n, size in (("height", data.shape[0]), ("width", data.shape[1]))]
    axes.append({"name": "Energy", "size": data.shape[2], "scale": 0.01, "offset": offset,
                 "units": "keV", "navigate": False})
    meta = {"General": {"title": name}, "Signal": {"signal_type": "EDS_SEM"},
            "Acquisition_instrument": {"SEM": {"Detector": {"EDS": {"live_time": live}}}}}
    path = tmp_path / f"{name}.rpl"
    ripple_writer(str(path), {"data": data, "axes": axes, "metadata": meta,
                              "original_metadata": {}})
    return path


def _bruker_rpl(tmp_path, name, data):
    """A bare Lispix pair as a Bruker export writes it: layout and eV/channel, no offset."""
    h, w, c = data.shape
    keys = {"width": w, "height": h, "depth": c, "offset": 0, "data-length": 2,
            "data-type": "unsigned", "byte-order": "little-endian", "record-by": "vector",
            "ev-per-chan": 10}
    path = tmp_path / f"{name}.rpl"
    path.write_text("key\tvalue\n" + "".join(f"{k}\t{v}\n" for k, v in keys.items()))
    data.astype("<u2").tofile(tmp_path / f"{name}.raw")
    return path


def test_bruker_rpl_raw(tmp_path):
    data = np.random.default_rng(1).poisson(2, (3, 4, 128)).astype(np.uint16)
    path = _rpl(tmp_path, "full", data, offset=-0.95, live=0.1)
    scan = read(path)
    np.testing.assert_array_equal(scan.counts, data)
    assert scan.grid.offset == pytest.approx(-0.95) and scan.grid.gain == pytest.approx(0.01)
    assert (scan.live_time_s == np.float32(0.1)).all() and scan.real_time_s is None
    out = convert(path, tmp_path / "full.h5")
    with open_dataset(out) as ds:
        assert ds.shape == (3, 4, 128) and "real time not in file" in ds.scan["warnings"][0]
    bare = _bruker_rpl(tmp_path, "bare", data[:1])  # one row: rsciio squeezes it away
    scan = read(bare)
    assert scan.counts.shape == (1, 4, 128) and scan.grid is None
    assert scan.scan["calibration_source"] == "10 eV/channel, no offset in file"
    with pytest.raises(ReaderError, match="no live time"):
        convert(bare, tmp_path / "bare.h5", offset=0.0, gain=0.01)
    out = convert(bare, tmp_path / "bare.h5", offset=0.0, gain=0.01, live_time_s=0.05)
    with open_dataset(out) as ds:
        assert ds.live_time_s[0, 0] == pytest.approx(0.05)
    with pytest.raises(ReaderError, match="description's is for 4096 channels, not 128"):
        convert(bare, tmp_path / "m6.h5", instrument=M6_TOML, live_time_s=0.05)
    m6_export = _bruker_rpl(tmp_path, "m6", np.ones((2, 3, 4096), np.uint16))
    out = convert(m6_export, tmp_path / "m6.h5", instrument=M6_TOML, live_time_s=0.05)
    with open_dataset(out) as ds:  # an M6 export: calibration from the M6's description
        assert ds.grid.offset == pytest.approx(-0.95550444) and ds.grid.gain == 0.009999
        assert ds.scan["calibration_source"] == "instrument description"
        assert ds.instrument["description"]["name"] == "M6 Jetstream"


def test_hdf5_options_axes_detectors_times(tmp_path):
    rng = np.random.default_rng(2)
    cube = rng.poisson(3, (2, 64, 5, 4)).astype(np.int32)  # (detector, channel, y, x)
    path = tmp_path / "beamline.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("entry/instrument/mca", data=cube)
        d.attrs["offset"], d.attrs["gain"] = -0.01, 0.02
        f["entry/other"] = np.zeros((10, 10, 10), np.int32)  # larger: must not be picked
        f["entry/elt"] = np.full((2, 5, 4), 0.8)
        f["entry/ert"] = np.full((5, 4), 1.0)  # shared by the detectors
    with pytest.raises(ReaderError, match="axes 'yxc' do not describe a 4-D cube"):
        read(path, dataset="entry/instrument/mca", axes="yxc")
    scan = read(path, dataset="entry/instrument/mca", axes="dcyx", live_time="entry/elt",
                real_time="entry/ert")
    assert scan.counts.shape == (2, 5, 4, 64) and scan.detector_names == ("0", "1")
    np.testing.assert_array_equal(scan.counts[1, 3, 2], cube[1, :, 3, 2])
    assert scan.live_time_s.shape == (2, 5, 4) and (scan.real_time_s == 1.0).all()
    assert main([str(path), str(tmp_path / "o.h5"), "--dataset", "entry/instrument/mca",
                 "--axes", "dcyx", "--live-time-dataset", "entry/elt",
                 "--real-time-dataset", "entry/ert", "--detector", "1"]) == 0
    with open_dataset(tmp_path / "o.h5") as ds:
        np.testing.assert_array_equal(ds.counts[...], np.moveaxis(cube[1], 0, -1))
        assert ds.grid.offset == -0.01 and ds.live_time_s[0, 0] == pytest.approx(0.8)
    with pytest.raises(ReaderError, match="no dataset or attribute 'entry/lt'"):
        read(path, dataset="entry/instrument/mca", axes="dcyx", live_time="entry/lt")
    assert main([str(path), str(tmp_path / "x.h5"), "--axes", "cyx"]) == 2  # 4-D, refused
