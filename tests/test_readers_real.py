"""Real multi-detector files: the IXRF ATLAS GeoPIXE export (two detectors, per-pixel dead
time) and the APS 2-ID-E MAPS fly scan (four detectors, channels first), read and converted
with their instrument descriptions."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from proto.dataset import DatasetError, open_dataset
from proto.instrument import load
from training.convert import convert, main
from training.readers import ReaderError, read

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
IXRF = DATA / "ixrf_atlas"
GEOPIXE = IXRF / "ts2_01_sub_export.GeoPIXE"
APS = DATA / "aps_2ide" / "2xfm_0011_2xfm3__0.h5"
INSTRUMENTS = ROOT / "training" / "instruments"
needs_ixrf = pytest.mark.skipif(not GEOPIXE.exists(), reason="IXRF data not found")
needs_aps = pytest.mark.skipif(not APS.exists(), reason="APS data not found")


def _pxstats(name):
    return np.loadtxt(IXRF / f"pxstats_{name}.txt", delimiter=",")


@needs_ixrf
def test_ixrf_geopixe_two_detectors_with_dead_time():
    scan = read(GEOPIXE)
    assert scan.counts.shape == (2, 10, 20, 4096) and scan.detector_names == ("det0", "det1")
    assert (scan.grid.offset, scan.grid.gain, scan.grid.channels) == (0.0, 0.01, 4096)
    # the parsed records are the counts the readme's .npy holds (pixel, detector, channel)
    npy = np.load(IXRF / "ts2_01_sub_export_data.npy")
    np.testing.assert_array_equal(scan.counts.reshape(2, 200, 4096).transpose(1, 0, 2), npy)
    # live = 100 ms dwell x (1 - dead time %), per pixel and detector, as pxstats lists it
    dead = _pxstats("dt")  # one row per detector
    np.testing.assert_allclose(scan.live_time_s.reshape(2, 200), 0.1 * (1 - dead / 100),
                               rtol=1e-5)
    np.testing.assert_allclose(scan.real_time_s, 0.1)
    assert scan.instrument["anode"] == "Mo" and scan.instrument["voltage_kv"] == 50.0


@needs_ixrf
def test_ixrf_convert_keeps_detectors_apart(tmp_path, capsys):
    toml = INSTRUMENTS / "ixrf_atlas.toml"
    assert main([str(GEOPIXE), str(tmp_path / "all.h5"), "--instrument", str(toml)]) == 0
    assert "detectors ['det0', 'det1'] (sum in counts)" in capsys.readouterr().out
    scan = read(GEOPIXE)
    with open_dataset(tmp_path / "all.h5", verify=True) as ds:
        assert ds.shape == (10, 20, 4096)
        np.testing.assert_array_equal(ds.counts[...], scan.counts.sum(axis=0))
        np.testing.assert_allclose(ds.live_time_s, scan.live_time_s.mean(axis=0), rtol=1e-6)
        det = ds.detectors
        assert det.names == ["det0", "det1"] and det.combined == "sum"
        np.testing.assert_array_equal(det.counts[1], scan.counts[1])
        np.testing.assert_array_equal(det.live_time_s, scan.live_time_s)
        desc = ds.instrument["description"]
        assert desc["detector"]["combine"] == "sum" and desc["detector"]["count"] == 2
        assert ds.instrument["fingerprint"] != load(toml).fingerprint()  # 2 elements summed
    one = convert(GEOPIXE, tmp_path / "one.h5", instrument=toml, detector="det1")
    with open_dataset(one) as ds:
        assert ds.detectors is None and ds.scan["detector"] == "det1"
        np.testing.assert_array_equal(ds.counts[...], scan.counts[1])
        np.testing.assert_allclose(ds.live_time_s, scan.live_time_s[1])
        assert ds.instrument["fingerprint"] == load(toml).fingerprint()  # one element
    with open_dataset(convert(GEOPIXE, tmp_path / "sum.h5", detector="sum")) as ds:
        assert ds.detectors is None and ds.scan["detector"] == "sum of det0, det1"
    with pytest.raises(ReaderError, match=r"no detector '2'.*\['det0', 'det1'\]"):
        convert(GEOPIXE, tmp_path / "bad.h5", detector="2")
    assert not (tmp_path / "bad.h5").exists()


@needs_ixrf
def test_truncated_or_foreign_geopixe_refused(tmp_path):
    data = GEOPIXE.read_bytes()
    cut = tmp_path / "cut.GeoPIXE"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ReaderError, match=r"cut\.GeoPIXE: .*(truncated|missing)"):
        read(cut)
    junk = tmp_path / "junk.GeoPIXE"
    junk.write_bytes(b"DP" + bytes(100))
    with pytest.raises(ReaderError, match="no GeoPIXE JSON header"):
        read(junk)


@needs_aps
def test_aps_maps_four_detectors_channels_first():
    scan = read(APS)
    assert scan.counts.shape == (4, 11, 9, 2048)  # not 2048 x 11 x 9
    assert scan.detector_names == ("a", "b", "c", "d")
    assert scan.grid.offset == pytest.approx(-0.0041840752)
    assert scan.grid.gain == pytest.approx(0.0095216077)
    with h5py.File(APS, "r") as f:
        raw = f["MAPS_RAW"]
        np.testing.assert_array_equal(scan.counts[2, 5, 7], raw["data_c"][:, 5, 7])
        real, icr, ocr = (raw[k][...] for k in ("realtime", "inputcounts", "ouputcounts"))
    # XRF-Maps' live time: real time x output / input counts, per detector and pixel
    np.testing.assert_allclose(scan.live_time_s, real * ocr / icr, rtol=1e-6)
    assert (scan.live_time_s < scan.real_time_s).all()
    assert scan.instrument["beam_energy_kev"] == 10.0


@needs_aps
def test_aps_convert(tmp_path):
    out = convert(APS, tmp_path / "aps.h5", instrument=INSTRUMENTS / "aps_2ide.toml")
    with open_dataset(out, verify=True) as ds:
        assert ds.shape == (11, 9, 2048) and ds.detectors.names == ["a", "b", "c", "d"]
        assert ds.detectors.counts.shape == (4, 11, 9, 2048)
        assert ds.instrument["description"]["excitation"]["kind"] == "monochromatic"
        assert ds.scan["calibration_source"] == "maps_fit_parameters_override.txt"
        live = ds.live_time_s
        assert live.min() > 0.49 and live.max() < 1.22
    b = convert(APS, tmp_path / "b.h5", detector=1)
    with open_dataset(b) as ds:
        assert ds.shape == (11, 9, 2048) and ds.scan["detector"] == "b"


def test_maps_without_calibration_file(tmp_path):
    """A MAPS file with no override file beside it has no calibration: refused without one."""
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        for name in ("a", "b"):
            f[f"MAPS_RAW/data_{name}"] = np.ones((64, 3, 2), np.int16)
        for name in ("livetime", "realtime", "inputcounts", "ouputcounts"):
            f[f"MAPS_RAW/{name}"] = np.full((2, 3, 2), 0.5 if "time" in name else 100.0)
    scan = read(path)
    assert scan.counts.shape == (2, 3, 2, 64) and scan.grid is None
    with pytest.raises(ReaderError, match="no energy calibration"):
        convert(path, tmp_path / "out.h5")
    out = convert(path, tmp_path / "out.h5", offset=0.0, gain=0.01)
    with open_dataset(out) as ds:
        assert ds.shape == (3, 2, 64) and ds.counts[0, 0, 0] == 2


def test_inconsistent_detectors_group_is_refused(tmp_path):
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        for name in ("a", "b"):
            f[f"MAPS_RAW/data_{name}"] = np.ones((64, 3, 2), np.int16)
        for name in ("livetime", "realtime", "inputcounts", "ouputcounts"):
            f[f"MAPS_RAW/{name}"] = np.full((2, 3, 2), 0.5 if "time" in name else 100.0)
    out = convert(path, tmp_path / "out.h5", offset=0.0, gain=0.01)
    with h5py.File(out, "r+") as f:
        del f["detectors/live_time_s"]
        f["detectors/live_time_s"] = np.ones((3, 3, 2), np.float32)
    with pytest.raises(DatasetError, match=r"'detectors/live_time_s' missing or not \(2, 3, 2\)"):
        open_dataset(out)
