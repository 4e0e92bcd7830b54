"""A bundle's instruments and training domain, from the data it was trained on (BUNDLE.md).

    describe(info, data, score=None) -> (manifest fields {"instruments", "domain"}, Subspace)

The training scene (info["train_data"]) is read back: its instrument record gives the
identity (proto.identity), its spectra the energy range with signal, the dwell and count-rate
ranges and the in-domain subspace (proto.domain.fit_subspace: principal directions from
four fifths of the pixels, plus the pigment library's spectra when the model trained on one;
threshold from the other fifth). A trust model's own scores on that held-out fifth give its
`score_threshold`. Without the training file nothing is stated (the edge then checks nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proto.dataset import open_dataset
from proto.domain import PERCENTILE, Subspace, fit_subspace
from proto.energy import EnergyGrid
from proto.identity import parse_identity, stream_instrument
from training.catalogue import scene_candidates
from training.preprocess import rates_from_counts

COMPONENTS = 64  # principal directions kept (see training/domain_report.py for the choice)
BIN = 4  # grid channels per subspace channel: 80 eV on the 20 eV model grid
BIN_KEV = 0.08  # on another grid (an instrument's own 10 eV one): as many channels as 80 eV
HELDOUT = 0.2  # fraction of the training pixels kept out of the fit, for the threshold
MAX_PIXELS = 40_000  # pixels read from a big training scene (spread over the scan)
SIGNAL = 5e-4  # the energy range with signal leaves out this share of the counts each side


@dataclass
class TrainingSpectra:
    rates: np.ndarray  # (N, D) counts/s on the model grid
    live: np.ndarray  # (N,) s
    real: np.ndarray  # (N,) s
    total_rate: np.ndarray  # (N,) counts per live second, all channels of the file
    instrument: dict  # the file's instrument record


def training_file(info: dict, data: str | Path) -> Path | None:
    """The dataset the model was trained on: its recorded path, else its scene in `data`."""
    td = info.get("train_data", {}) or {}
    paths = [Path(td["path"])] if td.get("path") else []
    if td.get("scene"):
        paths += scene_candidates(data, str(td["scene"]).removesuffix("_tiny"))
    return next((p for p in paths if p.is_file()), None)


def read_training(path: Path, grid: EnergyGrid, n: int = MAX_PIXELS, seed: int = 0
                  ) -> TrainingSpectra:
    """Up to `n` acquired pixels with live time (whole rows, spread over the scan)."""
    with open_dataset(path) as ds:
        h, w, c = ds.shape
        live_all = np.asarray(ds.live_time_s, np.float64)
        real_all = np.asarray(ds.real_time_s, np.float64)
        rows = np.unique(np.linspace(0, h - 1, min(h, max(1, -(-n // w)))).astype(int))
        counts = np.asarray(ds.counts[rows.tolist()]).reshape(-1, c)
        live, real = live_all[rows].reshape(-1), real_all[rows].reshape(-1)
        good = live > 0
        counts, live, real = counts[good], live[good], real[good]
        rates = rates_from_counts(counts, live, ds.grid, grid)
        total = counts.sum(axis=1, dtype=np.float64) / live
        record = dict(ds.instrument or {})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(live))
    return TrainingSpectra(rates[order], live[order], real[order], total[order], record)


def library_rates(info: dict, path: Path) -> np.ndarray | None:
    """The pigment library's spectra when the model trained on one (rebuilt as training did)."""
    lib_cfg = (info.get("config") or {}).get("library")
    if not info.get("library") or not isinstance(lib_cfg, dict):
        return None
    from training.data import load_scene
    from training.library import LibraryConfig
    from training.train import scan_library

    return scan_library(load_scene(path), LibraryConfig(**lib_cfg), progress=False).rates


def signal_range(rates: np.ndarray, grid: EnergyGrid) -> list[float]:
    """[low, high] keV holding all but SIGNAL of the training counts on each side (channel
    edges): below and above it the training spectra had next to nothing."""
    mean = np.maximum(np.asarray(rates, np.float64).mean(axis=0), 0.0)
    if not mean.sum() > 0:
        return [grid.low, grid.high]
    share = np.cumsum(mean) / mean.sum()
    lo = int(np.searchsorted(share, SIGNAL))
    hi = int(np.searchsorted(share, 1.0 - SIGNAL))
    edges = grid.edges()
    return [round(float(edges[lo]), 4), round(float(edges[min(hi + 1, grid.channels)]), 4)]


def subspace_bin(grid: EnergyGrid) -> int:
    """Grid channels per subspace channel: ~BIN_KEV wide (BIN on the 20 eV model grid), 1
    when that does not divide the grid."""
    b = max(1, round(BIN_KEV / grid.gain))
    return b if grid.channels % b == 0 else 1


def describe(info: dict, data: str | Path,
             score: Callable[[np.ndarray], np.ndarray] | None = None,
             components: int = COMPONENTS) -> tuple[dict, Subspace | None]:
    """Manifest fields {"instruments", "domain"} and the subspace; ({}, None) without data."""
    path = training_file(info, data)
    if path is None:
        return {}, None
    grid = EnergyGrid.from_dict(info["grid"])
    t = read_training(path, grid)
    cut = max(1, round(len(t.live) * (1 - HELDOUT)))
    fit = t.rates[:cut]
    lib = library_rates(info, path)  # library spectra count at the scene's median live time
    if lib is not None:
        fit = np.concatenate([fit, lib])
    heldout, held_live = t.rates[cut:], t.live[cut:]
    if not len(heldout):  # a one-pixel scene: the fit is all there is
        heldout, held_live = t.rates, t.live
    bin_ = subspace_bin(grid)
    k = max(1, min(components, len(fit) - 1, grid.channels // bin_))
    fit_live = np.concatenate([t.live[:cut], np.full(len(fit) - cut, np.median(t.live))])
    subspace = fit_subspace(fit, fit_live, heldout, held_live, k, bin_)
    q = (0.1, 99.9)
    domain: dict = {
        "energy_kev": signal_range(t.rates, grid),
        "dwell_s": [float(f"{t.real.min():.6g}"), float(f"{t.real.max():.6g}")],  # float32
        "count_rate_cps": [round(float(v), 1) for v in np.percentile(t.total_rate, q)],
        "subspace": {"percentile": PERCENTILE, "spectra": {"fit": len(fit),
                                                           "heldout": len(heldout)},
                     "source": path.name + (" + pigment library" if lib is not None else "")},
    }
    if score is not None and info.get("kind") == "trust":
        domain["score_threshold"] = float(np.percentile(score(heldout)[:, 0], PERCENTILE))
    ident = stream_instrument(t.instrument)
    instruments = [ident] if parse_identity(ident) is not None else []
    return {"instruments": instruments, "domain": domain}, subspace
