"""The element bundle: PyMca's fast fit compiled from an instrument description, plus the
learned residual (training.residual_ensemble: the mean of residual MLPs), in one ONNX graph
(issue 13 item 2, proto/BUNDLE.md).

    python -m export.element_bundle train --instrument FILE.toml [--scene m6_corpus]
        [--data data] [--out artifacts/trained] [--name elements] [--epochs N]
        trains the residual on the scene's ground truth (`make train`); `python -m export
        default` then writes models/elements from that artifact (export_elements).

Graph: inputs `spectra` (counts/s on the instrument's own calibration grid, up to 4 keV
above the fit window: bundle_grid), `live_time_s` (N, 1) and, when a residual is kept,
`in_domain` (N, 1: 1 inside the bundle's training domain as the edge decides it: its
in-domain subspace test and a live time within the training's dwells,
proto.domain.within_dwell); one output `elements` = [El..., El_sigma...]: the fast fit's
areas plus in_domain x residual, then the fast fit's counting-statistics 1-sigma. The edge
does what it does for every bundle (rebin, divide by live time) and feeds the two extra inputs.

API (also for `make calibrate`): CompiledFit(instrument) is a training.residual.FitFn;
element_graph(fit, net); train_elements(instrument, scene) -> (net, info);
export_elements(net, info, folder, data) -> (Bundle, Parity); export.element_served runs it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export import domain, graph, parity
from export.element_served import GATE, Served, evaluate
from export.fastfit import FastFitModel, build_model, configured_fit, reference_fit
from export.fastfit_graph import background_check, build_graph, run, session, with_axis_check
from proto.bundle import Bundle, write_bundle
from proto.domain import Domain
from proto.elements import MAP_UNITS
from proto.energy import EnergyGrid
from proto.instrument import InstrumentDescription
from proto.instrument import load as load_description
from training import artifacts
from training.catalogue import EL_TRAIN, HELD_OUT, SCENES, scene_candidates, scene_path
from training.fitconfig import CONTINUUM_BIN_KEV
from training.labels import make_config
from training.residual import ResidualConfig, ResidualNet, served
from training.residual_ensemble import ResidualEnsemble, train_ensemble
from training.scan_rates import ScanRates

MODEL = "fastfit+residual"
Residual = ResidualNet | ResidualEnsemble  # what the graph and `served` take
FIT_BATCH = 4096  # spectra per ONNX Runtime call of FitOnGrid (its memory, see __call__)


def test_scenes(info: dict) -> list[str]:
    """The catalogue's held-out scenes of the training scene, every dwell (m6_corpus ->
    m6_ioannis, m6_ioannis_100ms); none for a scene it does not know."""
    base = HELD_OUT.get(str(info["train_data"]["scene"]).removesuffix("_tiny"))
    return [n for n in SCENES if base and (n == base or n.startswith(f"{base}_"))]
# The bundle grid is the instrument's calibration up to this far above the fit window (the
# M6's to 21 keV: its Rh K Rayleigh peak, which the residual's features read): further up a
# tube's scatter leaves a few counts per 80 eV at 10 ms, too few for the in-domain test's
# square-root shape to stay the same at 100 ms (subspace fitted on m6_corpus, share of
# m6_ioannis_100ms outside: 88 % with the full 41 keV, 34 % to 26 keV, 0 % to 22 keV).
# Channels rounded up to a multiple of 8 (the subspace's 80 eV bins).
GRID_MARGIN_KEV = 4.0


def bundle_grid(desc: InstrumentDescription, fit_kev: tuple[float, float]) -> EnergyGrid:
    full = desc.calibration.grid
    top = math.ceil(full.channel(fit_kev[1] + GRID_MARGIN_KEV) / 8) * 8
    return EnergyGrid(full.offset, full.gain, int(min(full.channels, max(top, 8))))


def sigma_name(output: str) -> str:
    return f"{output}_sigma"


class FitOnGrid:
    """A FastFitModel compiled on `grid`: a training.residual FitFn ((rates, live) -> (areas,
    sigma) counts/s) backed by the graph, with the float64 reference beside it."""

    def __init__(self, model: FastFitModel, grid: EnergyGrid, threads: int = 2) -> None:
        self.model, self.grid = model, grid
        self.graph = build_graph(model, quantity="counts_per_live_second")
        self.session = session(self.graph, threads)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.model.outputs

    def __call__(self, rates: np.ndarray, live_time_s: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        # FIT_BATCH rows a call: ONNX Runtime holds a call's intermediates at once, ~127 kB
        # a spectrum on the M6 graph (16,384 in one call: +2.1 GB peak; 4,096: +0.46 GB)
        live = np.asarray(live_time_s, np.float32).reshape(-1, 1)
        parts = [run(self.session, rates[i:i + FIT_BATCH], live[i:i + FIT_BATCH])
                 for i in range(0, max(len(rates), 1), FIT_BATCH)]
        return np.concatenate([a for a, _ in parts]), np.concatenate([s for _, s in parts])

    def reference(self, rates: np.ndarray, live_time_s: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The same fit in float64 numpy with PyMca's own background code (parity)."""
        return reference_fit(self.model, rates, np.asarray(live_time_s).reshape(-1))


class CompiledFit(FitOnGrid):
    """PyMca's fast fit of an instrument description on its own calibration grid."""

    def __init__(self, instrument: str | Path | InstrumentDescription, *,
                 continuum_bin_kev: float = CONTINUUM_BIN_KEV, threads: int = 2) -> None:
        self.desc = (instrument if isinstance(instrument, InstrumentDescription)
                     else load_description(instrument))
        self.continuum_bin_kev = continuum_bin_kev
        self.cfg = make_config(self.desc, continuum_bin_kev=continuum_bin_kev)
        grid = bundle_grid(self.desc, self.cfg["maxrf"]["fit_kev"])
        self.fitter = configured_fit(self.cfg)  # PyMca's own fit, configured (reference)
        super().__init__(build_model(self.cfg, grid.channels, fitter=self.fitter), grid, threads)


def _residual_nodes(net: Residual, areas: str) -> tuple[list, list, str]:
    """Nodes computing areas + in_domain x net's residual (the weighted sum of its parts, each
    a training.residual.ResidualNet); returns (nodes, inits, the served areas' name)."""
    inits: list[TensorProto] = []

    def c(name: str, value, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), f"res_{name}"))
        return f"res_{name}"

    def n(op: str, ins: list[str], out: str, **kw) -> onnx.NodeProto:
        return helper.make_node(op, ins, [f"res_{out}"], name=f"res_{out}", **kw)

    first = net.parts()[0][0]  # every part reads the same window (ResidualEnsemble)
    nodes = [
        n("Slice", ["spectra", c("start", [first.start], np.int64),
                    c("stop", [first.stop], np.int64), c("axis", [1], np.int64)], "window"),
        n("Reshape", ["res_window", c("shape", [-1, first.features, first.bin], np.int64)],
          "cube"),
        n("ReduceSum", ["res_cube", c("last", [2], np.int64)], "binned", keepdims=0),
        n("Relu", ["res_binned"], "pos"), n("Sqrt", ["res_pos"], "root"),
    ]
    terms = []
    for i, (part, weight) in enumerate(net.parts()):
        coef = (part.keep * weight * part.out_scale).detach().numpy()
        if not coef.any():
            continue  # a part that serves no element: not in the graph
        p = {k: v.detach().numpy().astype(np.float32) for k, v in part.state_dict().items()}
        m = f"m{i}_"
        nodes += [
            n("Mul", [areas, c(f"{m}inv_out", 1.0 / p["out_scale"])], f"{m}a"),
            n("Sub", ["res_root", c(f"{m}mean", p["mean"])], f"{m}centred"),
            n("Mul", [f"res_{m}centred", c(f"{m}inv_scale", p["inv_scale"])], f"{m}f"),
            n("Mul", ["res_binned", c(f"{m}inv_rate", p["inv_rate_scale"])], f"{m}lin_x0"),
            n("Concat", [f"res_{m}lin_x0", f"res_{m}a"], f"{m}lin_x", axis=1),
            n("Gemm", [f"res_{m}lin_x", c(f"{m}lin_w", p["linear.weight"]),
                       c(f"{m}lin_b", p["linear.bias"])], f"{m}lin", transB=1),
            n("Gemm", [f"res_{m}f", c(f"{m}w1", p["body.0.weight"]),
                       c(f"{m}b1", p["body.0.bias"])], f"{m}pre", transB=1),
            n("Relu", [f"res_{m}pre"], f"{m}hidden"),
            n("Gemm", [f"res_{m}hidden", c(f"{m}w2", p["body.2.weight"]),
                       c(f"{m}b2", p["body.2.bias"])], f"{m}out", transB=1),
            n("Add", [f"res_{m}lin", f"res_{m}out"], f"{m}sum"),
            n("Mul", [f"res_{m}sum", c(f"{m}coef", coef)], f"{m}res"),
        ]
        terms.append(f"res_{m}res")
    nodes += [
        n("Sum", terms, "residual"),
        n("Mul", ["res_residual", GATE], "gated"),
        n("Add", [areas, "res_gated"], "served"),
    ]
    return nodes, inits, "res_served"


def element_graph(fit: CompiledFit, net: Residual | None) -> onnx.ModelProto:
    """The bundle graph: the compiled fast fit, the residual where any element keeps one."""
    gated = net is not None and bool(net.serves.any())
    # the scan's continuum serves where the residual does not: it learned SNIP's areas
    m = build_graph(fit.model, quantity="counts_per_live_second",
                    continuum=bool(fit.model.snip_width), gate=GATE if gated else None)
    g = m.graph
    del g.output[:]
    areas, sigma = "areas", "sigma"
    if gated:
        nodes, inits, areas = _residual_nodes(net, areas)
        g.node.extend(nodes)
        g.initializer.extend(inits)
        if GATE not in (i.name for i in g.input):  # a fit without a background to gate
            g.input.append(helper.make_tensor_value_info(GATE, TensorProto.FLOAT, ["N", 1]))
    out = graph.OUTPUT_NAMES["elements"]
    g.node.append(helper.make_node("Concat", [areas, sigma], [out], name="out_concat", axis=1))
    width = 2 * len(fit.outputs)
    g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", width]))
    del m.metadata_props[:]  # the fast fit's own maxrf.* keys are not the bundle's
    graph.stamp(m, "elements", fit.grid.to_dict(), outputs(fit.outputs), MAP_UNITS)
    onnx.checker.check_model(m, full_check=True)
    return m


def outputs(elements: tuple[str, ...]) -> list[str]:
    return [*elements, *(sigma_name(e) for e in elements)]


def extra_inputs(onx: onnx.ModelProto) -> list[str]:
    return [i.name for i in onx.graph.input if i.name != "spectra"]


def train_elements(instrument: str | Path | InstrumentDescription, scene: str | Path, *,
                   cfg: ResidualConfig | None = None, fit: CompiledFit | None = None
                   ) -> tuple[ResidualEnsemble, dict]:
    """The residual on a simulated scene's ground truth (the scene made by the simulator from
    the same description): the mean of training.residual_ensemble.members(cfg), each trained
    with the last rows of each panel (ScanRates.held_out) choosing its epoch and elements,
    then again on every pixel."""
    fit, cfg = fit or CompiledFit(instrument), cfg or ResidualConfig()
    scan = ScanRates(scene, fit.grid)
    t0 = time.perf_counter()
    net, metrics = train_ensemble(fit, scan, scan.live, scan.truth(fit.outputs),
                                  held_out=scan.held_out(), outputs=fit.outputs, grid=fit.grid,
                                  cfg=cfg)
    info = {
        "kind": "elements", "model": MODEL, "grid": fit.grid.to_dict(),
        "outputs": outputs(fit.outputs), "units": MAP_UNITS,
        "train_data": {"scene": Path(scene).stem, "path": str(scene), "spectra": len(scan),
                       "targets": "ground truth maps (proto.elements.MAP_DEFINITION)"},
        "metrics": metrics, "train_seconds": round(time.perf_counter() - t0, 1),
        "instrument": {"name": fit.desc.name, "fingerprint": fit.desc.fingerprint(),
                       "description": fit.desc.to_dict()},
        "fastfit": {"continuum_bin_kev": fit.continuum_bin_kev,
                    "refit_passes": fit.model.refit_passes, "fit_kev": fit.cfg["maxrf"]["fit_kev"],
                    "groups": list(fit.model.names)},
        "config": cfg.to_dict(),
    }
    return net, info


def parity_set(fit: CompiledFit, info: dict, data: str | Path, n: int = 1024
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """Held-out (rates, live) for parity: pixels of the test scene (or the training one) and
    the same at a tenth of their live time (Poisson), plus an all-zero spectrum."""
    paths = [p for name in test_scenes(info)[:1] for p in scene_candidates(data, name)
             if p.exists()]
    paths.append(Path(info["train_data"]["path"]))
    path = next(p for p in paths if p.exists())
    scan = ScanRates(path, fit.grid)
    pick = np.sort(np.random.default_rng(0).choice(len(scan), min(n, len(scan)), False))
    rows = np.concatenate([scan[int(i):int(i) + 1] for i in pick])
    live = scan.live[pick]
    rng, short = np.random.default_rng(1), live / 10
    noisy = rng.poisson(np.maximum(rows, 0) * short[:, None]) / short[:, None]
    rates = np.concatenate([rows, noisy, np.zeros((1, rows.shape[1]))]).astype(np.float32)
    lives = np.concatenate([live, short, [0.01]]).astype(np.float32)
    reps = -(-parity.MIN_SPECTRA // len(rates))
    return np.tile(rates, (reps, 1)), np.tile(lives, reps), f"{path.name}, + 1/10 live resamples"


def fit_agreement(fit: CompiledFit, x: np.ndarray, live: np.ndarray, areas: np.ndarray) -> dict:
    """The compiled fit (float32) against the same algorithm in float64 with PyMca's own
    background code: within 1 % or 0.5 sigma everywhere, the issue's bar for the fit against
    PyMca (a strict 1e-4 parity cannot hold: where an area sits at zero a float32 rounding
    can flip which groups the refit fixes, a step of a fraction of sigma). Raises if not."""
    ref, ref_sigma = fit.reference(x, live)
    d = np.abs(areas - ref)
    bound = np.maximum(0.01 * np.abs(ref), 0.5 * ref_sigma)
    ok = d <= bound + 1e-6 * np.abs(ref).max()
    worst = np.unravel_index(int(np.argmax(d / np.maximum(bound, 1e-12))), d.shape)
    out = {"spectra": len(x), "within_1pct_or_half_sigma": float(ok.mean()),
           "worst": {"spectrum": int(worst[0]), "output": fit.outputs[worst[1]],
                     "compiled": float(areas[worst]), "float64": float(ref[worst]),
                     "sigma": float(ref_sigma[worst])}}
    if not ok.all():
        raise parity.ParityError(f"compiled fast fit off its float64 reference: {out}")
    return out


def export_elements(net: Residual, info: dict, folder: str | Path, data: str | Path | None,
                    fit: CompiledFit | None = None) -> tuple[Bundle, parity.Parity]:
    """Rebuild the fast fit from the artifact's instrument description, merge the residual,
    prove parity against the compiled fit alone + the torch residual (and the fit against its
    float64 reference, fit_agreement), state the domain, measure the held-out scenes as
    served, write the bundle."""
    fit = fit or CompiledFit(InstrumentDescription.from_dict(info["instrument"]["description"]),
                             continuum_bin_kev=info["fastfit"]["continuum_bin_kev"])
    onx = element_graph(fit, net)
    onnx_bytes = graph.finalize(onx)
    x, live, source = parity_set(fit, info, data or "data")
    gate = np.arange(len(x)) % 3 != 0  # served and not, alike checked
    areas, sigma = fit(x, live)  # the compiled fit alone (tests/test_fastfit.py: = PyMca)
    want = served(net, areas, sigma, x, gate)
    got, _ = Served(onnx_bytes, None)(x, live, gate)
    p = parity.compare(got, want, outputs(fit.outputs), source)
    if not p.ok:
        raise parity.ParityError(f"{p.line()}\n{p.worst()}")
    metrics = {**info.get("metrics", {}), "parity": p.to_dict(),
               "fast_fit_vs_float64": fit_agreement(fit, x, live, areas)}
    fields = {"kind": "elements", "grid": fit.grid.to_dict(),
              "output_name": graph.OUTPUT_NAMES["elements"], "outputs": outputs(fit.outputs),
              "units": MAP_UNITS, "opset": graph.default_opset(onx),
              "extra_inputs": extra_inputs(onx),
              "training": {"artifact": "elements", "framework": "torch", "model": MODEL,
                           "data": info.get("train_data", {}), "fastfit": info.get("fastfit"),
                           "config": info.get("config", {})},
              "metrics": metrics}
    subspace = None
    if data is not None:
        stated, subspace = domain.describe(info, data)
        fields.update(stated)
        # the subspace entry is completed by write_bundle; the dwell is what the gate needs
        stated_domain = {k: v for k, v in stated.get("domain", {}).items() if k != "subspace"}
        serve = Served(onnx_bytes, subspace, Domain.from_dict(stated_domain),
                       check=background_check(fit.model, fit.grid))
        tests = [next(p for p in scene_candidates(data, name) if p.exists())
                 for name in test_scenes(info)
                 if any(p.exists() for p in scene_candidates(data, name))]
        metrics["test"] = {p.stem: evaluate(serve, p, fit.outputs, fit.grid) for p in tests}
    fields["metrics"] = _finite(metrics)  # r of a map without signal is NaN: null
    fields, files = with_axis_check(fields, fit.model, fit.grid)
    return write_bundle(folder, onnx_bytes, fields, subspace, files), p


def _finite(x):
    """`x` with every non-finite float as None (a manifest is strict JSON)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.element_bundle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the residual on a simulated scene -> artifact")
    t.add_argument("--instrument", required=True, help="instrument description (TOML)")
    t.add_argument("--data", default="data", help="folder with the scene files")
    t.add_argument("--scene", default=EL_TRAIN, help="training scene name (or a file)")
    t.add_argument("--out", default=str(artifacts.DEFAULT_ROOT), help="artifacts folder")
    t.add_argument("--name", default="elements", help="artifact name under --out")
    t.add_argument("--epochs", type=int, default=ResidualConfig.epochs)
    t.add_argument("--seed", type=int, default=ResidualConfig.seed,
                   help="the MLP's seed (another draw of the same recipe)")
    a = ap.parse_args(argv)
    t0, cfg = time.perf_counter(), ResidualConfig(epochs=a.epochs, seed=a.seed)
    try:
        scene = Path(a.scene) if Path(a.scene).is_file() else scene_path(a.data, a.scene)
        net, info = train_elements(a.instrument, scene, cfg=cfg)
    except (OSError, ValueError) as exc:  # a wrong path, a description it cannot train
        print(f"element_bundle: {exc}", file=sys.stderr)
        return 1
    folder = artifacts.save(a.name, net, info, a.out)
    kept = [e for e, k in info["metrics"]["residual_kept"].items() if k]
    print(f"elements: fast fit of {info['instrument']['name']} + residual kept for "
          f"{', '.join(kept) or 'no element'} -> {folder} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
