"""The scan's continuum: one background for every pixel of a short-dwell scan.

PyMca's fast fit strips each pixel's background with SNIP, a running minimum. Under counting
noise a minimum sits low, so at short dwell every trace line stands on a background that is
too low: the real M6 spectrum thinned to 100 ms pixels gives Au 593 c/s where its 28 s
spectrum gives 94.6 (scripts/short_dwell.py). PyMca's own answer for a map is its sum
spectrum; here the scan's sum, which soon holds more counts than that 28 s spectrum, is
stripped once with the bundle's own SNIP (its `axis.onnx`, proto.energy_axis), and each pixel
takes that background B at its own scale: (w . y) T, w the indicator of the channels where
the sum is continuum (its net below CONTINUUM_SHARE of B) and T = B / (w . sum), so the sum
gets back exactly B. The background is then linear in the counts, so its mean is the sum's
at any dwell; a pixel of the sum's own shape gets SNIP's background of the sum.

One shape at each pixel's scale does not follow how a pixel's matrix bends the continuum
under a major's lines, where SNIP with enough counts does (simulated 100 ms scene: Cu 0.076
against SNIP's 0.071), so the choice is per element: at each refresh the scan's last RECENT
pixels are fit both ways, and the continuum serves an element where SNIP reads it higher by
more than MIN_EXCESS of its value and 3 standard errors (SNIP's noise bias is upward);
elsewhere SNIP does. On the real M6 spectrum at 100 ms every trace element takes the
continuum and Ca keeps SNIP.

The sum serves once it holds READY_PIXELS pixels (and READY_COUNTS counts), whatever their
dwell, and is stripped again each time it doubles. A sum of few counts is stripped a little
high (its continuum channels are those its noise left low), so the first pixels it serves
read trace elements a little low, where each pixel's own SNIP reads them 2-4 sigma high. On
the real M6 spectrum (`scripts/short_dwell.py --draws 100 --ready-pixels N`) the 100 pixels
served right after the sum is ready read every trace element within 0.81 sigma of its 28 s
value for N = 25, 0.65 for 100 and 0.54 for 250, at 10 ms, 100 ms and 1 s alike.

A bundle declares the input (BUNDLE.md `continuum`: [2, channels], rows T and w, all zeros
for per-pixel SNIP). The edge feeds zeros until the sum is ready, then the sum's continuum.
The pixels a refresh covers are set by pixels and counts, not by how messages were batched,
so a replay serves the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from proto.bundle import CONTINUUM_INPUT
from proto.energy_axis import OUTPUTS, AxisCheck

__all__ = ["CONTINUUM_INPUT", "READY_PIXELS", "ScanContinuum", "continuum_rows", "served"]
READY_PIXELS = 100  # the sum is first stripped once it holds this many pixels
READY_COUNTS = 1e4  # and at least these counts: a scan that starts off the painting waits
CONTINUUM_SHARE = 0.05  # a channel whose net is below 5 % of its background is continuum
MIN_CHANNELS = 16  # fewer continuum channels than this: the scale is no better than SNIP
RECENT = 1024  # pixels each refresh fits both ways to choose per element
MIN_EXCESS = 0.05  # SNIP's reading above the continuum's that makes it the biased one

EVERY = np.ones(1, bool)  # a choice of the continuum for every element
# (rates (N, C) counts/s, live (N,) s, continuum (2, C) or None) -> the fit's areas (N, G)
FitFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def continuum_rows(check: AxisCheck, counts: np.ndarray) -> np.ndarray | None:
    """(2, C) float32 for the graph: the continuum of the sum `counts` (C,) on the bundle
    grid, and its scale weights; None where too few channels are continuum."""
    y = np.asarray(counts, np.float32).reshape(1, -1)
    net = np.asarray(check.run(OUTPUTS, {"spectra": y})[0][0], np.float64)
    a, b = check.first, check.first + check.window
    bg = y[0, a:b].astype(np.float64) - net
    mask = (bg > 0) & (net < CONTINUUM_SHARE * bg)
    if mask.sum() < MIN_CHANNELS or not np.isfinite(bg).all():
        return None
    rows = np.zeros((2, y.shape[1]), np.float64)
    rows[0, a:b] = bg / float(y[0, a:b][mask].sum())
    rows[1, a:b] = mask
    return rows.astype(np.float32)


def choose(snip: np.ndarray, continuum: np.ndarray) -> np.ndarray:
    """(G,) bool: the elements whose SNIP areas (N, G) read measurably higher than the
    continuum's on the same pixels (by MIN_EXCESS of its mean and 3 standard errors)."""
    d = np.asarray(snip, np.float64) - continuum
    excess = d.mean(axis=0)
    error = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.inf
    return (excess > MIN_EXCESS * np.abs(continuum.mean(axis=0))) & (excess > 3 * error)


def served(run: Callable[[np.ndarray | None], np.ndarray], continuum: np.ndarray,
           choice: np.ndarray | None) -> np.ndarray:
    """The outputs (N, K) of `run(continuum or None)`, column by column with the background
    `choice` (G,) gives its element (None: SNIP for all). Columns [El..., El_sigma...] or
    [El...]: column k is element k mod G."""
    if choice is None or not choice.any():
        return run(None)
    with_it = run(continuum)
    if choice.all():
        return with_it
    return np.where(np.resize(choice, with_it.shape[1]), with_it, run(None))


class ScanContinuum:
    """One scan's continuum for a bundle's graph: `parts` splits each batch where the sum
    crosses its next refresh, so each pixel is fit with the continuum of the pixels before,
    and `fit` (the bundle's fit alone) chooses per element at each refresh (None: the
    continuum for every element)."""

    def __init__(self, check: AxisCheck, fit: FitFn | None = None,
                 ready_pixels: int = READY_PIXELS, ready_counts: float = READY_COUNTS
                 ) -> None:
        self.check, self.fit = check, fit
        self.choice: np.ndarray | None = None  # (G,) the continuum's elements (or EVERY)
        self._recent = np.zeros((RECENT, check.grid.channels), np.float32)
        self._recent_live = np.zeros(RECENT, np.float32)
        self._kept = 0  # pixels written to the ring, all time
        self.sum = np.zeros(check.grid.channels, np.float64)
        self.counts = 0.0
        self.ready_pixels, self.next = ready_pixels, float(ready_counts)
        self.rows = np.zeros((2, check.grid.channels), np.float32)
        self.refreshes = 0
        self.pixels = [0, 0]  # pixels fit, of them with the continuum

    @property
    def ready(self) -> bool:
        return bool(self.rows[1].any())

    def parts(self, rates: np.ndarray, live: np.ndarray
              ) -> Iterator[tuple[slice, np.ndarray, np.ndarray | None]]:
        """(rows, continuum, choice) over the batch `rates` (N, C) counts/s on the bundle
        grid with `live` (N,) s (`served` applies them); the sum takes each part once the
        caller has fit it."""
        live = np.asarray(live, np.float64).reshape(-1)
        pixel = rates.sum(axis=1, dtype=np.float64) * live
        finite = np.isfinite(pixel)  # the edge infers no such pixel; the sum takes none
        total = self.counts + np.cumsum(np.where(finite, pixel, 0.0))
        start = 0
        while start < len(rates):
            cross = max(int(np.searchsorted(total[start:], self.next)) + start,
                        start + self.ready_pixels - self.pixels[0] - 1)  # both: the first
            stop = min(cross + 1, len(rates))
            yield slice(start, stop), self.rows, self.choice
            self.pixels[0] += stop - start
            self.pixels[1] += (stop - start) if self.ready else 0
            keep = finite[start:stop]
            self.sum += (rates[start:stop][keep] * live[start:stop, None][keep]).sum(axis=0)
            self._remember(rates[start:stop][keep], live[start:stop][keep])
            self.counts = float(total[stop - 1])
            if self.counts >= self.next and self.pixels[0] >= self.ready_pixels:
                self._refresh()
            start = stop

    def _remember(self, rates: np.ndarray, live: np.ndarray) -> None:
        """Keep the last RECENT pixels (a ring) for the next choice."""
        rates, live = rates[-RECENT:], live[-RECENT:]
        at = (self._kept + np.arange(len(rates))) % RECENT
        self._recent[at], self._recent_live[at] = rates, live
        self._kept += len(rates)

    def _refresh(self) -> None:
        rows = continuum_rows(self.check, self.sum)
        if rows is not None:
            self.rows = rows
            self.refreshes += 1
            n = min(self._kept, RECENT)
            if self.fit is None or n < 2:
                self.choice = EVERY
            else:
                x, t = self._recent[:n], self._recent_live[:n]
                self.choice = choose(self.fit(x, t, None), self.fit(x, t, rows))
        while self.next <= self.counts:
            self.next *= 2

    def status(self) -> dict:
        """For people (status detail): which background serves, and on how much."""
        return {"background": "scan continuum" if self.ready else "per-pixel SNIP",
                "counts": round(self.counts), "refreshes": self.refreshes,
                "pixels_with_continuum": self.pixels[1], "pixels": self.pixels[0]}
