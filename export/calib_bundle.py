"""The element bundle `make calibrate` writes, its runner, and held-out scores in its manifest.

`write_element_bundle` writes export.element_bundle's graph (the compiled fast fit at the
calibrated configuration, + the residual where one is kept; inputs live time and in-domain
mark beside the spectra, outputs areas then sigma) when that exporter is installed, else
`fastfit_bundle`: PyMca's fast fit of the calibrated configuration (export.fastfit_graph)
with the bundle contract's one input (counts per live second on the scan's own grid) and one
output, the element areas in counts/s. The fit is scale-equivariant (Savitzky-Golay and the
two-tap SNIP mean are linear, the clip and the refit's sign tests are unchanged by a positive
factor), so areas from counts per live second are the areas from counts divided by the live
time; only sigma needs the live time, and it stays with the fit's own two-input graph.

The grid is the scan's as the stream states it; the fit inside is built at PyMca's refined
calibration, so channel i is read at the refined energy of channel i (PyMca's own convention),
and a stream whose stated calibration is ~20 eV off is still fitted where its peaks are.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from export import parity as parity_check
from export.element_bundle import FitOnGrid
from export.fastfit import FastFitModel, reference_fit
from export.fastfit_graph import build_graph, with_axis_check
from export.graph import check_contract, finalize, stamp
from proto.bundle import CONTINUUM_INPUT, Bundle, Manifest, load_bundle, write_bundle
from proto.continuum import ScanContinuum, served
from proto.domain import Subspace, fit_subspace
from proto.elements import map_outputs
from proto.energy import EnergyGrid, Rebinner, counts_per_live_second
from proto.energy_axis import AxisVerdict, decide_in_order, load_check
from training.jsonutil import jsonable

OUTPUT = "elements"
UNITS = "counts/s"
DOMAIN_COMPONENTS, DOMAIN_BIN = 64, 4


def write_element_bundle(fit: FitOnGrid, net, folder: str | Path, *, check_counts: np.ndarray,
                         check_live: np.ndarray, fields: dict,
                         subspace: Subspace | None = None) -> tuple[Bundle, dict, str]:
    """(bundle, parity, what it serves): export.element_bundle's graph with `net` (None: the
    fast fit alone), checked against the float64 fit + torch residual; without that
    exporter, the fast fit alone (fastfit_bundle)."""
    try:
        from export import element_bundle as eb
        from training.residual import served
    except ImportError as exc:
        b, p = fastfit_bundle(fit.model, fit.grid, folder, check_counts=check_counts,
                              check_live=check_live, fields=fields, subspace=subspace)
        return b, p, f"fast fit alone (export.element_bundle not available: {exc})"
    onx = eb.element_graph(fit, net)
    data = finalize(onx)
    live = np.maximum(np.asarray(check_live, np.float64), 1e-12).astype(np.float32)
    x = (check_counts / live[:, None]).astype(np.float32)
    reps = -(-parity_check.MIN_SPECTRA // max(len(x), 1))
    areas, sigma = (np.tile(v, (reps, 1)) for v in fit.reference(x, live))  # float64, once
    x, live = np.tile(x, (reps, 1)), np.tile(live, reps)
    gate = (np.arange(len(x)) % 3 != 0).astype(np.float32)  # served and gated off, alike
    want = torch_served(served, net, x, live, areas, sigma, gate)
    sess = session(data)
    feed = {"spectra": x, "live_time_s": live.reshape(-1, 1), "in_domain": gate.reshape(-1, 1),
            CONTINUUM_INPUT: np.zeros((2, x.shape[1]), np.float32)}  # SNIP, as the reference
    got = sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})[0]
    p = parity_check.compare(got, want, eb.outputs(fit.outputs), "held-out spectra")
    if not p.ok:
        raise parity_check.ParityError(f"{p.line()}\n{p.worst()}")
    kept = net is not None and bool(net.serves.any())
    fields = {**fields, "kind": "elements", "grid": fit.grid.to_dict(), "output_name": OUTPUT,
              "outputs": eb.outputs(fit.outputs), "units": UNITS,
              "opset": max(op.version for op in onx.opset_import if op.domain in ("", "ai.onnx")),
              "extra_inputs": eb.extra_inputs(onx)}
    fields["metrics"] = {**fields.get("metrics", {}), "parity": p.to_dict()}
    what = "fast fit + residual" if kept else "fast fit alone (no residual kept)"
    fields, files = with_axis_check(fields, fit.model, fit.grid)
    return write_bundle(folder, data, fields, subspace, files), p.to_dict(), what


def torch_served(served, net, rates: np.ndarray, live: np.ndarray, areas: np.ndarray,
                 sigma: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """training.residual.served by its argument names (its order has changed between
    versions; where it still gates on live time itself, that is passed too)."""
    import inspect

    given = {"net": net, "rates": rates, "live_time_s": live, "areas": areas, "sigma": sigma,
             "in_domain": gate}
    names = inspect.signature(served).parameters
    return served(**{k: v for k, v in given.items() if k in names})


def areas_graph(model: FastFitModel) -> onnx.ModelProto:
    """The fit with the bundle's I/O: spectra (N, C) counts/s -> elements (N, G) counts/s."""
    continuum = bool(model.snip_width)  # the scan's, at short dwell (proto.continuum)
    m = build_graph(model, continuum=continuum)  # quantity "counts": no live-time input
    inputs = ["spectra", CONTINUUM_INPUT] if continuum else ["spectra"]
    m = onnx.utils.Extractor(m).extract_model(inputs, ["areas"])
    g = m.graph
    g.node.append(helper.make_node("Identity", ["areas"], [OUTPUT], name="out_elements"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT,
                                                  ["batch", len(model.outputs)]))
    g.input[0].CopyFrom(helper.make_tensor_value_info("spectra", onnx.TensorProto.FLOAT,
                                                      ["batch", model.channels]))
    m.opset_import[0].version = max(m.opset_import[0].version, 17)
    return m


def domain_fields(rates: np.ndarray, live: np.ndarray, grid: EnergyGrid) -> dict:
    """The manifest's domain besides the subspace (BUNDLE.md): energy range with signal and
    the training pixels' dwell (their live time: a lab file's real time may be absent)."""
    from export.domain import signal_range

    return {"energy_kev": signal_range(rates, grid),
            "dwell_s": [float(f"{live.min():.6g}"), float(f"{live.max():.6g}")],
            "count_rate_cps": [round(float(v), 1) for v in np.percentile(
                rates.sum(axis=1), (0.1, 99.9))]}


def domain_of(rates: np.ndarray, live: np.ndarray, seed: int = 0) -> Subspace | None:
    """The edge's in-domain test fitted on the training pixels (four fifths fit, one fifth
    sets the threshold), on the bundle grid; None when there are too few pixels."""
    n = len(rates)
    if n < 10 or rates.shape[1] % DOMAIN_BIN:
        return None
    order = np.random.default_rng(seed).permutation(n)
    cut = max(2, round(0.8 * n))
    fit, held = order[:cut], order[cut:]
    k = max(1, min(DOMAIN_COMPONENTS, len(fit) - 1))
    return fit_subspace(rates[fit], live[fit], rates[held], live[held], k, DOMAIN_BIN)


def fastfit_bundle(model: FastFitModel, grid: EnergyGrid, folder: str | Path, *,
                   check_counts: np.ndarray, check_live: np.ndarray, fields: dict,
                   subspace: Subspace | None = None) -> tuple[Bundle, dict]:
    """Write the fast-fit-only element bundle after checking ONNX Runtime against the same
    algorithm in float64 (export.fastfit.reference_fit) on `check_counts` (held-out counts):
    every area within 1 % or 0.5 sigma, the issue's bar. Returns (bundle, parity)."""
    if grid.channels != model.channels:
        raise ValueError(f"model for {model.channels} channels, grid has {grid.channels}")
    m = areas_graph(model)
    extra = tuple(i.name for i in m.graph.input[1:])
    check_contract(m, grid.channels, OUTPUT, len(model.outputs), extra)
    stamp(m, "elements", grid.to_dict(), model.outputs, UNITS)
    data = finalize(m)
    live = np.maximum(np.asarray(check_live, np.float64), 1e-12)
    ref, sigma = reference_fit(model, check_counts)
    sess = session(data)
    feed = {"spectra": (check_counts / live[:, None]).astype(np.float32),
            CONTINUUM_INPUT: np.zeros((2, grid.channels), np.float32)}  # SNIP, as PyMca
    ours = sess.run([OUTPUT], {i.name: feed[i.name] for i in sess.get_inputs()})[0] \
        * live[:, None]
    tol = np.maximum(0.01 * np.abs(ref), 0.5 * sigma)
    ratio = float((np.abs(ours - ref) / np.maximum(tol, 1e-12)).max()) if len(ref) else 0.0
    parity = {"spectra": len(ref), "reference": "export.fastfit.reference_fit (float64)",
              "tolerance": "1 % or 0.5 sigma", "ratio": ratio}
    if ratio > 1:
        raise ValueError(f"compiled fast fit differs from its float64 reference: {parity}")
    fields = {**fields, "kind": "elements", "grid": grid.to_dict(), "output_name": OUTPUT,
              "outputs": list(model.outputs), "units": UNITS, "opset": 17,
              "extra_inputs": list(extra)}
    fields["metrics"] = {**fields.get("metrics", {}), "parity": parity}
    fields, files = with_axis_check(fields, model, grid)
    return write_bundle(folder, data, fields, subspace, files), parity


def session(data: bytes, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


class Served:
    """A bundle read back from disk and run as the edge runs it: the stream's counts rebinned
    onto the manifest grid and divided by live time; the live time and the in-domain mark
    (the bundle's own subspace test) where the graph takes them; the first len(outputs)
    columns (the areas; sigma follows where the bundle serves it). A stream's energy axis is
    decided as the daemon decides it on the same pixels in the same order (proto.energy_axis):
    `verdict` holds the last decision."""

    def __init__(self, folder: str | Path) -> None:
        self.bundle = load_bundle(folder)
        self.manifest = self.bundle.manifest
        self.sess = session(self.bundle.model_bytes)
        self.inputs = [i.name for i in self.sess.get_inputs()]
        self.axis = load_check(self.bundle, lambda data: session(data).run)
        self.verdict: AxisVerdict | None = None

    def axis_for(self, counts: np.ndarray, grid: EnergyGrid) -> EnergyGrid:
        """The axis the edge reads a stream of these pixels (scan order), stated as `grid`, on."""
        if self.axis is None:
            return grid
        self.verdict = decide_in_order(self.axis, counts, grid)
        return self.verdict.served

    def __call__(self, counts: np.ndarray, live: np.ndarray, grid: EnergyGrid,
                 outputs: tuple[str, ...], batch: int = 1024, gate: bool = True,
                 axis: EnergyGrid | None = None) -> np.ndarray:
        """The served columns `outputs` of pixels `counts` of a stream stated on `grid`, read
        on `axis` (None: as the edge decides it on these pixels, axis_for)."""
        rebin = Rebinner(axis or self.axis_for(counts, grid), self.manifest.grid)
        cols = [self.manifest.outputs.index(e) for e in outputs]
        out = []
        zeros = np.zeros((2, self.manifest.grid.channels), np.float32)  # no continuum: SNIP

        def run(x: np.ndarray, t: np.ndarray, mark: np.ndarray, continuum: np.ndarray | None
                ) -> np.ndarray:
            feed = {"spectra": x, "live_time_s": t.reshape(-1, 1), "in_domain": mark,
                    CONTINUUM_INPUT: zeros if continuum is None else continuum}
            return self.sess.run([self.manifest.output_name],
                                 {k: feed[k] for k in self.inputs})[0]

        areas = len(map_outputs(self.manifest.outputs))

        def fit(x: np.ndarray, t: np.ndarray, continuum: np.ndarray | None) -> np.ndarray:
            return run(x, t, np.zeros((len(x), 1), np.float32), continuum)[:, :areas]

        scan = (ScanContinuum(self.axis, fit) if CONTINUUM_INPUT in self.inputs and self.axis
                else None)  # the stream's continuum, as the edge sums it (proto.continuum)
        for i in range(0, len(counts), batch):
            t = np.maximum(live[i:i + batch], 1e-12)
            x = counts_per_live_second(counts[i:i + batch], t, rebin)
            t = t.astype(np.float32).reshape(-1, 1)
            inside = self.in_domain(x, t.reshape(-1)).astype(np.float32).reshape(-1, 1)
            for rows, continuum, choice in (scan.parts(x, t) if scan
                                            else [(slice(None), None, None)]):
                y = served(partial(run, x[rows], t[rows], inside[rows] * gate), continuum,
                           choice)
                out.append(y[:, cols])
        return np.concatenate(out) if out else np.zeros((0, len(cols)), np.float32)

    def inside(self, counts: np.ndarray, live: np.ndarray, grid: EnergyGrid) -> np.ndarray:
        """(N,) where the residual is served: `in_domain` of the stream's counts on `grid`."""
        t = np.maximum(live, 1e-12)
        rebin = Rebinner(self.axis_for(counts, grid), self.manifest.grid)
        return self.in_domain(counts_per_live_second(counts, t, rebin), t.astype(np.float32))

    def in_domain(self, rates: np.ndarray, live: np.ndarray) -> np.ndarray:
        """(N,) the edge's gate: inside the subspace and within the training dwells."""
        inside = np.ones(len(rates), bool)
        if self.bundle.subspace is not None:
            inside &= ~self.bundle.subspace.outside(rates, live)
        try:
            from proto.domain import within_dwell
        except ImportError:  # a proto without dwell gating
            return inside
        return inside & within_dwell(self.manifest.training_domain, live)


def add_metrics(folder: str | Path, metrics: dict) -> Manifest:
    """Merge `metrics` into a written bundle's manifest (the graph and its sha256 unchanged;
    the manifest is rewritten whole, atomically, and read back through the loader)."""
    bundle = load_bundle(folder)
    d = bundle.manifest.to_dict()
    d["metrics"] = {**d.get("metrics", {}), **finite(jsonable(metrics))}
    return write_bundle(folder, bundle.model_bytes, d, bundle.subspace).manifest


def finite(x: Any) -> Any:
    """JSON-ready values with NaN and infinities as None (a manifest is strict JSON)."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x

