"""ROI window sums: the element maps most users would make instead of a model.

For each element, the counts/s in a window of +-1 FWHM around its main line
(K-alpha1, or L-alpha1 for Au, Hg, Pb; energies from xraylib) minus a linear
continuum estimated from two side windows, clipped at 0. The window sees only
the alpha line while the ground truth counts the whole line group, so a
per-element gain is fitted by least squares on the training scan (`fit`);
that is the calibration a user would do with a reference. Where lines overlap
(Pb L-alpha / As K-alpha, Au / Hg L) no gain can fix it: that is the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xraylib

from proto.elements import ELEMENTS, LINE_GROUP
from training.preprocess import MODEL_GRID

FWHM_KEV = 0.16  # about the detector resolution at 6-10 keV


def line_energy(symbol: str) -> float:
    """The main line of a map: 'Ca' (its LINE_GROUP family) or a family, 'Co K' or 'Ba L'."""
    element, _, group = symbol.partition(" ")
    line = {"K": xraylib.KA1_LINE, "L": xraylib.LA1_LINE, "M": xraylib.MA1_LINE}[
        group or LINE_GROUP[element]]
    return float(xraylib.LineEnergy(xraylib.SymbolToAtomicNumber(element), line))


def _window(energy: float, half: float) -> slice:
    lo = int(np.ceil(MODEL_GRID.channel(energy - half)))
    hi = int(np.floor(MODEL_GRID.channel(energy + half))) + 1
    return slice(max(lo, 0), min(hi, MODEL_GRID.channels))


def roi_sums(rates: np.ndarray, elements: tuple[str, ...] = ELEMENTS) -> np.ndarray:
    """(N, D) counts/s on MODEL_GRID -> (N, E) background-subtracted window sums."""
    out = np.empty((rates.shape[0], len(elements)), dtype=np.float32)
    for j, el in enumerate(elements):
        e = line_energy(el)
        peak = _window(e, FWHM_KEV)
        left = _window(e - 2.0 * FWHM_KEV, FWHM_KEV / 2)
        right = _window(e + 2.0 * FWHM_KEV, FWHM_KEV / 2)
        width = peak.stop - peak.start
        # mean rate per channel in each side window, interpolated under the peak
        bg = 0.5 * (rates[:, left].mean(axis=1) + rates[:, right].mean(axis=1)) * width
        out[:, j] = np.maximum(rates[:, peak].sum(axis=1) - bg, 0.0)
    return out


@dataclass
class RoiModel:
    """ROI sums times a per-element gain fitted on training maps."""

    elements: tuple[str, ...] = ELEMENTS
    gain: np.ndarray = field(default_factory=lambda: np.ones(len(ELEMENTS), np.float32))

    def fit(self, rates: np.ndarray, truth: np.ndarray) -> RoiModel:
        return self.fit_sums(roi_sums(rates, self.elements), truth)

    def fit_sums(self, sums: np.ndarray, truth: np.ndarray) -> RoiModel:
        """The gains from (N, E) roi_sums already made (a large map's, a block at a time)."""
        s = np.asarray(sums, np.float64)
        t = np.asarray(truth, np.float64)
        denom = (s * s).sum(axis=0)
        self.gain = np.where(denom > 0, (s * t).sum(axis=0) / np.maximum(denom, 1e-12), 1.0)
        self.gain = self.gain.astype(np.float32)
        return self

    def predict(self, rates: np.ndarray) -> np.ndarray:
        return roi_sums(rates, self.elements) * self.gain
