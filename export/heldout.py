"""Held-out spectra for parity: counts/s on the model grid from the test scenes.

The scene a model never saw is its training scene's pair in the catalogue
(training.catalogue.HELD_OUT: m1_virgin -> m1_child, m6_corpus -> m6_ioannis), else the
held-out scene of its kind, so parity runs on those (a spread of rows across the scan, all
pixels with live time). Half the spectra are also
Poisson-resampled to a 10 ms dwell, the noisy inputs the edge sees at fast
scans, plus one all-zero spectrum. Without any dataset file the fallback is
seeded synthetic spectra, and the source says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from proto.energy import EnergyGrid, Rebinner
from training.catalogue import HELD_OUT, TEST_FOR_KIND, scene_candidates

SHORT_DWELL_S = 0.01


def candidates(info: dict, data: str | Path) -> list[Path]:
    """Dataset files to draw held-out spectra from, best first."""
    scene = str(info.get("train_data", {}).get("scene", ""))
    base = scene.removesuffix("_tiny")
    names = [HELD_OUT.get(base), TEST_FOR_KIND.get(info.get("kind", ""))]
    out: list[Path] = []
    for name in filter(None, names):
        out += scene_candidates(data, name)
    train_path = info.get("train_data", {}).get("path")
    if train_path:
        out.append(Path(train_path))  # last resort: the training scene itself
    return [p for p in dict.fromkeys(out) if p.exists()]


def from_dataset(path: str | Path, grid: EnergyGrid, n: int, seed: int = 0) -> np.ndarray:
    """About n pixels (rows spread over the scan) as float32 (n, D) counts/s on `grid`."""
    from proto.dataset import open_dataset

    with open_dataset(path) as ds:
        h, w, c = ds.shape
        live = np.asarray(ds.live_time_s, np.float64)
        rows = np.unique(np.linspace(0, h - 1, min(h, max(1, -(-2 * n // w)))).astype(int))
        counts = np.asarray(ds.counts[rows.tolist()]).reshape(-1, c)
        lt = live[rows].reshape(-1)
        rebin = Rebinner(ds.grid, grid)
    good = np.flatnonzero(lt > 0)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(good, min(n, len(good)), replace=False))
    rates = rebin(counts[pick])
    rates /= lt[pick, None].astype(np.float32)
    return rates


def synthetic(grid: EnergyGrid, n: int, seed: int = 0) -> np.ndarray:
    """Seeded spectra with a falling continuum and a few random peaks (counts/s)."""
    rng = np.random.default_rng(seed)
    e = grid.centres()
    base = 200.0 * np.exp(-e / 6.0)
    peaks = np.zeros((n, grid.channels))
    for _ in range(6):
        mu = rng.uniform(2.0, 15.0, (n, 1))
        peaks += rng.gamma(1.0, 300.0, (n, 1)) * np.exp(-0.5 * ((e - mu) / 0.07) ** 2)
    return (rng.poisson((base + peaks) * 0.5) / 0.5).astype(np.float32)


def augment(rates: np.ndarray, seed: int = 0) -> np.ndarray:
    """rates + their short-dwell Poisson resamples (half of them) + one zero spectrum."""
    rng = np.random.default_rng(seed + 1)
    half = rates[: max(1, len(rates) // 2)]
    noisy = rng.poisson(np.maximum(half, 0) * SHORT_DWELL_S) / SHORT_DWELL_S
    zero = np.zeros((1, rates.shape[1]), np.float32)
    return np.concatenate([rates, noisy.astype(np.float32), zero])


def heldout(info: dict, grid: EnergyGrid, data: str | Path = "data", n: int = 1024,
            seed: int = 0) -> tuple[np.ndarray, str]:
    """-> (float32 (M, D) counts/s with M >= n, description of the source)."""
    for path in candidates(info, data):
        rates = from_dataset(path, grid, n, seed)
        if len(rates):
            if len(rates) < n:  # tiny scenes: top up with resampled copies
                reps = -(-n // len(rates))
                rates = np.concatenate([rates] * reps)[:n]
            return augment(rates, seed), f"{path.name}, {len(rates)} pixels + 10 ms resamples"
    return augment(synthetic(grid, n, seed), seed), "synthetic spectra (no dataset file found)"
