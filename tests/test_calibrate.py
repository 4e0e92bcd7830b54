"""`make calibrate` (export.calibrate) end to end on the real IXRF map at test size, and its
parts: the held-out scores and checks (export.calib_eval), the fast-fit-only bundle
(export.calib_bundle), the split and the epoch scaling (export.calib_data).

Test size: the IXRF description with its fit window cut to 3-9.5 keV (Ca, Mn, Fe, Cu: PyMca
configures in about a second instead of tens) and the coarse tube continuum (--quick)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from export import calib_eval as ev
from export.calib_data import LabScan, epochs_for, split_scans
from proto.energy import EnergyGrid

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
IXRF = DATA / "ixrf_atlas" / "ts2_01_sub_export.GeoPIXE"
TOML = ROOT / "training" / "instruments" / "ixrf_atlas.toml"


def _small_toml(tmp_path: Path) -> Path:
    path = tmp_path / "ixrf_small.toml"
    path.write_text(TOML.read_text() + "\n[fit]\nrange_kev = [3.0, 9.5]\n")
    return path


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The command a lab runs, over a models folder that served another instrument."""
    if not IXRF.exists():
        pytest.skip(f"real data not found: {IXRF}")
    from export.calibrate import main
    from export.tiny import write_tiny_bundle
    from proto.identity import identity_map
    from proto.instrument import load

    tmp = tmp_path_factory.mktemp("calibrate")
    m6 = load(ROOT / "training" / "instruments" / "m6_jetstream.toml")
    write_tiny_bundle(tmp / "models" / "elements", "elements", instruments=[identity_map(m6)])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main([str(_small_toml(tmp)), str(IXRF), "--out", str(tmp / "models"),
                     "--detector", "0", "--test-detector", "1", "--quick", "--epochs", "20",
                     "--work", str(tmp / "work")])
    assert code == 0
    summary = json.loads((tmp / "work" / "elements" / "summary.json").read_text())
    return tmp, summary, printed.getvalue()


def test_calibrate_ixrf_end_to_end(calibrated):
    """Detector 0 calibrates, its held-out quarter and detector 1 on the same pixels judge:
    the bundle on disk verifies and states its held-out error against PyMca and ROI."""
    from proto.bundle import load_bundle

    tmp, summary, printed = calibrated
    assert "checks pass" in printed  # the table, then where the bundle went and what it replaced
    assert printed.rstrip().endswith(f"bundle: {tmp / 'models' / 'elements'} (replaces the "
                                     "M6 Jetstream bundle that was there)")
    bundle = load_bundle(tmp / "models" / "elements")
    m = bundle.manifest
    assert m.kind == "elements" and {"Ca", "Mn", "Fe", "Cu"} <= set(m.outputs)
    assert m.grid == EnergyGrid(0.0, 0.01, 4096)  # the stream's grid, fit at refined calib.
    assert m.instruments and m.instruments[0]["name"] == "IXRF ATLAS"
    held = m.metrics["held_out"]
    assert [h["spectra"] for h in held] == [50, 50]  # the last 5 of 20 columns
    own, other = held
    assert "-0.01" in str(round(summary["calibration"]["Zero"], 2))  # PyMca: -11..-13 eV
    for el in ("Fe", "Cu"):
        e = own["elements"][el]
        assert e["signal"] and e[ev.FAST]["pearson_r"] > 0.999
        assert e[ev.FAST]["rel_rmse"] < e[ev.ROI]["rel_rmse"]
        f = other["elements"][el]
        assert ev.FLOOR_GAIN in f and f[ev.RECAL]["rel_rmse"] < 1e-3  # own calib. = PyMca
        assert f[ev.FAST]["pearson_r"] >= f[ev.ROI]["pearson_r"] - ev.R_TIE
    assert all(all(c.values()) for c in own["checks"].values())
    # detector 1 states detector 0's axis but its lines sit ~8 eV higher at Mn K-alpha: the
    # edge finds that on its first pixels, and Mn, in the tail of a 50x brighter Fe, holds
    assert "(kept" in own["note"] and "(locked" in other["note"]  # proto.energy_axis
    mn = other["elements"]["Mn"]
    assert mn["signal"] and mn[ev.FAST]["pearson_r"] > 0.9 > mn[ev.ROI]["pearson_r"]
    assert all(all(c.values()) for c in other["checks"].values())
    text = (tmp / "work" / "elements" / "table.txt").read_text()
    assert "against PyMca" in text and "checks pass" in text and "floor" in text
    saved = json.loads((tmp / "work" / "elements" / "summary.json").read_text())
    assert saved["held_out"][1]["name"].startswith("ts2_01_sub_export[det1]")


def test_fastfit_bundle_single_input(calibrated, tmp_path):
    """The fallback bundle (before the residual exporter): one input, areas in counts/s from
    counts per live second, equal to the fit's own float64 reference."""
    from export.calib_bundle import Served, fastfit_bundle
    from export.calib_data import PymcaRef, load_scan
    from export.fastfit import reference_fit
    from proto.instrument import load

    desc = load(_small_toml(tmp_path))
    scan = load_scan(IXRF, "det1", desc)
    fitted = PymcaRef(desc, quick=True, refine=False).fitted(scan.counts, scan.grid,
                                                             scan.live_time_s)
    counts, live = scan.counts[:20], scan.live_time_s[:20]
    bundle, parity = fastfit_bundle(fitted.model, scan.grid, tmp_path / "b", check_counts=counts,
                                    check_live=live, fields={})
    assert bundle.manifest.outputs == fitted.model.outputs and parity["ratio"] <= 1
    # on the stated axis: the graph alone (the axis check, tested in test_energy_axis.py,
    # would read this detector ~8 eV higher)
    got = Served(tmp_path / "b")(counts, live, scan.grid, fitted.model.outputs, axis=scan.grid)
    want = reference_fit(fitted.model, counts)[0] / live[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-2)


def test_a_large_map_is_scored_in_blocks_and_trains_on_a_subset(calibrated, tmp_path,
                                                                 monkeypatch):
    """A lab's million-pixel map must fit in memory: the held-out scores are made CHUNK
    pixels at a time (the same scores as in one block) and the residual learns from at most
    RESIDUAL_SPECTRA training and RESIDUAL_HELD held-out pixels, drawn at random."""
    import export.calibrate as cal
    from proto.bundle import read_manifest

    _, summary, _ = calibrated
    monkeypatch.setattr(cal, "CHUNK", 7)
    monkeypatch.setattr(cal, "RESIDUAL_SPECTRA", 60)
    monkeypatch.setattr(cal, "RESIDUAL_HELD", 20)
    small = cal.calibrate(_small_toml(tmp_path), [IXRF], tmp_path / "models", detector="0",
                          test_detectors=["1"], quick=True, epochs=3, progress=False)
    for blocks, whole in zip(small["held_out"], summary["held_out"], strict=True):
        for el, e in whole["elements"].items():
            for method in (ev.FAST, ev.ROI, ev.RECAL):
                assert blocks["elements"][el][method] == pytest.approx(e[method], rel=1e-5)
    learnt = read_manifest(tmp_path / "models" / "elements").metrics["residual"]["held_out"]
    assert (learnt["train_spectra"], learnt["spectra"]) == (60, 20)
    assert "(learnt from 60 of the 140 training pixels, drawn at random)" in small["residual"]
    assert "learnt from" not in summary["residual"]  # a small map: every pixel


def test_a_lab_adds_an_element_to_the_maps(tmp_path):
    """The description's [fit] maps: the bundle maps those elements, Zn (not one of the
    study's eight) among them, scored against PyMca and ROI on its own K line like the rest."""
    import export.calibrate as cal
    from proto.bundle import load_bundle

    toml = tmp_path / "ixrf_zn.toml"
    toml.write_text(TOML.read_text() + '\n[fit]\nrange_kev = [3.0, 9.5]\n'
                    'maps = ["Ca", "Fe", "Cu", "Zn"]\n')
    summary = cal.calibrate(toml, [IXRF], tmp_path / "models", detector="0", quick=True,
                            residual=False, progress=False)
    assert summary["outputs"] == ["Ca", "Fe", "Cu", "Zn"]
    assert load_bundle(tmp_path / "models" / "elements").manifest.outputs[:4] == (
        "Ca", "Fe", "Cu", "Zn")
    zn = summary["held_out"][0]["elements"]["Zn"]
    assert {ev.FAST, ev.ROI} <= set(zn) and np.isfinite(zn[ev.FAST]["rel_rmse"])


def test_the_simulator_cannot_teach_an_element_it_does_not_map(tmp_path):
    """The default path trains on simulated ground truth, which has the study's eight only."""
    from training.scan_rates import ScanRates

    scan = ScanRates.__new__(ScanRates)
    scan.maps, scan.shape = {"Ca": np.zeros(4, np.float32)}, (2, 2)
    assert scan.truth(("Ca", "Pb")).shape == (4, 2)  # one of the eight, absent here: zeros
    with pytest.raises(ValueError, match=r"no ground truth for Zn: the simulator maps Ca, "):
        scan.truth(("Ca", "Zn"))


def test_served_says_where_the_residual_would_be_served(calibrated):
    """Served.inside (export.real_spectra's count of served spectra): the calibrating
    detector's own pixels at their dwell are inside the bundle's domain, the same pixels at
    ten times their live time are not (a residual learned at 100 ms, BUNDLE.md in_domain)."""
    from export.calib_bundle import Served
    from export.calib_data import load_scan
    from proto.instrument import load

    tmp, *_ = calibrated
    scan = load_scan(IXRF, "0", load(TOML))
    served = Served(tmp / "models" / "elements")
    counts, live = scan.counts[:100], scan.live_time_s[:100]
    assert served.inside(counts, live, scan.grid).mean() > 0.9
    assert not served.inside(counts, live * 10, scan.grid).any()


def _held(ref, pred_fast, pred_roi, repeat=None):
    h = ev.HeldOut("set", ("A", "B"), ref, np.full_like(ref, 1.0), repeat=repeat)
    h.preds[ev.FAST], h.preds[ev.ROI] = pred_fast, pred_roi
    return ev.score(h)


def test_scores_and_checks():
    """Checks fail where they should: a fast fit worse than ROI, an error above the floor;
    an element without signal is not checked; the floor is gain-matched."""
    rng = np.random.default_rng(0)
    ref = np.stack([rng.uniform(10, 100, 200), rng.normal(0, 1, 200)], axis=1)
    good, bad = ref + rng.normal(0, 1, ref.shape), ref + rng.normal(0, 30, ref.shape)
    s = _held(ref, good, bad, repeat=2 * ref + rng.normal(0, 2, ref.shape))
    assert s["elements"]["A"]["signal"] and not s["elements"]["B"]["signal"]
    assert s["checks"] == {"A": {"fast_fit_r_ge_roi": True, "rel_rmse_within_floor": True}}
    floor = s["elements"]["A"]
    assert floor[ev.FLOOR]["rel_rmse"] > 0.5 > floor[ev.FLOOR_GAIN]["rel_rmse"]  # 2x gain
    s = _held(ref, bad, good, repeat=ref + rng.normal(0, 1, ref.shape))
    assert s["checks"]["A"] == {"fast_fit_r_ge_roi": False, "rel_rmse_within_floor": False}
    assert "A r≥ROI" in ev.summary([s]) and "0/2 checks pass" in ev.summary([s])
    assert "NO" in ev.text_table(s) and ev.md_table(s).count("\n") == 3
    quiet = ref * [0.0, 1.0]  # A silent too: no element to check, said so (not "0/0 pass")
    s = _held(quiet, quiet, quiet)
    assert s["checks"] == {} and "no element with real signal" in ev.summary([s])


def test_split_keeps_held_out_apart():
    """A rectangle held out of a scan: its pixels and a 1-pixel ring are not trained on."""
    grid = EnergyGrid(0.0, 0.01, 64)
    counts = np.random.default_rng(1).poisson(5, (8 * 10, 64)).astype(np.float32)
    scan = LabScan("s", Path("s.h5"), "", (8, 10), counts, np.full(80, 0.1), grid, 0.0)
    (s, part), = split_scans([scan], [], "6,0,4,8")
    assert s is scan and len(part.test) == 32
    cols = np.arange(80) % 10
    assert set(cols[part.train]) == set(range(5)) and set(cols[part.test]) == {6, 7, 8, 9}
    (_, auto), = split_scans([scan], [], None)  # automatic: the last quarter of columns
    assert set(cols[auto.test]) == {8, 9} and not set(auto.train) & set(auto.test)


def test_rows_read_a_split_a_slice_at_a_time():
    """calib_data.Rows: one side of a split over several scans, without an (N, C) copy, row
    for row what indexing and concatenating would give (counts, or counts per live second
    as float32 from the float64 quotient); total_counts is their float64 sum."""
    from export.calib_data import LABEL_BLOCK, Rows, total_counts

    grid, rng = EnergyGrid(0.0, 0.01, 16), np.random.default_rng(2)
    scans = [LabScan(k, Path(f"{k}.h5"), "", (n, 1), rng.poisson(7, (n, 16)).astype(np.float32),
                     rng.uniform(0.05, 0.2, n), grid, 0.0) for k, n in (("a", 5000), ("b", 3000))]
    idx = [rng.permutation(5000)[:4500], np.arange(0, 3000, 2), np.zeros(0, int)]
    rows = Rows([(scans[0], idx[0]), (scans[1], idx[1]), (scans[0], idx[2])])
    want = np.concatenate([scans[0].counts[idx[0]], scans[1].counts[idx[1]]])
    live = np.concatenate([scans[0].live_time_s[idx[0]], scans[1].live_time_s[idx[1]]])
    assert len(rows) == 6000 and len(rows.parts) == 2  # the empty part is dropped
    np.testing.assert_array_equal(rows[4400:4600], want[4400:4600])  # across the two scans
    np.testing.assert_array_equal(rows.take(np.array([5999, 0, 4500])), want[[5999, 0, 4500]])
    np.testing.assert_array_equal(rows.live_time_s, live)
    rates = Rows(rows.parts, per_live_second=True)[:]
    assert rates.dtype == np.float32
    np.testing.assert_array_equal(rates, (want / live[:, None]).astype(np.float32))
    some = np.array([0, 4499, 4500, 5999])  # a subset across both scans reads the same rows
    np.testing.assert_array_equal(rows.subset(some)[:], want[some])
    assert len(rows) > LABEL_BLOCK  # summed in blocks
    np.testing.assert_allclose(total_counts(rows), want.sum(axis=0, dtype=np.float64),
                               rtol=1e-15)


def test_epochs_scale_with_data():
    assert epochs_for(140) == 60 and epochs_for(5_000) == 20 and epochs_for(240_000) == 8
