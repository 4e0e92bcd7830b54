"""PyMca labels: shipped fit configs, labels stored in a dataset, and the independent
cross-check of PyMca's fast fit against the simulator's ground truth."""

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from proto.dataset import open_dataset, write_dataset
from proto.elements import ELEMENTS
from proto.energy import EnergyGrid
from training.labels import (
    CONFIG_DIR,
    INSTRUMENTS_DIR,
    fit_labels,
    load_config,
    main,
    make_config,
    refine_config,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DWELL_S = 0.1
TRACE_COUNTS = 50  # mean counts per pixel below which Poisson noise alone caps Pearson r


@pytest.mark.parametrize("name", ["m6", "m1"])
def test_shipped_configs_are_current_and_snip(name):
    cfg = load_config(CONFIG_DIR / f"{name}.cfg")
    assert cfg["fit"]["stripalgorithm"] == 1 and cfg["fit"]["stripflag"] == 1
    for el in ELEMENTS:
        assert el in cfg["peaks"], f"{el} missing from {name}.cfg"
    fresh = make_config(name)
    assert fresh["fit"]["xmin"] == cfg["fit"]["xmin"] and fresh["peaks"] == cfg["peaks"], (
        "regenerate with: python -m training.labels --write-configs training/configs")


def test_fit_window_follows_the_file_calibration():
    cfg = load_config(CONFIG_DIR / "m6.cfg")
    lo = cfg["detector"]["zero"] + cfg["detector"]["gain"] * cfg["fit"]["xmin"]
    other = EnergyGrid(0.0, 0.02, 2048)
    moved = load_config(CONFIG_DIR / "m6.cfg", other)
    assert moved["detector"]["zero"] == 0.0 and moved["detector"]["gain"] == 0.02
    assert other.offset + other.gain * moved["fit"]["xmin"] == pytest.approx(lo, abs=0.02)


@cache
def _scene(side: int, seed: int = 0, dwell_s: float = DWELL_S):
    """A small M6 scan: each pixel a mixture of painted stacks (the beam spot straddles
    paints), so truth and expected spectra are the same linear mixtures."""
    sim = pytest.importorskip("training.sim")
    from training.pigments import bole, gold_leaf, ground, paint, varnish

    g = ground()
    stacks = [
        [paint("white", {"lead_white": 1}), g],
        [paint("vermilion", {"vermilion": 0.7, "lead_white": 0.3}), g],
        [paint("azurite", {"azurite": 1}), g],
        [paint("orpiment", {"orpiment": 1}, thickness_um=20), g],
        [paint("umber", {"raw_umber": 0.6, "yellow_ochre": 0.4}), g],
        [gold_leaf(), bole(), g],
        [paint("smalt", {"smalt": 0.5, "lead_white": 0.5}), g],
        [paint("malachite", {"malachite": 0.6, "lead_white": 0.4}), g],
        [varnish(), paint("flesh", {"red_ochre": 0.5, "lead_white": 0.3, "vermilion": 0.2}), g],
    ]
    inst = sim.M6_JETSTREAM
    responses = [sim.stack_response(inst, [layer.to_sim() for layer in s]) for s in stacks]
    rates = np.stack([r.rates for r in responses])
    truth = np.array([[r.element_rates[e] for e in ELEMENTS] for r in responses])
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(len(stacks), 0.3), side * side)
    acq = sim.acquire(weights @ rates, dwell_s, rng, inst)
    return inst, acq, (weights @ truth).reshape(side, side, -1)


def test_cli_stores_labels_and_skips_unacquired(tmp_path, capsys):
    inst, acq, _ = _scene(20)  # shared with the cross-check; its first 9 pixels as 3 x 3
    acquired = np.ones((3, 3), bool)
    acquired[2, 2] = False
    path = write_dataset(tmp_path / "s.h5", acq.counts[:9].reshape(3, 3, -1), inst.grid,
                         acq.live_time_s[:9].reshape(3, 3), acq.real_time_s[:9].reshape(3, 3),
                         acquired=acquired)
    assert main([str(path), str(CONFIG_DIR / "m6.cfg"), "--no-refine"]) == 0
    assert "Pb" in capsys.readouterr().out
    with open_dataset(path) as ds:
        labels = ds.labels
        assert set(labels) == set(ELEMENTS)
        assert np.isnan(labels["Pb"][2, 2]) and np.isfinite(labels["Pb"][:2]).all()
        assert "m6.cfg" in ds.file["labels/element_maps"].attrs["source"]
        assert "[peaks]" in ds.file["labels"].attrs["config"]
    # an operator's mistakes: one line each, nothing written
    wide = tmp_path / "wide.cfg"
    cfg = load_config(CONFIG_DIR / "m6.cfg")
    cfg["fit"]["stripfilterwidth"] = 151
    cfg.write(str(wide))
    for args, said in (([tmp_path / "none.h5", CONFIG_DIR / "m6.cfg"], "none.h5: no such file"),
                       ([path, tmp_path / "none.cfg"], "none.cfg: no such configuration file"),
                       ([path, wide], "at most 101 channels")):
        assert main([str(a) for a in args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("labels: ") and said in err and err.count("\n") == 1


@pytest.mark.slow
def test_pymca_recovers_simulator_truth(tmp_path):
    """Must-show: PyMca fast fit of a simulated M6 scan at 100 ms dwell recovers the
    simulator's ground-truth maps with Pearson r >= 0.98 for every element above trace."""
    side = 20
    inst, acq, truth = _scene(side)
    path = write_dataset(tmp_path / "m6.h5", acq.counts.reshape(side, side, -1), inst.grid,
                         acq.live_time_s.reshape(side, side), acq.real_time_s.reshape(side, side))
    info: dict = {}
    maps = fit_labels(path, CONFIG_DIR / "m6.cfg", info=info)
    live = float(acq.live_time_s.mean())
    print(f"\nsum-spectrum refinement: {info}")
    print(f"{'el':>3} {'truth cps':>10} {'fit cps':>10} {'fit/truth':>9} {'r':>7}  status")
    failures = []
    for i, el in enumerate(ELEMENTS):
        t, f = truth[..., i].ravel(), maps[el].ravel()
        r = float(np.corrcoef(t, f)[0, 1]) if t.std() > 0 else float("nan")
        trace = t.mean() * live < TRACE_COUNTS
        print(f"{el:>3} {t.mean():10.1f} {f.mean():10.1f} {f.mean() / t.mean():9.3f} {r:7.4f}"
              f"  {'trace' if trace else 'checked'}")
        if not trace and not r >= 0.98:
            failures.append((el, round(r, 4)))
    assert info["reduced_chisq"] < 100
    assert not failures, f"Pearson r < 0.98: {failures}"


@pytest.mark.slow
def test_pymca_recovers_truth_of_named_scene(tmp_path):
    """The same cross-check on the SCENES helper's held-out M6 panel (tiny, 100 ms dwell)."""
    scenes = pytest.importorskip("training.scenes")
    path = scenes.make_scene("m6_ioannis", tmp_path, tiny=True, dwell_s=DWELL_S)
    maps = fit_labels(path, CONFIG_DIR / "m6.cfg")
    with open_dataset(path) as ds:
        truth, live = ds.element_maps, float(ds.live_time_s.mean())
    print()
    failures = []
    for el in ELEMENTS:
        t, f = truth[el].ravel(), maps[el].ravel()
        if t.mean() * live < TRACE_COUNTS or t.std() == 0:
            print(f"{el:>3} trace ({t.mean() * live:.1f} counts/pixel)")
            continue
        r = float(np.corrcoef(t, f)[0, 1])
        print(f"{el:>3} truth {t.mean():9.1f} fit {f.mean():9.1f} counts/s  r {r:.4f}")
        if not r >= 0.98:
            failures.append((el, round(r, 4)))
    assert not failures, f"Pearson r < 0.98: {failures}"


@pytest.mark.slow
def test_refinement_of_a_large_scans_sum_keeps_the_detector_resolution():
    """A scan's sum spectrum of 1e4 live seconds (~1e9 counts, a 1000 x 1000 map at 10 ms):
    PyMca's pile-up factor starts at the config's 1e-8, ~2,000x too high for so long a sum.
    Given the live time, the refinement also starts it where the live time puts it, and
    lands on the instrument's noise and Fano instead of bending them around a pinned
    pile-up (PyMca's start alone: the factor stays near 1e-8, reduced chi-square 712,285
    against 3,123; on the 100 ms m6_ioannis scene noise 0.060 keV and Fano 0.098)."""
    inst, acq, _ = _scene(20, dwell_s=25.0)
    total = acq.counts.sum(axis=0, dtype=np.float64)
    live_s = float(acq.live_time_s.sum())
    cfg, info = refine_config(load_config(CONFIG_DIR / "m6.cfg", inst.grid), total, live_s)
    print(f"\n{total.sum():.3g} counts, {live_s:.0f} live s: {info}")
    assert total.sum() > 5e8 and live_s > 5e3
    # the simulator's pile-up: pulse pairs within its resolving time, over the live time
    assert info["Pileup"] == pytest.approx(inst.pulse_pair_s / live_s, rel=0.5)
    det = load_config(CONFIG_DIR / "m6.cfg")["detector"]  # the description's resolution
    assert info["Noise"] == pytest.approx(det["noise"], rel=0.15)
    assert info["Fano"] == pytest.approx(det["fano"], rel=0.1)
    assert cfg["detector"]["noise"] == info["Noise"] and cfg["detector"]["fano"] == info["Fano"]


def test_refinement_of_a_real_map_frees_its_pile_up():
    """The IXRF map's training pixels (all but its last 6 columns, as `make calibrate` splits
    it): PyMca's 1e-8 start holds the pile-up factor at its bound, 2e-8 (reduced chi-square
    5.22); started at 1 us over their live time it stopped at 9.13 after the configs' 10
    iterations, and converges to 4.68 with the factor at 5.8e-8, as from any start between
    3e-8 and 3e-7."""
    from export.calib_data import PymcaRef, load_scan
    from export.real_spectra import IXRF
    from proto.instrument import load

    desc = load(INSTRUMENTS_DIR / "ixrf_atlas.toml")
    scan = load_scan(DATA / IXRF, 0, desc)
    train = np.arange(len(scan.counts)) % scan.shape[1] <= 13
    cfg, _ = PymcaRef(desc, refine=False).config(scan.grid, None)
    total = scan.counts[train].sum(axis=0, dtype=np.float64)
    _, info = refine_config(cfg, total, float(scan.live_time_s[train].sum()))
    print(f"\n{info}")
    assert info["reduced_chisq"] < 5.0
    assert 3e-8 < info["Pileup"] < 1e-7
