"""PyMca's fast linear fit (FastXRFLinearFit), taken apart so it can be compiled to one graph.

What `FastXRFLinearFit.fitMultipleSpectra(y, configuration=cfg, weight=0, refit=1)` does to
each spectrum (PyMca 5.9, read from its source and checked against it in tests/test_fastfit.py):

1. trims the spectrum to the fit window [xmin, xmax];
2. background (`_fitBkgSubtract`): `SpecfitFuns.SavitskyGolay(y, stripfilterwidth)` (a
   linear smoother, except that where it goes negative the raw count is kept), then
   `SpecfitFuns.snip1d(., snipwidth, 0)`: for p = snipwidth .. 1 every channel i in
   [p, L - p) becomes min(b[i], (b[i-p] + b[i+p]) / 2), on all channels but the last (the
   default anchors are [0, n-1]; the last channel keeps its smoothed value).
   `stripiterations` is not used by the fast fit;
3. areas = pinv(D) @ (y - background): D is PyMca's own matrix of unit-area group
   responses (`_fitCreateModel` -> `linearMcaTheoryDerivative`, escape peaks included),
   solved unweighted by SVD (`PyMcaMath.linalg.lstsq`);
4. refit: groups with negative areas are fixed at zero and the spectrum refitted, the
   negative set re-read after each refit (groups fixed earlier come back), at most
   2P + 1 times; whatever is still negative is then set to zero. For one spectrum this
   often ends in a two-cycle, so the answer is that of the last (odd) refit: an odd number
   of passes reproduces it (REFIT_PASSES). On a whole map PyMca picks the most common
   negative pattern per pass across pixels, so a pixel's result there depends on the
   others; a live fit sees one pixel, and follows the one-spectrum rule.

`FastFitModel` holds the constants of those steps for one configuration and calibration;
`export.fastfit_graph` turns it into ONNX, `reference_fit` is the same algorithm in
float64 numpy (with PyMca's own background code), and `pymca_fast_fit` runs PyMca itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PyMca5.PyMcaIO import ConfigDict
from PyMca5.PyMcaMath.fitting import SpecfitFuns
from PyMca5.PyMcaPhysics.xrf.FastXRFLinearFit import FastXRFLinearFit

from proto.elements import ELEMENTS, LINE_GROUP
from training.fitconfig import check_pymca_limits

# Odd, as PyMca's 2P + 1 refits (module docstring). Against PyMca spectrum by spectrum on the
# 400 IXRF spectra: 1 pass leaves 70 on another exclusion set, 3 passes 3, 5 passes none.
REFIT_PASSES = 5
_PROBE_BASE = 1000.0  # SavitskyGolay probed on a raised baseline so its clip never fires


@dataclass(frozen=True)
class SavGol:
    """PyMca's SavitskyGolay on n channels as a linear map: an interior kernel plus the
    exact rows of its first and last channels (PyMca treats the ends its own way)."""

    kernel: np.ndarray  # (2h + 1,) weights, output i = sum_k kernel[k] * y[i - h + k]
    head: np.ndarray  # (rows, cols): output rows [0, rows) from input channels [0, cols)
    tail: np.ndarray  # (rows, cols): last rows from the last cols channels

    @property
    def half(self) -> int:
        return self.kernel.size // 2


@dataclass(frozen=True)
class FastFitModel:
    names: tuple[str, ...]  # PyMca's free parameters, in its order ("Ca K", "Pb L3", ...)
    peaks: np.ndarray  # (P,) bool: a peak group (refit when negative), not a background term
    derivatives: np.ndarray  # (n, P) PyMca's unit-area responses on the fit window
    weights: np.ndarray  # (P, n) its least-squares weights: areas = weights @ net counts
    first: int  # first channel of the fit window
    channels: int  # spectrum length the model takes
    savgol: SavGol | None  # None: no smoothing before SNIP (stripfilterwidth < 3)
    filter_width: int  # the configuration's stripfilterwidth
    snip_width: int  # 0: no background (stripflag off)
    outputs: tuple[str, ...]  # output columns
    combine: np.ndarray  # (G, P) 0/1: which parameters sum into each output
    refit_passes: int = REFIT_PASSES
    zero: float = 0.0  # energy calibration the model was built for, keV
    gain: float = 0.01

    @property
    def window(self) -> int:
        return self.weights.shape[1]

    @property
    def covariance(self) -> np.ndarray:
        """(P, P) = pinv(D) pinv(D)^T: the unit-weight covariance PyMca reports."""
        return self.weights @ self.weights.T


def family(name: str) -> str:
    """PyMca group -> line family: 'Pb L3' -> 'Pb L', 'Ca K' -> 'Ca K'."""
    return name.rstrip("0123456789")


def main_family(element: str, present: tuple[str, ...]) -> str:
    """The family an element's map counts: LINE_GROUP's for the study's eight, else the first
    of K, L, M fitted (Co K, Ba L and Sn L on the M6, whose window ends below Ba and Sn K)."""
    if element in LINE_GROUP:
        return f"{element} {LINE_GROUP[element]}"
    return next((f for g in "KLM" if (f := f"{element} {g}") in present), f"{element} K")


def map_lines(model: FastFitModel) -> tuple[str, ...]:
    """Each output's line family ('Co K'), as combine sums it."""
    names = [n for n, p in zip(model.names, model.peaks, strict=True) if p]
    return tuple(family(names[int(np.flatnonzero(row)[0])])
                 for row in model.combine[:, model.peaks])


def combine_matrix(names: tuple[str, ...], outputs: tuple[str, ...] | str | None
                   ) -> tuple[tuple[str, ...], np.ndarray]:
    """Output names and the (G, P) sum matrix. `outputs`: None -> the map elements of
    proto.elements found in the config, each its main family (LINE_GROUP: 'Pb' = Pb L1+L2+L3,
    the map definition of training.labels); a tuple of element symbols -> those (another
    element's main family: the first of K, L, M that the config fits); 'families' -> every
    line family ('Ca K', 'Pb L', 'Pb M', ...); 'groups' -> PyMca's parameters."""
    if outputs == "groups":
        return names, np.eye(len(names))
    present = tuple(dict.fromkeys(family(n) for n in names))
    if outputs == "families":
        keys = [(f, f) for f in present]
    else:
        if outputs is None:
            outputs = tuple(el for el in ELEMENTS if f"{el} {LINE_GROUP[el]}" in present)
        keys = [(el, main_family(el, present)) for el in outputs]
    rows = np.array([[1.0 if family(n) == fam else 0.0 for n in names] for _, fam in keys])
    missing = [k for (k, _), r in zip(keys, rows, strict=True) if not r.any()]
    if missing:
        raise ValueError(f"no fit parameter for {missing} in this configuration")
    return tuple(k for k, _ in keys), rows.reshape(len(keys), len(names))


def probe_savgol(n: int, width: int) -> SavGol | None:
    """PyMca's smoother as a matrix, read off its response to unit impulses (so its edge
    handling is PyMca's own), then split into kernel and edge blocks."""
    if width < 3:
        return None
    eye = np.eye(n) + _PROBE_BASE
    base = SpecfitFuns.SavitskyGolay(np.full(n, _PROBE_BASE), width)
    m = np.stack([SpecfitFuns.SavitskyGolay(eye[i], width) - base for i in range(n)], axis=1)
    m[np.abs(m) < 1e-12] = 0.0
    mid = n // 2
    support = np.nonzero(m[mid])[0] - mid
    half = int(np.abs(support).max()) if support.size else 0
    kernel = m[mid, mid - half:mid + half + 1]
    if n < 4 * half + 8:
        raise ValueError(f"fit window of {n} channels too short for a {width}-channel smoother")
    toeplitz = np.zeros_like(m)
    for k, c in enumerate(kernel):
        toeplitz += c * np.eye(n, k=k - half)
    odd = np.nonzero(np.abs(m - toeplitz).max(axis=1) > 1e-9)[0]
    head_rows = int(odd[odd < mid].max()) + 1 if (odd < mid).any() else half
    tail_rows = n - int(odd[odd >= mid].min()) if (odd >= mid).any() else half
    head_rows, tail_rows = max(head_rows, half), max(tail_rows, half)
    cols_h = int(np.nonzero(m[:head_rows].any(axis=0))[0].max()) + 1
    cols_t = n - int(np.nonzero(m[n - tail_rows:].any(axis=0))[0].min())
    return SavGol(kernel.copy(), m[:head_rows, :cols_h].copy(),
                  m[n - tail_rows:, n - cols_t:].copy())


class ConfiguredFit(FastXRFLinearFit):
    """PyMca's fast fit whose configuration step (seconds: every line, rate and escape of the
    config) runs on the first call only, so it can be called once per spectrum."""

    _configured: tuple | None = None

    def _fitConfigure(self, **kwargs) -> tuple:
        if self._configured is None:
            self._configured = super()._fitConfigure(**kwargs)
        return self._configured


def configured_fit(cfg: ConfigDict.ConfigDict) -> ConfiguredFit:
    """PyMca's fast fit with `cfg` configured: what fitMultipleSpectra sets up (the linear,
    unweighted fit), done once; build_model and pymca_fast_fit can share it."""
    check_pymca_limits(cfg)
    logging.getLogger("PyMca5").setLevel(logging.ERROR)
    fitter = ConfiguredFit()
    fitter._fitConfigure(configuration=cfg, concentrations=False, weight=0, nSpectra=1)
    return fitter


def build_model(cfg: ConfigDict.ConfigDict, channels: int = 4096, *,
                outputs: tuple[str, ...] | str | None = None,
                refit_passes: int = REFIT_PASSES, fitter: ConfiguredFit | None = None
                ) -> FastFitModel:
    """The fast fit of `cfg` (its calibration and fit window) for `channels`-long spectra;
    `fitter`: a configured_fit(cfg) to reuse (PyMca's configuration takes seconds)."""
    check_pymca_limits(cfg)  # before SavGol probes PyMca's smoothing at the config's width
    fit = cfg["fit"]
    if fit.get("stripflag") and fit.get("stripalgorithm") != 1:
        raise ValueError("the fast fit needs the SNIP background (fit.stripalgorithm = 1)")
    anchors = fit.get("stripanchorslist") or []
    if fit.get("stripflag") and fit.get("stripanchorsflag") and any(anchors):
        raise NotImplementedError("SNIP anchors are not compiled; clear fit.stripanchorsflag")
    if outputs is None and "maps" in cfg.get("maxrf", {}):  # a description's [fit] maps
        maps = cfg["maxrf"]["maps"]
        outputs = (maps,) if isinstance(maps, str) else tuple(maps)  # a .cfg's one-item list
    fitter = fitter or configured_fit(cfg)
    config = fitter._configured[1]
    x = np.arange(channels, dtype=np.float64)
    # the design matrix does not depend on the reference spectrum (checked in tests)
    fitter._mcaTheory.setData(x=x, y=np.ones(channels), xmin=config["fit"]["xmin"],
                              xmax=config["fit"]["xmax"])
    derivatives, names, _, n_bkg = fitter._fitCreateModel(dtype=np.float64)
    first, stop = (int(i) for i in fitter._fitMcaTrimInfo(x=x))
    u, s, vt = np.linalg.svd(derivatives, full_matrices=False)
    s = np.where(s < max(derivatives.shape) * np.finfo(np.float64).eps, np.inf, s)
    weights = (vt.T / s) @ u.T  # PyMca's lstsq: V diag(1/s) U^T, same cut-off
    names = tuple(str(n) for n in names)
    peaks = np.arange(len(names)) >= n_bkg
    out_names, combine = combine_matrix(tuple(n for n, p in zip(names, peaks, strict=True) if p),
                                        outputs)
    combine = np.concatenate([np.zeros((combine.shape[0], n_bkg)), combine], axis=1)
    strip = bool(config["fit"]["stripflag"])
    n = stop - first
    theory = fitter._mcaTheory
    return FastFitModel(
        names=names, peaks=peaks, derivatives=derivatives, weights=weights, first=first,
        channels=channels,
        savgol=probe_savgol(n, int(config["fit"]["stripfilterwidth"])) if strip else None,
        filter_width=int(config["fit"]["stripfilterwidth"]),
        snip_width=int(config["fit"]["snipwidth"]) if strip else 0,
        outputs=out_names, combine=combine, refit_passes=refit_passes,
        zero=float(theory.parameters[0]), gain=float(theory.parameters[1]))


def background(model: FastFitModel, counts: np.ndarray) -> np.ndarray:
    """(N, window) per-pixel background with PyMca's own code (`_fitBkgSubtract`)."""
    y = np.array(counts[:, model.first:model.first + model.window], dtype=np.float64)
    if not model.snip_width:
        return np.zeros_like(y)
    cfg = {"fit": {"stripfilterwidth": model.filter_width, "snipwidth": model.snip_width}}
    chunk = y.T.copy()  # PyMca subtracts in place (a (n, 1) transpose would be a view)
    FastXRFLinearFit._fitBkgSubtract(chunk, config=cfg, anchorslist=[0, model.window - 1])
    return y - chunk.T


def _excluded_solve(model: FastFitModel, x_full: np.ndarray, excluded: np.ndarray
                    ) -> np.ndarray:
    """Least squares with the `excluded` parameters fixed at zero, from the full solution:
    x - C[:, E] C[E, E]^-1 x[E] (C = the unit-weight covariance)."""
    out = x_full.copy()
    cov = model.covariance
    for i in np.nonzero(excluded.any(axis=1))[0]:
        e = np.nonzero(excluded[i])[0]
        out[i] = x_full[i] - cov[:, e] @ np.linalg.solve(cov[np.ix_(e, e)], x_full[i, e])
        out[i, e] = 0.0
    return out


def reduced_weights(model: FastFitModel, excluded: np.ndarray) -> np.ndarray:
    """(G, window) output weights of one pixel's last refit (`excluded`: (P,) bool)."""
    t = np.eye(len(model.names))
    e = np.nonzero(excluded)[0]
    if e.size:
        cov = model.covariance
        t = t - cov[:, e] @ np.linalg.solve(cov[np.ix_(e, e)], np.eye(len(model.names))[e])
    return model.combine @ t @ model.weights


def reference_fit(model: FastFitModel, counts: np.ndarray, live_time_s: np.ndarray | None = None,
                  continuum: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float64 reference of the compiled graph: (areas, sigma), each (N, G), in counts
    (or counts per live second when `live_time_s` is given and `counts` are per live second).
    `continuum` (2, C), the graph's input of that name (proto.continuum): where its rows are
    not zero, the background is (w . y) T in place of each spectrum's SNIP."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    y = counts[:, model.first:model.first + model.window]
    t = w = None
    if continuum is not None and np.any(continuum[1]):
        t, w = np.asarray(continuum, np.float64)[:, model.first:model.first + model.window]
        bg = (y @ w)[:, None] * t
    else:
        bg = background(model, counts)

    def lean(rows: np.ndarray) -> np.ndarray:  # net = y - (w . y) T: row r -> r - (r . T) w
        return rows if t is None else rows - np.outer(rows @ t, w)

    x_full = (y - bg) @ model.weights.T
    x, last = x_full.copy(), np.zeros(x_full.shape, bool)
    for _ in range(model.refit_passes):
        neg = (x < 0) & model.peaks
        refit = neg.any(axis=1)
        x[refit] = _excluded_solve(model, x_full[refit], neg[refit])
        last[refit] = neg[refit]
    x = np.where(model.peaks & (x < 0), 0.0, x)  # PyMca: still negative after its passes -> 0
    sigma = np.empty((len(x), len(model.outputs)))
    for i in range(len(x)):
        sigma[i] = np.sqrt(lean(reduced_weights(model, last[i])) ** 2 @ np.maximum(y[i], 0))
    # an output with every group fixed at zero: its sigma in the full fit (detection sigma)
    fixed = last.astype(float) @ model.combine.T >= model.combine.sum(axis=1) - 0.5
    full = np.sqrt(np.maximum(y, 0) @ (lean(model.combine @ model.weights) ** 2).T)
    sigma = np.where(fixed, full, sigma)
    if live_time_s is not None:
        sigma /= np.sqrt(np.asarray(live_time_s, dtype=np.float64).reshape(-1, 1))
    return x @ model.combine.T, sigma


def pymca_fast_fit(counts: np.ndarray, cfg: ConfigDict.ConfigDict, *, per_pixel: bool = True,
                   fitter: ConfiguredFit | None = None
                   ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """PyMca itself: (names, areas (N, P), uncertainties (N, P)) in counts.

    `per_pixel`: each spectrum fitted on its own (what a live fit sees); else the whole
    batch in one call, whose refit depends on the other pixels (module docstring)."""
    logging.getLogger("PyMca5").setLevel(logging.ERROR)
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    fitter = fitter or ConfiguredFit()
    blocks = [counts[i:i + 1] for i in range(len(counts))] if per_pixel else [counts]
    areas, sigmas, names = [], [], ()
    for block in blocks:
        out = fitter.fitMultipleSpectra(y=block, configuration=cfg, weight=0, refit=1,
                                        concentrations=0)
        names = tuple(str(n) for n in out.labels("parameters"))
        areas.append(np.asarray(out["parameters"]).reshape(len(names), -1).T)
        sigmas.append(np.asarray(out["uncertainties"]).reshape(len(names), -1).T)
    return names, np.concatenate(areas), np.concatenate(sigmas)

