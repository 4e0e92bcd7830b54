"""The element bundle = compiled fast fit + residual (export.element_bundle, training.residual):
trained on a tiny simulated M6 scene, exported with parity, loaded by the edge, and served as
the contract says: the residual only inside the training domain and the live time it was
trained on, the fast fit alone elsewhere; sigma columns beside the maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.inference import Engine
from edge.models import ModelSession
from export.element_bundle import CompiledFit, element_graph, export_elements, train_elements
from export.element_served import Served
from proto.bundle import BundleError
from proto.elements import ELEMENTS
from proto.energy import Rebinner, counts_per_live_second, rebin
from proto.energy_axis import decide_in_order
from tests.element_support import M6, tiny_m6
from tests.element_support import fit_m6 as _fit
from tests.scene_support import REPO
from training import artifacts
from training.residual import ResidualConfig, train_residual


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return tiny_m6(tmp_path_factory.mktemp("tiny_m6"))


@pytest.fixture(scope="module")
def bundle(tiny_data, tmp_path_factory) -> Path:
    """Trained briefly, the residual forced on for every element (so the gate is seen): Ca to
    Cu by the first member alone, the others by the mean of the first two (the graph's
    plumbing of a weighted sum), saved as an artifact and exported through it as `make
    export` does."""
    net, info = train_elements(M6, tiny_data / "m6_corpus_tiny.h5", fit=_fit(),
                               cfg=ResidualConfig(epochs=2, hidden=16))
    with torch.no_grad():
        for member in net.members:
            member.keep.fill_(1.0)
        half = torch.tensor([0.0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5])
        net.weight.copy_(torch.stack([1 - half, half, torch.zeros(8)]))
    root = tmp_path_factory.mktemp("element_bundle")
    artifacts.save("elements", net, info, root / "trained")
    net, info = artifacts.load("elements", root / "trained")
    folder = root / "models" / "elements"
    export_elements(net, info, folder, tiny_data, fit=_fit())
    return folder


def test_manifest_states_inputs_outputs_and_held_out_metrics(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["extra_inputs"] == ["live_time_s", "in_domain", "continuum"]
    assert m["outputs"] == [*ELEMENTS, *(f"{e}_sigma" for e in ELEMENTS)]
    assert m["grid"] == {"offset": -0.95550444, "gain": 0.009999, "channels": 2200}
    assert m["training"]["model"] == "fastfit+residual"
    assert m["metrics"]["parity"]["ratio"] <= 1.0
    assert [c["config"]["epochs"] for c in m["metrics"]["members"]] == [2, 2, 15]
    assert [c["config"]["linear_wd"] for c in m["metrics"]["members"]] == [None, 0.0, None]
    assert {"fast_fit", "fast_fit+residual"} <= set(m["metrics"]["held_out"])
    tests = m["metrics"]["test"]
    assert set(tests) == {"m6_ioannis_tiny", "m6_ioannis_100ms_tiny"}
    for t in tests.values():
        assert set(t["bundle"]) == set(ELEMENTS) and 0.0 <= t["in_domain"] <= 1.0
    assert m["domain"]["subspace"]["bin"] == 8  # 80 eV on the instrument's 10 eV grid
    assert m["instruments"][0]["name"] == "M6 Jetstream"


def test_edge_serves_the_residual_inside_the_domain_only(bundle, tiny_data):
    """Through edge.inference.Engine (rebin + live time + in-domain mark): where a pixel is
    inside, fit + residual; outside, exactly the fast fit; sigma is the fit's either way."""
    from proto.dataset import open_dataset

    session = ModelSession(bundle, threads=1)
    with open_dataset(tiny_data / "m6_ioannis_tiny.h5") as ds:
        counts = np.asarray(ds.counts).reshape(-1, ds.shape[2])[:64]
        live = np.asarray(ds.live_time_s, np.float32).reshape(-1)[:64]
        grid = ds.grid
    # a foreign pixel: a spectrum's lines moved up by 3 keV, its counts kept
    counts = np.concatenate([counts, np.roll(counts[:1], 300, axis=1)])
    live = np.concatenate([live, live[:1]])
    engine = Engine({"elements": session}, grid, 32)
    out, outside = engine.run_checked(counts, live)
    y, mark = out["elements"], outside["elements"]
    assert y.shape == (65, 16) and mark[-1] and (~mark).any()
    assert engine.gated_share() == {"elements": pytest.approx(float((~mark).mean()))}
    rates = counts_per_live_second(counts, live, Rebinner(grid, session.manifest.grid))
    serve = Served(session.bundle.model_bytes, None, threads=1)
    fit_alone, _ = serve(rates, live, np.zeros(len(rates), bool))
    with_res, _ = serve(rates, live, np.ones(len(rates), bool))
    np.testing.assert_allclose(y[mark], fit_alone[mark], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(y[~mark], with_res[~mark], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(y[:, 8:], fit_alone[:, 8:], rtol=1e-5, atol=1e-3)
    assert not np.allclose(with_res[:, :8], fit_alone[:, :8])  # the residual does something


def test_status_says_where_the_residual_was_served(bundle, tiny_data):
    """detail.scan of the status (edge.instruments.trust_detail): the share of the scan's
    pixels the residual was served on, and the background the fit served."""
    from types import SimpleNamespace

    from edge.instruments import trust_detail
    from proto.dataset import open_dataset

    session = ModelSession(bundle, threads=1)
    with open_dataset(tiny_data / "m6_ioannis_tiny.h5") as ds:
        counts = np.asarray(ds.counts).reshape(-1, ds.shape[2])[:40]
        live = np.asarray(ds.live_time_s, np.float32).reshape(-1)[:40]
        engine = Engine({"elements": session}, ds.grid, 64)
    engine.run(counts[:30], live[:30])
    engine.run(counts[30:], live[30:] * 10)  # a tenfold dwell: not served
    scan = SimpleNamespace(start=None, engine=engine,
                           canvas=SimpleNamespace(foreign=set(), threshold=None))
    served = trust_detail(scan)["residual_served"]["elements"]
    assert served <= 0.75 and served == pytest.approx(engine.gated_share()["elements"],
                                                      abs=1e-4)
    background = trust_detail(scan)["background"]["elements"]  # 40 pixels: far below 1e6
    assert background["background"] == "per-pixel SNIP" and background["pixels"] == 40


def test_residual_off_above_the_trained_dwell(bundle, tiny_data):
    """The same pixels at 10x their live time (a 100 ms scan for a residual trained at 10 ms):
    the edge feeds in_domain = 0, so the fast fit alone, and the served share says so."""
    from proto.dataset import open_dataset

    session = ModelSession(bundle, threads=1)
    dwell = session.manifest.training_domain.dwell_s
    with open_dataset(tiny_data / "m6_ioannis_tiny.h5") as ds:
        counts = np.asarray(ds.counts).reshape(-1, ds.shape[2])[:32] * 10
        live = np.full(32, 10 * dwell[1], np.float32)
        grid = ds.grid
    engine = Engine({"elements": session}, grid, 32)
    y = engine.run(counts, live)["elements"]
    alone, _ = Served(session.bundle.model_bytes, None, threads=1)(
        counts_per_live_second(counts, live, Rebinner(grid, session.manifest.grid)), live,
        np.zeros(32, bool))
    np.testing.assert_allclose(y, alone, rtol=1e-5, atol=1e-3)
    assert engine.gated_share() == {"elements": 0.0}


def test_a_manifest_without_the_extra_inputs_is_refused(bundle, tmp_path):
    folder = tmp_path / "elements"
    shutil.copytree(bundle, folder)
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    m["extra_inputs"] = ["live_time_s"]
    path.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="in_domain"):
        ModelSession(folder)
    m["extra_inputs"] = ["live_time_s", "dwell"]
    path.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="extra_inputs"):
        ModelSession(folder)


def test_train_command_takes_the_seed_and_epochs(tiny_data, tmp_path, monkeypatch):
    """`python -m export.element_bundle train --seed N`: another draw of the same recipe
    (how far a figure is from a typical draw), passed to the residual's config."""
    from export import element_bundle

    got: list[ResidualConfig] = []

    def fake_train(instrument, scene, *, cfg=None, fit=None):
        got.append(cfg)
        return "net", {"metrics": {"residual_kept": {"Ca": True}},
                       "instrument": {"name": "M6"}}

    monkeypatch.setattr(element_bundle, "train_elements", fake_train)
    monkeypatch.setattr(element_bundle.artifacts, "save", lambda *a: tmp_path / "saved")
    scene = str(tiny_data / "m6_corpus_tiny.h5")
    assert element_bundle.main(["train", "--instrument", str(M6), "--scene", scene,
                                "--seed", "7", "--epochs", "3"]) == 0
    assert element_bundle.main(["train", "--instrument", str(M6), "--scene", scene]) == 0
    assert [(c.seed, c.epochs) for c in got] == [(7, 3), (ResidualConfig.seed,
                                                        ResidualConfig.epochs)]


def test_no_residual_kept_means_the_fast_fit_alone():
    """When held-out data show the residual helps nowhere, the graph has no residual and no
    in_domain input (the scan's continuum, proto.continuum, then serves wherever chosen): a
    fit already equal to the targets leaves nothing to learn."""
    from proto.energy import EnergyGrid

    grid = EnergyGrid(0.0, 0.02, 1024)
    rng = np.random.default_rng(0)
    truth = rng.gamma(2.0, 10.0, (400, 2)).astype(np.float32)
    rates = rng.gamma(2.0, 1.0, (400, 1024)).astype(np.float32)

    def exact(x, live):  # one chunk: all 400 pixels
        return truth, np.ones((len(x), 2), np.float32)

    net, metrics = train_residual(exact, rates, np.full(400, 0.01), truth, grid=grid,
                                  outputs=("A", "B"), cfg=ResidualConfig(epochs=1, hidden=8),
                                  progress=False)
    assert metrics["residual_kept"] == {"A": False, "B": False}
    assert not net.serves.any()
    onx = element_graph(_fit(), net)
    assert [i.name for i in onx.graph.input] == ["spectra", "live_time_s", "continuum"]


# ---- must-show (a): the real M6 spectrum through the edge path, against PyMca ----------

SPX = REPO.parent / "shared" / "data" / "bruker_m6_jetstream_example.spx"
DEFAULT = REPO / "models" / "elements"


def _real_m6():
    if not SPX.exists():
        pytest.skip(f"real data not found: {SPX}")
    from training.readers import read

    scan = read(SPX)
    return scan.counts.reshape(1, -1), scan.live_time_s.reshape(1).astype(np.float32), scan.grid


def check_real_m6(folder: Path, fit: CompiledFit) -> dict:
    """The bundle at `folder` on the real M6 spectrum, served by edge.inference.Engine (rebin
    from the axis the bundle's energy-axis check decides on it, as the daemon does, live
    time, in-domain mark), against PyMca's FastXRFLinearFit
    with the configuration generated from the same description (`fit.cfg`): every element
    PyMca finds above 3 sigma within 20 % or 3 sigma, the others within 3 sigma of zero; the
    bundle's sigma within 20 % of the spread of 300 Poisson resamples where the area > 0, and
    where the refit fixed it at zero, of the spread of its unclipped estimate (the served
    zero's own spread is no Gaussian sigma: a few positive draws set it, 3x apart by seed)."""
    from export.fastfit import background, family, pymca_fast_fit
    from proto.elements import LINE_GROUP

    counts, live, grid = _real_m6()
    session = ModelSession(folder, threads=1)
    verdict = None if session.axis is None else decide_in_order(session.axis, counts, grid)
    engine = Engine({"elements": session}, grid if verdict is None else verdict.served, 512)
    out, outside = engine.run_checked(counts, live)
    g = len(fit.outputs)
    ours, sigma = out["elements"][0, :g], out["elements"][0, g:]
    names, areas, _ = pymca_fast_fit(counts.astype(np.float64), fit.cfg, fitter=fit.fitter)
    rows = np.array([[float(family(n) == f"{el} {LINE_GROUP[el]}") for n in names]
                     for el in fit.outputs])
    pymca = (areas @ rows.T)[0] / live[0]
    # the spread of 300 resamples, seed 0 (asserted), and its range over seeds 0-3 (printed:
    # for a value clipped at zero, as As, it is set by a few positive draws and moves a lot)
    spreads = np.array([engine.run(np.random.default_rng(seed).poisson(
        counts[0], (300, counts.shape[1])), np.full(300, live[0]))["elements"][:, :g].std(axis=0)
        for seed in range(4)])
    spread = spreads[0]
    # an element the refit fixes at zero reports its detection sigma: the spread of its
    # unclipped estimate, the full fit's linear areas, on the same resamples rebinned as served
    model = fit.model
    resamples = rebin(np.random.default_rng(0).poisson(counts[0], (300, counts.shape[1])),
                      grid if verdict is None else verdict.served, fit.grid)
    window = resamples[:, model.first:model.first + model.window]
    unclipped = (((window - background(model, resamples)) @ model.weights.T) @ model.combine.T
                 ).std(axis=0) / live[0]
    found = pymca > 3 * sigma
    ok = np.where(found, np.abs(ours - pymca) <= np.maximum(0.2 * np.abs(pymca), 3 * sigma),
                  np.abs(ours) <= 3 * sigma)
    print(f"\n{folder}: residual {'not ' if outside['elements'][0] else ''}served "
          f"(in domain: {not outside['elements'][0]})\n{verdict.line() if verdict else ''}\n"
          f"{'':3} {'PyMca c/s':>10} {'bundle c/s':>10} {'sigma':>7} {'spread':>7} "
          f"{'seeds 0-3':>13} {'unclipped':>9}")
    for j, el in enumerate(fit.outputs):
        print(f"{el:3} {pymca[j]:10.2f} {ours[j]:10.2f} {sigma[j]:7.2f} {spread[j]:7.2f} "
              f"{spreads[:, j].min():6.2f}-{spreads[:, j].max():<6.2f} {unclipped[j]:9.2f}"
              f"{'' if ok[j] else '  <- off'}")
    assert ok.all(), f"off PyMca: {[e for e, k in zip(fit.outputs, ok, strict=True) if not k]}"
    pos = ours > 0
    assert 6 <= pos.sum() < len(pos)  # As K sits at zero under Pb L on this spectrum
    np.testing.assert_allclose(sigma[pos], spread[pos], rtol=0.2)
    np.testing.assert_allclose(sigma[~pos], unclipped[~pos], rtol=0.2)
    return {"outside": bool(outside["elements"][0])}


def test_real_m6_spectrum_tiny_trained_bundle(bundle):
    """The bundle this module built (residual forced on) on the real spectrum."""
    check_real_m6(bundle, _fit())


def test_real_m6_spectrum_default_bundle():
    """The shipped default (models/elements, `make train export`), when it has been built."""
    if not (DEFAULT / "manifest.json").exists():
        pytest.skip("no models/elements (make train export)")
    m = json.loads((DEFAULT / "manifest.json").read_text())
    if m["training"].get("model") != "fastfit+residual":
        pytest.skip("models/elements is not a fast fit + residual bundle")
    bin_kev = m["training"]["fastfit"]["continuum_bin_kev"]
    fit = _fit() if bin_kev == 3.0 else CompiledFit(M6, continuum_bin_kev=bin_kev)
    check_real_m6(DEFAULT, fit)


def test_bench_models_runs_a_bundle_that_takes_live_time(bundle, tmp_path, capsys):
    """`make bench`'s model rows on the served kind of element bundle (it declares live time;
    the fused graph, which shares one input, is left out)."""
    from export.tiny import write_tiny_bundles
    from tests.test_export_bench import load_bench

    write_tiny_bundles(tmp_path)
    shutil.rmtree(tmp_path / "elements")
    shutil.copytree(bundle, tmp_path / "elements")
    assert load_bench().main(["--models", str(tmp_path), "--seconds", "0.03"]) == 0
    out = capsys.readouterr().out
    assert "fastfit+residual" in out and "fused graph" not in out


def test_short_dwell_script_serves_thinned_pixels(bundle, tmp_path, capsys):
    """scripts/short_dwell.py (the README's short-dwell figures): the real M6 spectrum thinned
    to 100 ms, served through a models folder's element bundle, one row per element."""
    from scripts.short_dwell import main

    _real_m6()  # skips without the real file
    shutil.copytree(bundle, tmp_path / "elements")
    assert main(["--models", str(tmp_path), "--dwell-ms", "100", "--draws", "40"]) == 0
    out = capsys.readouterr().out
    assert "100 ms (" in out and "40 pixels" in out
    rows = [line.split() for line in out.splitlines() if line[:3].strip() in ELEMENTS]
    assert [r[0] for r in rows] == list(ELEMENTS)
    ca = rows[0]  # Ca: 16,112 c/s at 28 s, far above 3 sigma at 100 ms: detected everywhere
    assert float(ca[1]) > 10_000 and ca[7] == ca[8] == "100%" and ca[9] == "yes"
    for el in ("Au", "Pb"):  # SNIP several-fold high; served with the continuum: near 28 s
        whole, snip, cont, sigma = (float(v) for v in rows[ELEMENTS.index(el)][1:5])
        off = float(rows[ELEMENTS.index(el)][6])  # (served - 28 s) / sigma
        assert snip > 3 * whole and abs(cont - whole) < (snip - whole) / 3, (el, rows)
        assert abs(off - (cont - whole) / sigma) < 0.01 and abs(off) < 1, (el, rows)


def test_the_fit_runs_a_large_set_in_batches():
    """FitOnGrid runs FIT_BATCH spectra a call (ONNX Runtime's memory grows with the call):
    the same numbers as one call, and an empty set gives empty columns."""
    from export.element_bundle import FIT_BATCH
    from export.fastfit_graph import run

    fit = _fit()
    n = FIT_BATCH + 5
    rates = np.random.default_rng(3).poisson(2.0, (n, fit.grid.channels)).astype(np.float32)
    live = np.full(n, 0.1)
    areas, sigma = fit(rates, live)
    whole = run(fit.session, rates, live.astype(np.float32).reshape(-1, 1))
    # row by row as one call (a kernel may block a 5-row call otherwise: float32 rounding)
    np.testing.assert_allclose(areas, whole[0], rtol=1e-5, atol=1e-5 * np.abs(whole[0]).max())
    np.testing.assert_allclose(sigma, whole[1], rtol=1e-5, atol=1e-5 * whole[1].max())
    empty = fit(rates[:0], live[:0])
    assert empty[0].shape == empty[1].shape == (0, len(fit.outputs))
