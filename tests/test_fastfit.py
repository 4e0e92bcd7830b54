"""The compiled fast fit (export.fastfit + export.fastfit_graph) against PyMca's own
FastXRFLinearFit, spectrum by spectrum: the real M6 spectrum, the real IXRF map (both
detectors) and a simulated M6 scene, each element within 1 % or 0.5 sigma; its sigma
against the spread of Poisson resamples of the real M6 spectrum."""

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from export.fastfit import (
    background,
    build_model,
    configured_fit,
    family,
    pymca_fast_fit,
    reference_fit,
)
from export.fastfit_graph import build_graph, run, session
from proto.elements import LINE_GROUP
from training.labels import CONFIG_DIR, INSTRUMENTS_DIR, load_config, make_config

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPX = DATA / "bruker_m6_jetstream_example.spx"
IXRF = DATA / "ixrf_atlas" / "ts2_01_sub_export_data.npy"
M6_LIVE_S = 28.05
REL, SIGMAS = 0.01, 0.5  # the bar: within 1 % or 0.5 sigma


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    return path


@cache
def _m6():
    """The M6 model, its graph in counts and in counts per live second, and the configured
    PyMca fit it was read from (PyMca's configuration takes seconds: done once)."""
    cfg = load_config(CONFIG_DIR / "m6.cfg")
    fitter = configured_fit(cfg)
    model = build_model(cfg, fitter=fitter)
    return model, session(build_graph(model)), session(
        build_graph(model, quantity="counts_per_live_second")), cfg, fitter


@cache
def _m6_spectrum() -> np.ndarray:
    rsciio = pytest.importorskip("rsciio.bruker")
    return np.asarray(rsciio.file_reader(str(_need(SPX)))[0]["data"], dtype=np.float64)


def _pymca_outputs(model, names, areas) -> np.ndarray:
    """PyMca's per-group areas summed as the model's outputs (Pb = Pb L1 + L2 + L3)."""
    rows = np.array([[float(family(n) == f"{el} {LINE_GROUP[el]}") for n in names]
                     for el in model.outputs])
    return areas @ rows.T


def _check(ours, theirs, sigma, label: str, outputs) -> None:
    """Within 1 % or 0.5 sigma, and the same values fixed at zero: an element the refit fixes
    at zero reports its detection sigma, so the tolerance alone would let a value through
    that PyMca fixed and ours did not."""
    d = np.abs(ours - theirs)
    bad = (d > np.maximum(REL * np.abs(theirs), SIGMAS * sigma)) | ((ours == 0) != (theirs == 0))
    worst = np.unravel_index(np.argmax(d / np.maximum(sigma, 1e-9)), d.shape)
    print(f"\n{label}: {ours.shape[0]} spectra, max |d|/sigma {d[worst] / sigma[worst]:.3g} "
          f"({outputs[worst[1]]}), outside 1 %/0.5 sigma or zero on one side: {int(bad.sum())}")
    assert not bad.any(), f"{label}: {int(bad.sum())} values differ from PyMca"


def test_m6_spectrum_equals_pymca():
    """(a) The real M6 spectrum (live time 28.05 s), in counts per live second as the edge
    feeds it; PyMca fits counts and its areas are divided by the live time."""
    y = _m6_spectrum()
    model, _, cps, cfg, fitter = _m6()
    names, areas, unit = pymca_fast_fit(y[None], cfg, fitter=fitter)
    theirs = _pymca_outputs(model, names, areas)[0] / M6_LIVE_S
    # PyMca's unweighted fit reports sqrt(diag((D^T D)^-1)): unit data weights, not counts
    unit = np.sqrt(_pymca_outputs(model, names, unit**2)[0]) / M6_LIVE_S
    ours, sigma = run(cps, y[None] / M6_LIVE_S, np.array([M6_LIVE_S]))
    print(f"\n{'':3} {'PyMca c/s':>11} {'compiled c/s':>12} {'sigma c/s':>9} "
          f"{'PyMca unc.':>10}")
    for el, a, b, s, u in zip(model.outputs, theirs, ours[0], sigma[0], unit, strict=True):
        print(f"{el:3} {a:11.2f} {b:12.2f} {s:9.2f} {u:10.3f}")
    _check(ours, theirs[None], sigma, "M6 spectrum", model.outputs)


def test_ixrf_map_equals_pymca_per_pixel():
    """(b) The real IXRF ATLAS map, both detectors, with the PyMca config derived from its
    instrument description (Mo tube, 10 eV/channel from 0), each pixel fitted on its own:
    PyMca itself on 2 pixels of each detector (a pixel whose refit cycles costs PyMca 2P + 1
    least-squares solves, ~1 s), the same algorithm in float64 (reference_fit) on all 400."""
    counts = np.load(_need(IXRF)).astype(np.float64)  # (pixel, detector, channel)
    cfg = make_config(INSTRUMENTS_DIR / "ixrf_atlas.toml", continuum_bin_kev=3.0)
    fitter = configured_fit(cfg)
    model = build_model(cfg, fitter=fitter)
    flat = counts.reshape(-1, counts.shape[-1])
    ours, sigma = run(session(build_graph(model)), flat)
    some = np.array([0, 1, 252, 253])  # 2 pixels x both detectors
    names, areas, _ = pymca_fast_fit(flat[some], cfg, fitter=fitter)
    _check(ours[some], _pymca_outputs(model, names, areas), sigma[some],
           "IXRF map, both detectors, PyMca per pixel", model.outputs)
    ref_areas, ref_sigma = reference_fit(model, flat)
    _check(ours, ref_areas, ref_sigma, "IXRF map, all 400 spectra, float64 reference",
           model.outputs)
    # PyMca on the whole map at once: its refit pools pixels, so some differ (reported only)
    names, whole, _ = pymca_fast_fit(counts[:, 0], cfg, per_pixel=False, fitter=fitter)
    d = np.abs(ours[::2] - _pymca_outputs(model, names, whole))
    same = d <= np.maximum(REL * np.abs(_pymca_outputs(model, names, whole)), SIGMAS * sigma[::2])
    print("PyMca whole-map call, detector 0, share within 1 %/0.5 sigma per element: "
          + ", ".join(f"{el} {s:.0%}" for el, s in zip(model.outputs, same.mean(0), strict=True)))


@cache
def _scene(n: int = 16, dwell_s: float = 0.1, seed: int = 0):
    sim = pytest.importorskip("training.sim")
    from training.pigments import bole, gold_leaf, ground, paint

    g = ground()
    stacks = [[paint("white", {"lead_white": 1}), g],
              [paint("vermilion", {"vermilion": 0.7, "lead_white": 0.3}), g],
              [paint("orpiment", {"orpiment": 1}, thickness_um=20), g],  # As K under Pb L
              [paint("azurite", {"azurite": 1}), g],
              [paint("umber", {"raw_umber": 0.6, "yellow_ochre": 0.4}), g],
              [gold_leaf(), bole(), g]]
    inst = sim.M6_JETSTREAM
    rates = np.stack([sim.stack_response(inst, [layer.to_sim() for layer in s]).rates
                      for s in stacks])
    rng = np.random.default_rng(seed)
    acq = sim.acquire(rng.dirichlet(np.full(len(stacks), 0.3), n) @ rates, dwell_s, rng, inst)
    return acq.counts.astype(np.float64)


def test_simulated_scene_equals_pymca_and_reference():
    """(c) A small simulated M6 scene at 100 ms dwell (noisy: many groups refitted)."""
    counts = _scene()
    model, counts_session, _, cfg, fitter = _m6()
    names, areas, _ = pymca_fast_fit(counts, cfg, fitter=fitter)
    ours, sigma = run(counts_session, counts)
    _check(ours, _pymca_outputs(model, names, areas), sigma, "simulated M6 scene", model.outputs)
    ref_areas, ref_sigma = reference_fit(model, counts)  # the same algorithm in float64
    assert np.allclose(ours, ref_areas, rtol=1e-4, atol=1e-3 * ref_sigma.max())
    assert np.allclose(sigma, ref_sigma, rtol=1e-3, atol=1e-3 * ref_sigma.max())


def test_sigma_matches_poisson_resamples():
    """(d) sigma of the real M6 spectrum vs the spread of 300 Poisson resamples of it, refits
    included, for every element with a non-zero area: within 20 %. An element the refit
    fixes at zero (As K under Pb L here) reports its sigma in the full fit, its detection
    sigma: within 20 % of the spread of its unclipped estimate, never 0."""
    y = _m6_spectrum()
    model, counts_session, *_ = _m6()
    areas, sigma = run(counts_session, y[None])
    resamples = np.random.default_rng(0).poisson(y, (300, y.size)).astype(np.float32)
    spread = run(counts_session, resamples)[0].std(axis=0)
    window = resamples[:, model.first:model.first + model.window]
    unclipped = ((window - background(model, resamples)) @ model.weights.T) @ model.combine.T
    print(f"\n{'':3} {'area':>10} {'sigma':>8} {'spread':>8} {'unclipped':>9}")
    for el, a, s, r, u in zip(model.outputs, areas[0], sigma[0], spread,
                              unclipped.std(axis=0), strict=True):
        print(f"{el:3} {a:10.1f} {s:8.2f} {r:8.2f} {u:9.2f}")
    found = areas[0] > 0
    assert 6 <= found.sum() < len(found)  # As K sits at zero under Pb L on this spectrum
    np.testing.assert_allclose(sigma[0][found], spread[found], rtol=0.2)
    np.testing.assert_allclose(sigma[0][~found], unclipped.std(axis=0)[~found], rtol=0.2)


def test_sigma_follows_short_dwell_pixels():
    """The same at a 100 ms pixel (the 28.05 s spectrum thinned binomially, ~3,900 counts):
    the reported sigma follows the spread of 300 such pixels within 20 % for every element
    served above zero in 95 % of them. Their mean is not PyMca's 28 s value: SNIP's
    background sits low under counting noise, a bias the 3-sigma mask cannot see (README,
    scripts/short_dwell.py)."""
    y = _m6_spectrum()
    _, counts_session, *_ = _m6()
    pixels = np.random.default_rng(0).binomial(y.astype(np.int64), 0.1 / 28.05, (300, y.size))
    areas, sigma = run(counts_session, pixels.astype(np.float32))
    served = (areas > 0).mean(axis=0) >= 0.95
    assert served.sum() >= 6
    np.testing.assert_allclose(sigma.mean(axis=0)[served], areas.std(axis=0)[served], rtol=0.2)


def test_rebuilt_for_another_calibration():
    """Built for any channel count and calibration (as at scan_start): the IXRF instrument at
    20 eV/channel over 2048 channels (SNIP and smoothing widths follow in keV), on the real
    map rebinned, against the float64 reference; counts per live second give the same fit."""
    import dataclasses

    from proto.energy import rebin
    from proto.instrument import load

    desc = load(INSTRUMENTS_DIR / "ixrf_atlas.toml")
    coarse = dataclasses.replace(desc, calibration=dataclasses.replace(
        desc.calibration, gain_kev=0.02, channels=2048))
    model = build_model(make_config(coarse, continuum_bin_kev=3.0), 2048)
    assert model.snip_width == 20 and model.channels == 2048
    counts = np.load(_need(IXRF)).reshape(-1, 4096)[::8].astype(np.float64)
    counts = rebin(counts, desc.calibration.grid, coarse.calibration.grid)
    graph = build_graph(model, quantity="counts_per_live_second")
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["maxrf.outputs"] == ",".join(model.outputs) and graph.opset_import[0].version >= 17
    live = np.linspace(0.02, 0.1, len(counts))
    ours, sigma = run(session(graph), counts / live[:, None], live)
    ref_areas, ref_sigma = reference_fit(model, counts)
    _check(ours * live[:, None], ref_areas, ref_sigma, "IXRF at 20 eV/channel", model.outputs)
    np.testing.assert_allclose(sigma * live[:, None], ref_sigma, rtol=1e-3,
                               atol=1e-3 * ref_sigma.max())
