"""Spectra -> model inputs -> model outputs, for the loaded bundles.

Each spectrum is rebinned from the stream's calibration onto each model's grid
with `proto.energy.Rebinner` (once per distinct model grid, not per model) and
divided by live time: exactly `proto.energy.counts_per_live_second`, so the
numbers match training and offline inference bit for bit.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np

from edge.models import ModelSession
from proto.bundle import CONTINUUM_INPUT, IN_DOMAIN_INPUT, KINDS, BundleError
from proto.continuum import ScanContinuum, served
from proto.domain import Subspace, within_dwell
from proto.elements import ELEMENTS, map_outputs
from proto.energy import EnergyGrid, Rebinner

log = logging.getLogger("edge.inference")


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


def element_planes(sessions: dict[str, ModelSession]) -> int:
    """Element maps the canvases of a scan will hold with these models."""
    elements = sessions.get("elements")
    return len(elements.manifest.outputs) if elements is not None else len(ELEMENTS)


def describe(sessions: dict[str, ModelSession]) -> dict:
    return {
        kind: {
            "grid": s.manifest.grid.to_dict(),
            "outputs": list(s.manifest.outputs),
            "sha256": s.manifest.sha256,
        }
        for kind, s in sessions.items()
    }


def needed_kev(session: ModelSession) -> tuple[float, float, str]:
    """(low, high, why) keV a stream must cover for this model: where its training spectra
    have signal (manifest domain.energy_kev), else its whole grid."""
    m = session.manifest
    signal = m.training_domain.energy_kev
    if signal is not None:
        return signal[0], signal[1], "where its training spectra have signal"
    return m.grid.low, m.grid.high, "its whole input grid"


def refusal(sessions: dict[str, ModelSession], grid: EnergyGrid) -> str | None:
    """Why these models cannot serve a stream on `grid`, or None when they can."""
    if not sessions:
        return "no models loaded"
    for kind, s in sessions.items():
        low, high, why = needed_kev(s)
        if grid.low > low + 1e-9 or grid.high < high - 1e-9:
            return (f"the {kind} model needs {low:.3f}-{high:.3f} keV ({why}), the stream "
                    f"covers {grid.low:.3f}-{grid.high:.3f} keV")
    return None


class Engine:
    """Runs every loaded model on a batch of raw spectra from one stream."""

    def __init__(self, sessions: dict[str, ModelSession], grid: EnergyGrid, max_batch: int,
                 small: dict[str, ModelSession] | None = None, small_batch: int = 8):
        self.sessions = sessions
        # single-threaded twins for tiny batches (slow dwell): a 2-thread pool's hand-off
        # costs more than it saves on a few spectra and shows up as latency spikes
        self.small = small or sessions
        self.small_batch = small_batch
        self.max_batch = max_batch
        # one rebinner and one input buffer per distinct model grid
        self._rebinners: dict[EnergyGrid, Rebinner] = {}
        self._buffers: dict[EnergyGrid, np.ndarray] = {}
        self.restream(grid)
        # the in-domain test of each bundle that declares one (proto.domain), computed once
        # per distinct subspace file: rgb and trust trained on one scene share theirs
        self.subspaces: dict[str, tuple[str, EnergyGrid, Subspace]] = {
            kind: (s.manifest.domain["subspace"]["sha256"], s.manifest.grid, s.bundle.subspace)
            for kind, s in sessions.items() if s.bundle.subspace is not None}
        # kind -> [pixels, pixels fed in_domain = 1] for bundles that declare that input
        self.gate_counts: dict[str, list[int]] = {
            kind: [0, 0] for kind, s in sessions.items()
            if IN_DOMAIN_INPUT in s.manifest.extra_inputs}
        # ORT's first run at a new batch size is slow (allocations, kernel choice): pay it
        # here, at scan_start, not on the scan's first pixels
        for n in (1, small_batch + 1, max_batch):
            self.run(np.zeros((n, grid.channels), dtype=np.uint16), np.ones(n, np.float32))
        self.gate_counts = {kind: [0, 0] for kind in self.gate_counts}  # warm-up not counted
        self.continua = self._continua()  # nor summed

    def _continua(self) -> dict[str, ScanContinuum]:
        """kind -> the scan's continuum, for bundles that take it and can strip a sum (their
        energy-axis check's graph gives PyMca's background: proto.continuum)."""
        return {kind: ScanContinuum(s.axis, _fit_alone(s)) for kind, s in self.sessions.items()
                if CONTINUUM_INPUT in s.extra_inputs and s.axis is not None}

    def restream(self, grid: EnergyGrid) -> None:
        """Read the stream's channels on `grid` from now on (its energy axis as checked,
        proto.energy_axis): one rebinner and input buffer per distinct model grid."""
        self.grid = grid
        self.continua = self._continua()  # a sum so far was read on the other axis
        for s in self.sessions.values():
            g = s.manifest.grid
            self._rebinners[g] = Rebinner(grid, g)
            if g not in self._buffers:
                self._buffers[g] = np.empty((self.max_batch, g.channels), dtype=np.float32)

    def backgrounds(self) -> dict[str, dict]:
        """kind -> which background its fit serves, for which elements, on what
        (proto.continuum)."""
        out = {}
        for kind, c in self.continua.items():
            names = self.sessions[kind].manifest.outputs
            maps = map_outputs(names)
            chosen = [] if c.choice is None else [
                n for n, on in zip(maps, np.resize(c.choice, len(maps)), strict=True) if on]
            out[kind] = {**c.status(), "continuum_for": chosen}
        return out

    def gated_share(self) -> dict[str, float]:
        """kind -> share of the pixels run so far whose learned residual was served."""
        return {k: (c[1] / c[0] if c[0] else 0.0) for k, c in self.gate_counts.items()}

    def run(self, counts: np.ndarray, live_time_s: np.ndarray) -> dict[str, np.ndarray]:
        """(N, C) counts, (N,) live seconds -> {kind: (N, K) float32}, any N."""
        return self.run_checked(counts, live_time_s, domain=False)[0]

    def run_checked(self, counts: np.ndarray, live_time_s: np.ndarray, domain: bool = True
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """run() and, per kind with a subspace, (N,) bool: the pixel is outside the model's
        training domain (proto.domain: one projection per distinct subspace). A bundle that
        declares `in_domain` is fed 1 where the pixel is inside and its live time within the
        training's dwells (its residual is served there only, proto/BUNDLE.md), so its test
        runs even when `domain` is False; `self.gate_counts` counts what it was fed."""
        out: dict[str, list[np.ndarray]] = {k: [] for k in self.sessions}
        outside: dict[str, list[np.ndarray]] = {k: [] for k in self.subspaces} if domain else {}
        gated = [k for k in self.gate_counts if k in self.subspaces]
        for start in range(0, len(counts), self.max_batch):
            stop = min(start + self.max_batch, len(counts))
            live = np.asarray(live_time_s[start:stop], dtype=np.float32).reshape(-1, 1)
            rates: dict[EnergyGrid, np.ndarray] = {}
            for g, rebin in self._rebinners.items():
                buf = self._buffers[g][: stop - start]
                rebin(counts[start:stop], out=buf)
                buf /= live
                rates[g] = buf
            done: dict[str, np.ndarray] = {}
            marks: dict[str, np.ndarray] = {}
            for kind in dict.fromkeys([*outside, *gated]):
                sha, g, sub = self.subspaces[kind]
                if sha not in done:
                    done[sha] = sub.outside(rates[g], live)
                marks[kind] = done[sha]
                if kind in outside:
                    outside[kind].append(done[sha])
            use = self.small if stop - start <= self.small_batch else self.sessions
            for kind, s in use.items():
                inside = None
                if kind in self.gate_counts:
                    inside = within_dwell(s.manifest.training_domain, live)
                    if kind in marks:
                        inside &= ~marks[kind]
                    self.gate_counts[kind][0] += len(inside)
                    self.gate_counts[kind][1] += int(inside.sum())
                x = rates[s.manifest.grid]
                scan = self.continua.get(kind)
                if scan is None:
                    out[kind].append(np.asarray(s.run(x, live, inside), dtype=np.float32))
                    continue
                for rows, continuum, choice in scan.parts(x, live):  # refreshes: between pixels
                    part = None if inside is None else inside[rows]
                    run = partial(s.run, x[rows], live[rows], part)  # run(continuum)
                    out[kind].append(np.asarray(served(run, continuum, choice), np.float32))
        return ({k: _join(v) for k, v in out.items()},
                {k: _join(v) for k, v in outside.items() if v})


def _fit_alone(session: ModelSession):
    """The bundle's fit without its residual (in_domain 0), its areas: what the scan's
    continuum compares the two backgrounds on (proto.continuum.FitFn)."""
    areas = len(map_outputs(session.manifest.outputs))

    def fit(rates: np.ndarray, live: np.ndarray, continuum: np.ndarray | None) -> np.ndarray:
        return session.run(rates, live, np.zeros(len(rates), bool), continuum)[:, :areas]
    return fit


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
