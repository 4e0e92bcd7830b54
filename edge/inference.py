"""Spectra -> model inputs -> model outputs, for the loaded bundles.

Each spectrum is rebinned from the stream's calibration onto each model's grid
with `proto.energy.Rebinner` (once per distinct model grid, not per model) and
divided by live time: exactly `proto.energy.counts_per_live_second`, so the
numbers match training and offline inference bit for bit.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from edge.models import ModelSession
from proto.bundle import BundleError
from proto.energy import EnergyGrid, Rebinner

log = logging.getLogger("edge.inference")

KINDS = ("rgb", "elements", "trust")


def load_models(folder: str | Path, threads: int = 1) -> dict[str, ModelSession]:
    """One verified session per kind from the bundle folders under `folder`.

    Raises BundleError when any bundle fails verification, so a reload can keep
    the old set rather than serve a half-verified one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder}: models folder does not exist")
    sessions: dict[str, ModelSession] = {}
    # folder/<kind>/ is the served bundle of that kind (export's layout); other bundles
    # (baselines under their own names) only stand in for a kind that has none
    named = [folder / k / "manifest.json" for k in KINDS if (folder / k).is_dir()]
    others = sorted(folder.glob("manifest.json")) + sorted(folder.glob("*/manifest.json"))
    for manifest in [*named, *[m for m in others if m not in named]]:
        if manifest.parent.name in KINDS and manifest not in named:
            continue
        session = ModelSession(manifest.parent, threads=threads)
        kind = session.manifest.kind
        if kind in sessions:
            continue
        sessions[kind] = session
    if not sessions:
        raise BundleError(f"{folder}: no model bundles (folders with manifest.json)")
    return sessions


def describe(sessions: dict[str, ModelSession]) -> dict:
    return {
        kind: {
            "grid": s.manifest.grid.to_dict(),
            "outputs": list(s.manifest.outputs),
            "sha256": s.manifest.sha256,
        }
        for kind, s in sessions.items()
    }


def refusal(sessions: dict[str, ModelSession], grid: EnergyGrid) -> str | None:
    """Why these models cannot serve a stream on `grid`, or None when they can."""
    if not sessions:
        return "no models loaded"
    for kind, s in sessions.items():
        need = s.manifest.grid
        if not grid.covers(need):
            return (
                f"{kind} model needs {need.low:.3f}-{need.high:.3f} keV, stream covers "
                f"{grid.low:.3f}-{grid.high:.3f} keV"
            )
    return None


class BandedRebin:
    """`proto.energy.Rebinner`'s linear map, applied as a few strided multiply-adds.

    Rebinning is linear and each target channel takes counts from only a few
    neighbouring source channels (K bands). The weights are derived from the proto
    Rebinner's own edge tables and checked against it on random spectra at build
    time (falling back to reading the map off the Rebinner applied to identity
    blocks if they ever disagree), so the numbers are the proto function's, only
    summed in float32 in another order (~1e-7 relative). A band is a strided view
    of the counts when its sources are evenly spaced (the usual case), a gather
    otherwise: ~10x faster than the cumulative-sum route on 4096-channel batches.
    """

    def __init__(self, source: EnergyGrid, target: EnergyGrid) -> None:
        reference = Rebinner(source, target)
        try:
            src, w = self._from_edges(reference)
            self._set(src, w)
            self._check(reference)
        except (AssertionError, AttributeError, IndexError) as e:
            log.warning("rebin fast path unavailable (%s): reading the map off Rebinner", e)
            self._set(*self._from_identity(reference))
            self._check(reference)
        self.target = target

    @staticmethod
    def _from_edges(reference: Rebinner) -> tuple[np.ndarray, np.ndarray]:
        # out[d] = sum_{idx[d] <= i < idx[d+1]} c_i + frac[d+1] c_idx[d+1] - frac[d] c_idx[d]
        idx, frac = reference._index, reference._frac
        c = reference.source.channels
        lo, hi = idx[:-1], idx[1:]
        k = int((hi - lo).max()) + 1
        src = lo[None, :] + np.arange(k)[:, None]
        w = (src < hi).astype(np.float64)
        w[0] -= frac[:-1]
        w += np.where(src == hi, frac[1:], 0.0)
        w[src > hi] = 0.0
        return np.minimum(src, c - 1), w

    @staticmethod
    def _from_identity(reference: Rebinner) -> tuple[np.ndarray, np.ndarray]:
        c, d = reference.source.channels, reference.target.channels
        weights = np.concatenate([
            reference(np.eye(c, dtype=np.float32)[a:a + 256]) for a in range(0, c, 256)
        ])
        t, i = np.nonzero(weights.T)  # sorted by target, then source
        per = np.bincount(t, minlength=d)
        k = max(1, int(per.max()))
        rank = np.arange(len(t)) - np.repeat(np.cumsum(per) - per, per)
        src = np.zeros((k, d), dtype=np.intp)
        w = np.zeros((k, d), dtype=np.float64)
        src[rank, t], w[rank, t] = i, weights[i, t]
        return src, w

    def _set(self, src: np.ndarray, w: np.ndarray) -> None:
        self.bands: list[tuple[slice | np.ndarray, np.ndarray]] = []
        for idx, wk in zip(src, w.astype(np.float32), strict=True):
            step = np.diff(idx)
            sel: slice | np.ndarray = idx
            if len(idx) > 1 and step[0] > 0 and (step == step[0]).all():
                sel = slice(int(idx[0]), int(idx[-1]) + 1, int(step[0]))
            self.bands.append((sel, wk))

    def _check(self, reference: Rebinner) -> None:
        counts = np.random.default_rng(0).poisson(20.0, (4, reference.source.channels))
        d = reference.target.channels
        got = self(counts, np.empty((4, d), np.float32), np.empty((4, d), np.float32))
        want = reference(counts)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-3), "banded map differs from Rebinner"

    def __call__(self, counts: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        (sel, w), *rest = self.bands
        np.multiply(counts[:, sel], w, out=out)
        for sel, w in rest:
            np.multiply(counts[:, sel], w, out=scratch)
            out += scratch
        return out


@functools.lru_cache(maxsize=16)
def banded(source: EnergyGrid, target: EnergyGrid) -> BandedRebin:
    """Built once per pair of grids for the daemon's lifetime."""
    return BandedRebin(source, target)


class Engine:
    """Runs every loaded model on a batch of raw spectra from one stream."""

    def __init__(self, sessions: dict[str, ModelSession], grid: EnergyGrid, max_batch: int,
                 small: dict[str, ModelSession] | None = None, small_batch: int = 8):
        self.sessions = sessions
        # single-threaded twins for tiny batches (slow dwell): a 2-thread pool's hand-off
        # costs more than it saves on a few spectra and shows up as latency spikes
        self.small = small or sessions
        self.small_batch = small_batch
        self.grid = grid
        self.max_batch = max_batch
        # one rebinner and one input buffer per distinct model grid
        self._rebinners: dict[EnergyGrid, BandedRebin] = {}
        self._buffers: dict[EnergyGrid, np.ndarray] = {}
        self._scratch: dict[EnergyGrid, np.ndarray] = {}
        for s in sessions.values():
            g = s.manifest.grid
            if g not in self._rebinners:
                self._rebinners[g] = banded(grid, g)
                self._buffers[g] = np.empty((max_batch, g.channels), dtype=np.float32)
                self._scratch[g] = np.empty((max_batch, g.channels), dtype=np.float32)
        # ORT's first run at a new batch size is slow (allocations, kernel choice): pay it
        # here, at scan_start, not on the scan's first pixels
        for n in (1, small_batch + 1, max_batch):
            self.run(np.zeros((n, grid.channels), dtype=np.uint16), np.ones(n, np.float32))

    def run(self, counts: np.ndarray, live_time_s: np.ndarray) -> dict[str, np.ndarray]:
        """(N, C) counts, (N,) live seconds -> {kind: (N, K) float32}, any N."""
        out: dict[str, list[np.ndarray]] = {k: [] for k in self.sessions}
        for start in range(0, len(counts), self.max_batch):
            stop = min(start + self.max_batch, len(counts))
            live = np.asarray(live_time_s[start:stop], dtype=np.float32).reshape(-1, 1)
            rates: dict[EnergyGrid, np.ndarray] = {}
            for g, rebin in self._rebinners.items():
                buf = self._buffers[g][: stop - start]
                rebin(counts[start:stop], buf, self._scratch[g][: stop - start])
                buf /= live
                rates[g] = buf
            use = self.small if stop - start <= self.small_batch else self.sessions
            for kind, s in use.items():
                out[kind].append(np.asarray(s.run(rates[s.manifest.grid]), dtype=np.float32))
        return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in out.items()}
