"""Automatic refinement of a photo-to-scan registration against images the scan gives.

A reference is the total count rate or one element's ROI map. Its relation to the
photograph's colour is unknown and not monotonic (lead white is bright, iron earths are
dark, lead white and chalk look alike), so the criterion is how much of each reference a
second-order polynomial of the warped photo's linear RGB explains (R^2 of a least-squares
fit, whose colour gains may vary linearly across the area for uneven lighting): a
multi-channel normalised cross-correlation, invariant to gain, offset and sign. Several
references are fitted jointly, each weighted by how well the colours explain it, so a map
the photo barely predicts or a sparse one (one vermilion patch) cannot pull the corners.

The transform is parameterised by where the scan area's four corners land in the photo
(the "four-point" homography parameterisation: eight well-scaled numbers in scan pixels)
and the residuals are minimised with scipy's least_squares (trust region), coarse to fine
(images blurred by 1.5 scan pixels first, which widens the basin). Measured on simulated
photographs (tests/register_scene.py, 4 scenes): with `all` references the mean error
falls from 0.42 / 1.4 / 2.5 scan pixels of click error to 0.11-0.12; one dense map
(Fe) gives 0.10 up to 2.5 px; total counts alone are weak (0.56: lead white and chalk
look alike but differ in counts), so use `all` or a dense element map. A phase-correlation
translation first (scikit-image) did not help at small click errors and misled the fit at
large ones, so it is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xraylib
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.optimize import OptimizeResult, least_squares
from skimage.transform import ProjectiveTransform
from threadpoolctl import threadpool_limits

from proto.dataset import Dataset
from proto.elements import ELEMENTS, LINE_GROUP
from proto.energy import EnergyGrid
from training.photo import FWHM_PER_SIGMA

REFERENCES = ("total", *(e.lower() for e in ELEMENTS))
HALF_WINDOW_KEV = 0.16  # about one detector FWHM at 6-10 keV, as training/roi.py
COARSE_SIGMA_PX = 1.5  # scan pixels: the coarse level's blur
FD_STEP_PX = 0.05  # scan pixels
MAX_SHIFT_PX = 4.0  # a refinement that moves a corner further than this is not trusted


def scan_corners(shape: tuple[int, int]) -> np.ndarray:
    """The scan area's outer corners (x, y): top-left, top-right, bottom-right, bottom-left."""
    h, w = shape
    return np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])


def parse_references(text: str) -> tuple[str, ...]:
    """'fe,pb' -> ('fe', 'pb'); 'all' -> every reference; 'none' -> ()."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if names in (("none",), ()):
        return ()
    if names == ("all",):
        return REFERENCES
    bad = [n for n in names if n not in REFERENCES]
    if bad:
        raise ValueError(f"unknown reference {', '.join(bad)}; choose from none, all, "
                         f"{', '.join(REFERENCES)} (comma-separated)")
    return names


def _windows(grid: EnergyGrid, name: str) -> tuple[slice, slice, slice] | None:
    """Peak and side windows (channels) of an element's main line; None for 'total'."""
    if name == "total":
        return None
    symbol = name.capitalize()
    line = xraylib.KA1_LINE if LINE_GROUP[symbol] == "K" else xraylib.LA1_LINE
    energy = xraylib.LineEnergy(xraylib.SymbolToAtomicNumber(symbol), line)
    h = HALF_WINDOW_KEV
    if not grid.low < energy - 2.5 * h < energy + 2.5 * h < grid.high:
        raise ValueError(f"{symbol} line at {energy:.2f} keV is outside the scan's energies")

    def window(lo_kev: float, hi_kev: float) -> slice:
        lo = int(np.ceil(grid.channel(lo_kev)))
        return slice(lo, max(int(np.floor(grid.channel(hi_kev))), lo) + 1)

    return (window(energy - h, energy + h), window(energy - 2.5 * h, energy - 1.5 * h),
            window(energy + 1.5 * h, energy + 2.5 * h))


def reference_images(ds: Dataset, names: Sequence[str], strict: bool = True
                     ) -> dict[str, np.ndarray]:
    """name -> (H, W) counts per live second, in one pass over the cube: all channels
    ('total') or an element's main line (K-alpha1, L-alpha1 for Au/Hg/Pb) minus a linear
    continuum from two side windows. NaN where not acquired. A line outside the scan's
    energies raises ValueError, or with `strict=False` is left out."""
    windows = {}
    for name in names:
        try:
            windows[name] = _windows(ds.grid, name)
        except ValueError:
            if strict:
                raise
    out = {name: np.empty(ds.shape[:2]) for name in windows}
    for rows, block in ds.spectra():
        block = block.astype(np.float64)
        for name, win in windows.items():
            if win is None:
                out[name][rows] = block.sum(axis=2)
                continue
            peak, left, right = win
            width = peak.stop - peak.start
            bg = 0.5 * (block[..., left].mean(axis=2) + block[..., right].mean(axis=2)) * width
            out[name][rows] = block[..., peak].sum(axis=2) - bg
    live = ds.live_time_s
    ok = ds.acquired & (live > 0)
    return {k: np.where(ok, v / np.where(ok, live, 1.0), np.nan) for k, v in out.items()}


def features(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) linear RGB -> (..., 9) second-order polynomial (channels, squares, products):
    element maps are not linear in colour (lead white and flesh are both bright)."""
    pairs = [rgb[..., i] * rgb[..., j] for i in range(3) for j in range(i, 3)]
    return np.concatenate([rgb, np.stack(pairs, axis=-1)], axis=-1)


def _design(feats: np.ndarray, pos: np.ndarray | None) -> np.ndarray:
    cols = [np.ones(len(feats)), feats - feats.mean(axis=0)]
    if pos is not None:  # light varies slowly across a panel: so may the colour gains
        cols += [feats[:, :3] * pos[:, :1], feats[:, :3] * pos[:, 1:], pos]
    return np.column_stack(cols)


def residual(feats: np.ndarray, reference: np.ndarray, pos: np.ndarray | None = None
             ) -> np.ndarray:
    """Residuals (N, K) of the least-squares fits reference (N, K) ~ polynomial(feats)."""
    x = _design(feats, pos)
    beta, *_ = np.linalg.lstsq(x, reference, rcond=None)
    return reference - x @ beta


def matched(rgb: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The registered photo (H, W, 3) expressed as one reference (H, W) (its polynomial fit
    over the acquired pixels), for the check picture."""
    mask = np.isfinite(reference)
    f = features(rgb)
    x = np.column_stack([np.ones(mask.sum()), f[mask]])
    beta, *_ = np.linalg.lstsq(x, reference[mask], rcond=None)
    flat = f.reshape(-1, f.shape[-1])
    return (np.column_stack([np.ones(len(flat)), flat]) @ beta).reshape(reference.shape)


def best_match(rgb: np.ndarray, references: Sequence[np.ndarray]) -> tuple[int, np.ndarray]:
    """(index, matched image) of the reference a check picture should show: the most
    edges the photo explains (R^2 times the matched map's scale-free edge density), so a
    dense Fe map wins over one vermilion patch the colours predict perfectly."""
    fits = [matched(rgb, r) for r in references]
    scores = []
    for r, f in zip(references, fits, strict=True):
        r2 = 1 - np.nanvar(r - f) / np.nanvar(r)
        edges = np.mean(np.hypot(*np.gradient(f))) / (np.std(f) or 1.0)
        scores.append(r2 * edges)
    k = int(np.nanargmax(scores))
    return k, fits[k]


@dataclass
class Refinement:
    transform: ProjectiveTransform
    r2_before: float  # mean over the references
    r2_after: float
    moved_px: float  # mean move of the scan pixels' photo positions, in scan pixels
    kept: bool  # False: the refined transform was not trusted, the clicked one is used
    note: str
    # formal standard error of the corners, scan pixels: residuals are spatially correlated,
    # so it reads low (0.02-0.03 where the true error was 0.06-0.2); compare, don't trust
    sigma_px: float = float("nan")


def _from_corners(corners_photo: np.ndarray, shape: tuple[int, int]) -> ProjectiveTransform:
    return ProjectiveTransform.from_estimate(scan_corners(shape), corners_photo)


def mean_distance(a: ProjectiveTransform, b: ProjectiveTransform, shape: tuple[int, int],
                  scale: float) -> float:
    """Mean distance between two transforms' images of the scan pixel centres, scan pixels."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    pts = np.column_stack([xx.ravel(), yy.ravel()]).astype(float)
    return float(np.linalg.norm(a(pts) - b(pts), axis=1).mean()) / scale


class _Sampler:
    """The photo blurred to the scan footprint (in photo space, so one bilinear sample per
    scan pixel centre suffices: ~30x cheaper than `photo.Resampler` inside the optimiser;
    the ~5 % change of footprint across a mildly tilted photo does not move the optimum)."""

    def __init__(self, photo_lin: np.ndarray, references: np.ndarray, scale: float,
                 spot_px: float, extra_sigma: float) -> None:
        mask = np.all(np.isfinite(references), axis=0)
        yy, xx = np.nonzero(mask)
        self.points = np.column_stack([xx, yy]).astype(float)
        h, w = mask.shape
        self.pos = self.points / [max(w - 1, 1), max(h - 1, 1)] * 2 - 1
        refs = []
        for ref in references:
            ref = np.where(mask, ref, ref[mask].mean())
            if extra_sigma:
                ref = gaussian_filter(ref, extra_sigma, mode="nearest")
            ref = ref[mask] - ref[mask].mean()
            refs.append(ref / (np.sqrt(np.sum(ref ** 2) * len(references)) or 1.0))
        self.reference = np.stack(refs, axis=1)  # (N, K), sum of squares 1 in all
        sigma = np.sqrt(1 / 12 + (spot_px / FWHM_PER_SIGMA) ** 2 + extra_sigma ** 2) * scale
        self.photo = gaussian_filter(photo_lin, (sigma, sigma, 0), mode="nearest")

        self.weights = np.ones(len(references))

    def residual(self, tf: ProjectiveTransform) -> np.ndarray:
        xy = tf(self.points)
        rgb = np.stack([map_coordinates(self.photo[..., k], [xy[:, 1], xy[:, 0]], order=1,
                                        mode="nearest") for k in range(3)], axis=1)
        return (residual(features(rgb), self.reference, self.pos) * self.weights).ravel()

    def weigh(self, tf: ProjectiveTransform) -> None:
        """Weigh each reference by 1 / its residual RMS at `tf` (maximum likelihood with an
        unknown noise level per reference): a map the colours explain well leads, one they
        barely explain (lead white beside chalk) cannot drag the fit."""
        self.weights = np.ones(self.reference.shape[1])
        res = self.residual(tf).reshape(self.reference.shape)
        rms = np.sqrt(np.mean(res ** 2, axis=0))
        self.weights = rms.min() / np.maximum(rms, 1e-12)


def refine(
    photo_lin: np.ndarray, transform: ProjectiveTransform, references: Sequence[np.ndarray],
    scale: float, spot_px: float = 0.0,
) -> Refinement:
    """Move the transform so the warped photo explains the references best (module doc).
    `transform` maps scan (x, y) to photo (x, y); `scale` is photo pixels per scan pixel."""
    with threadpool_limits(1):  # tiny matrices: BLAS threads only contend on a busy box
        return _refine(photo_lin, transform, np.asarray(references, float), scale, spot_px)


def _refine(photo_lin: np.ndarray, transform: ProjectiveTransform, refs: np.ndarray,
            scale: float, spot_px: float) -> Refinement:
    shape = refs.shape[1:]
    mask = np.all(np.isfinite(refs), axis=0)
    if mask.sum() < 32 or not all(np.std(r[mask]) > 0 for r in refs):
        return Refinement(transform, np.nan, np.nan, 0.0, False, "a reference image is flat")
    base = transform(scan_corners(shape))

    def at(p: np.ndarray) -> ProjectiveTransform:
        return _from_corners(base + scale * p.reshape(4, 2), shape)

    fine = _Sampler(photo_lin, refs, scale, spot_px, 0.0)

    def r2(p: np.ndarray) -> float:
        res = fine.residual(at(p))
        return 1.0 - float(res @ res)

    p = np.zeros(8)
    r2_before = r2(p)
    for extra in (COARSE_SIGMA_PX, 0.0):
        sampler = fine if extra == 0 else _Sampler(photo_lin, refs, scale, spot_px, extra)
        sampler.weigh(at(p))
        fit = least_squares(lambda q, s=sampler: s.residual(at(q)), p,
                            jac=lambda q, s=sampler: _jacobian(s, at, q), max_nfev=200)
        p = fit.x
    sigma = _corner_sigma(fit)
    fine.weights = np.ones(len(refs))
    refined = at(p)
    r2_after = r2(p)
    moved = mean_distance(refined, transform, shape, scale)
    largest = float(np.abs(p).reshape(4, 2).max())
    if not r2_after > r2_before:
        return Refinement(transform, r2_before, r2_before, 0.0, False,
                          "no better fit found; clicked transform kept")
    if largest > MAX_SHIFT_PX:
        return Refinement(transform, r2_before, r2_after, moved, False,
                          f"refinement moved a corner {largest:.1f} px (> {MAX_SHIFT_PX}); "
                          "clicked transform kept, check the control points")
    return Refinement(refined, r2_before, r2_after, moved, True, "refined", sigma)


def _corner_sigma(fit: OptimizeResult) -> float:
    """Standard error of the corners' positions (scan pixels, RMS over the corners) from the
    least-squares covariance s^2 (J^T J)^-1: large where the references hold the corners
    loosely (a sparse map leaves the homography's far corners free)."""
    m, n = fit.jac.shape
    s2 = 2 * fit.cost / max(m - n, 1)
    try:
        cov = np.linalg.inv(fit.jac.T @ fit.jac) * s2
    except np.linalg.LinAlgError:
        return float("inf")
    return float(np.sqrt(np.trace(cov) / 4))


def _jacobian(sampler: _Sampler, at: Callable[[np.ndarray], ProjectiveTransform],
              p: np.ndarray, step: float = FD_STEP_PX) -> np.ndarray:
    """Forward differences with a fixed step: bilinear samples are piecewise linear in the
    corners, so a slope must be taken over a good part of a photo pixel (scipy's relative
    steps fall to 1e-8 at the starting point p = 0)."""
    f0 = sampler.residual(at(p))
    cols = []
    for i in range(len(p)):
        q = p.copy()
        q[i] += step
        cols.append((sampler.residual(at(q)) - f0) / step)
    return np.stack(cols, axis=1)
