"""A pigment reference library, simulated: spectra and colours of paint the scan never shows.

Conservators keep reference panels of the period's pigments, pure and mixed, measured by XRF
and photographed. This is that library drawn by the simulator: random paint stacks from the
palette of post-Byzantine icons (SCIENCE.md; `training.pigments.PALETTE`) in the habits of
the craft (a paint layer over gesso, sometimes over an underpaint, sometimes under a red lake
glaze; gilding; gold lines over paint), seen through the training scan's instrument and dwell,
mixed under the beam like neighbouring stacks are. Each sample's target is the colour as
painted (fresh varnish, unfaded lake).

An RGB model trained on a scan plus this library has seen how every pigment of the palette
looks and what it emits, so it can name the colour of paint absent from the scan. Its limits:
the library's colours come from the same Kubelka-Munk model and pigment table as the
simulated scenes, so on simulated scenes its score is an upper bound of what a measured
library would give on a real icon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from training import sim
from training.paintings import Stack, gilding
from training.pigments import PALETTE, PaintLayer, ground, linear_to_srgb, paint, varnish
from training.preprocess import MODEL_GRID, rates_from_counts

NOT_PAINT = frozenset({"gypsum", "chalk", "gold", "red_bole", "red_lake"})  # ground, gilding, glaze
PAINTS = tuple(sorted(set(PALETTE) - NOT_PAINT))


@dataclass(frozen=True)
class LibraryConfig:
    stacks: int = 600  # distinct paint stacks (one simulator call each, ~20 ms)
    pixels: int = 8000  # spectra drawn from them
    max_pigments: int = 3  # per paint layer
    p_glaze: float = 0.3  # a red lake glaze on top
    p_underpaint: float = 0.3
    p_gold_lines: float = 0.05  # gold leaf over the paint (chrysography)
    p_gilding: float = 0.05  # gold leaf on bole
    p_mixed: float = 0.5  # a pixel sees two stacks (edges, folds under the beam)
    seed: int = 0


@dataclass
class Library:
    rates: np.ndarray  # (N, D) counts per live second on MODEL_GRID
    rgb: np.ndarray  # (N, 3) sRGB 0..1, quantised like a photograph
    stacks: list[Stack]


def _paint_layer(name: str, rng: np.random.Generator, cfg: LibraryConfig,
                 thickness: tuple[float, float] = (15, 45)) -> PaintLayer:
    k = int(rng.integers(1, cfg.max_pigments + 1))
    chosen = rng.choice(PAINTS, size=k, replace=False)
    recipe = dict(zip(chosen.tolist(), rng.dirichlet(np.ones(k)).tolist(), strict=True))
    return paint(name, recipe, thickness_um=float(rng.uniform(*thickness)))


def random_stack(i: int, rng: np.random.Generator, cfg: LibraryConfig) -> Stack:
    """One stack of the craft's shapes, surface first, varnish over gesso."""
    if rng.random() < cfg.p_gilding:
        return Stack(f"gilding_{i}", (varnish(), *gilding(), ground()))
    layers = [_paint_layer(f"paint_{i}", rng, cfg)]
    if rng.random() < cfg.p_underpaint:
        layers.append(_paint_layer(f"under_{i}", rng, cfg, (10, 25)))
    if rng.random() < cfg.p_glaze:
        layers.insert(0, paint(f"glaze_{i}", {"red_lake": 1.0},
                               thickness_um=float(rng.uniform(8, 14)),
                               opacity=float(rng.uniform(0.4, 0.7))))
    if rng.random() < cfg.p_gold_lines:
        layers.insert(0, gilding()[0])
    return Stack(f"library_{i}", (varnish(), *layers, ground()))


def build(instrument: sim.Instrument, dwell_s: float, cfg: LibraryConfig = LibraryConfig(),
          progress: bool = True) -> Library:
    """Draw the library as `instrument` would measure it at `dwell_s` per pixel."""
    rng = np.random.default_rng(cfg.seed)
    stacks = [random_stack(i, rng, cfg) for i in range(cfg.stacks)]
    rates = np.stack([
        np.asarray(sim.stack_response(instrument, s.sim_layers()).rates, np.float64)
        for s in tqdm(stacks, desc="pigment library", unit="stack", disable=not progress)])
    colours = np.array([s.colour_linear(original=True) for s in stacks])
    # each pixel: one stack, or two mixed as a beam straddling an edge sees them
    n = cfg.pixels
    a, b = rng.integers(0, len(stacks), n), rng.integers(0, len(stacks), n)
    w = np.where(rng.random(n) < cfg.p_mixed, rng.uniform(0.5, 1.0, n), 1.0)
    weights = np.zeros((n, len(stacks)))
    np.add.at(weights, (np.arange(n), a), w)
    np.add.at(weights, (np.arange(n), b), 1 - w)
    acq = sim.acquire(weights @ rates, dwell_s, rng, instrument)
    spectra = rates_from_counts(acq.counts, acq.live_time_s, instrument.grid, MODEL_GRID)
    rgb = np.round(linear_to_srgb(weights @ colours) * 255) / 255
    return Library(spectra.astype(np.float32), rgb.astype(np.float32), stacks)
