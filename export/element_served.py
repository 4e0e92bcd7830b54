"""An element bundle's graph run as the edge runs it (edge.inference.Engine): `Served`, and
`evaluate`, its held-out metrics on a scene's ground truth, fed in scan order with the
scene's continuum where the graph takes one (proto.continuum)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort

from proto.continuum import CONTINUUM_INPUT, ScanContinuum, served
from proto.domain import Domain, Subspace, within_dwell
from proto.energy import EnergyGrid
from proto.energy_axis import AxisCheck
from training.scan_rates import ScanRates

LIVE, GATE = "live_time_s", "in_domain"  # the bundle's extra inputs (proto/BUNDLE.md)


class Served:
    """An element graph in ONNX Runtime, fed as the edge feeds it (edge.inference.Engine):
    in_domain = inside `subspace` and within the `domain`'s dwells."""

    def __init__(self, onnx_bytes: bytes, subspace: Subspace | None,
                 domain: Domain | None = None, threads: int = 2,
                 check: AxisCheck | None = None) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.subspace, self.domain = subspace, domain or Domain()
        self.check = check if CONTINUUM_INPUT in self.inputs else None  # scan continuum's

    def __call__(self, rates: np.ndarray, live: np.ndarray, in_domain: np.ndarray | None = None,
                 continuum: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """((N, 2G) outputs, (N,) in-domain mark as used); `continuum` (2, C): the scan's
        (proto.continuum), default none (per-pixel SNIP)."""
        rates = np.ascontiguousarray(rates, np.float32)
        live = np.asarray(live, np.float32).reshape(-1, 1)
        if in_domain is None:
            in_domain = self.inside(rates, live)
        if continuum is None:
            continuum = np.zeros((2, rates.shape[1]), np.float32)
        feed = {"spectra": rates, LIVE: live, GATE: in_domain.astype(np.float32).reshape(-1, 1),
                CONTINUUM_INPUT: continuum}
        return self.session.run(None, {k: feed[k] for k in self.inputs})[0], in_domain

    def inside(self, rates: np.ndarray, live: np.ndarray) -> np.ndarray:
        """(N,) the edge's in-domain mark: inside the subspace, within the trained dwells."""
        live = np.asarray(live, np.float32).reshape(-1, 1)
        mark = within_dwell(self.domain, live)
        if self.subspace is not None:
            mark &= ~self.subspace.outside(np.ascontiguousarray(rates, np.float32), live)
        return mark

    def outputs(self, rates: np.ndarray, live: np.ndarray, in_domain: np.ndarray,
                continuum: np.ndarray | None) -> np.ndarray:
        return self(rates, live, in_domain, continuum)[0]


def evaluate(run_served: Served, path: Path, names: tuple[str, ...], grid: EnergyGrid,
             chunk: int = 8192) -> dict:
    """Held-out metrics on a scene's ground truth: the bundle as served (in scan order, with
    the scene's continuum as the edge sums it), and the fast fit alone with each pixel's SNIP
    (PyMca's), per element; share served the residual."""
    from training.residual import element_table

    scan = ScanRates(path, grid)
    truth = scan.truth(names)
    got, alone, inside = [], [], []
    g = len(names)

    def fit(rates: np.ndarray, live: np.ndarray, continuum: np.ndarray | None) -> np.ndarray:
        return run_served.outputs(rates, live, np.zeros(len(rates), bool), continuum)[:, :g]

    scene = ScanContinuum(run_served.check, fit) if run_served.check is not None else None
    for i in range(0, len(scan), chunk):
        x, live = scan[i:i + chunk], scan.live[i:i + chunk]
        parts = scene.parts(x, live) if scene else [(slice(None), None, None)]
        for rows, cont, choice in parts:  # as the edge feeds it, in scan order
            mark = run_served.inside(x[rows], live[rows])
            got.append(served(partial(run_served.outputs, x[rows], live[rows], mark), cont,
                              choice)[:, :g])
            alone.append(fit(x[rows], live[rows], None))  # each pixel's SNIP: PyMca's
            inside.append(mark)
    got, alone = np.concatenate(got), np.concatenate(alone)
    return {"scene": path.name, "spectra": len(scan),
            "in_domain": float(np.concatenate(inside).mean()),
            "bundle": element_table(truth, got, names),
            "fast_fit": element_table(truth, alone, names)}
