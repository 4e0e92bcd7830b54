"""A model's training domain (proto/BUNDLE.md "domain"): what its training inputs looked like,
and the one in-domain test that export calibrates and the edge applies to every live pixel.

The test looks at a spectrum's shape at its counting precision. x is the spectrum in counts
per live second on the model grid, summed over `bin` adjacent channels (80 eV on the 20 eV
grid: lines and scatter peaks keep their shape, each channel gets more counts); n = x * live
time are its counts and N = sum(n). Its shape z = sqrt((n + 3/8) / sum(n + 3/8)) (Anscombe's
3/8 keeps the square root of few counts nearly unbiased, so a shape does not change with the
dwell) is centred on the training mean and projected on the k leading principal directions
of the training shapes; what the projection leaves,

    s = 4 * min(N, N_ref) * (|z - mean|^2 - |C (z - mean)|^2) / D,

is the pixel's out-of-domain statistic (D: binned channels). A shape channel carries noise of
variance about 1 / (4 N), so s measures the residual in units of the spectrum's own counting
noise: a shape the subspace explains leaves about that noise, one with lines, scatter, a
continuum or an absorption edge the training spectra never had leaves more, at any
intensity. Counts are capped at N_ref, the training spectra's median, so a longer dwell than
the training's does not turn the subspace's own small approximation error into significance
(a 100 ms scan of a model trained at 10 ms stays inside). A pixel is outside when s exceeds
`threshold`, the 99.5th percentile of s over held-out training spectra; a pixel without
counts is inside (there is no evidence). numpy only: the edge runs it beside ONNX Runtime.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

DOMAIN_FILE = "domain.npy"  # beside model.onnx: float32 (1 + k, D), the mean then C's rows
STATISTIC = "binned_shape_residual_in_counting_noise"
PERCENTILE = 99.5
ANSCOMBE = 0.375


class DomainError(ValueError):
    """A domain description that cannot be used."""


def binned_counts(rates: np.ndarray, live_time_s: np.ndarray, bin: int) -> np.ndarray:
    """(N, D) counts/s, (N,) s -> float32 (N, D / bin) counts per bin (negatives as 0)."""
    x = np.asarray(rates, np.float32)
    if bin > 1:  # strided adds: ~7x faster than reshape(...).sum() on the hot path
        x = sum((x[:, i::bin] for i in range(1, bin)), start=x[:, 0::bin])
    x = np.maximum(x, np.float32(0.0))  # (a sum of rates is never negative: rebinned counts)
    return x * np.asarray(live_time_s, np.float32).reshape(-1, 1)


def shapes(counts: np.ndarray) -> np.ndarray:
    """sqrt((n + 3/8) / sum(n + 3/8)) per spectrum of binned counts."""
    z = np.asarray(counts, np.float32) + np.float32(ANSCOMBE)
    z /= z.sum(axis=1, keepdims=True)
    return np.sqrt(z, out=z)


@dataclass(frozen=True)
class Subspace:
    mean: np.ndarray  # (D,) float32, D = grid channels / bin
    components: np.ndarray  # (k, D) float32, orthonormal rows
    threshold: float
    reference_counts: float  # N_ref: counts on the grid of the median training spectrum
    bin: int = 1  # grid channels summed per subspace channel

    @property
    def channels(self) -> int:
        """Grid channels the test takes (binned to len(mean))."""
        return int(self.mean.shape[0]) * self.bin

    def statistic(self, rates: np.ndarray, live_time_s: np.ndarray) -> np.ndarray:
        """(N, grid channels) counts/s, (N,) live seconds -> (N,) float32 statistic."""
        n = binned_counts(rates, live_time_s, self.bin)
        total = n.sum(axis=1)
        z = shapes(n)
        z -= self.mean
        kept = z @ self.components.T
        r2 = np.einsum("ij,ij->i", z, z) - np.einsum("ij,ij->i", kept, kept)
        weight = np.minimum(total, np.float32(self.reference_counts))
        return np.maximum(r2, 0.0) * weight * np.float32(4.0 / len(self.mean))

    def outside(self, rates: np.ndarray, live_time_s: np.ndarray) -> np.ndarray:
        """(N,) bool: the pixel lies outside the training domain."""
        return self.statistic(rates, live_time_s) > self.threshold

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.vstack([self.mean[None], self.components]).astype("<f4"),
                allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, threshold: float, components: int,
                   reference_counts: float, bin: int = 1) -> Subspace:
        try:
            a = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DomainError(f"{DOMAIN_FILE} is not a .npy array ({e})") from None
        if a.dtype != np.dtype("<f4") or a.ndim != 2 or a.shape[0] != components + 1:
            raise DomainError(f"{DOMAIN_FILE} holds {a.dtype} {a.shape}, the manifest says "
                              f"float32 ({components + 1}, channels / bin)")
        if not np.isfinite(a).all():
            raise DomainError(f"{DOMAIN_FILE} holds NaN or infinity")
        return cls(np.ascontiguousarray(a[0]), np.ascontiguousarray(a[1:]), float(threshold),
                   float(reference_counts), int(bin))


def fit_subspace(fit_rates: np.ndarray, fit_live: np.ndarray, heldout_rates: np.ndarray,
                 heldout_live: np.ndarray, components: int, bin: int = 4,
                 percentile: float = PERCENTILE) -> Subspace:
    """PCA of the shapes of `fit_rates`; N_ref = the held-out spectra's median counts;
    threshold = `percentile` of the statistic on the held-out spectra (of the same training
    data, not used for the fit). `bin` must divide the grid's channels."""
    if np.shape(fit_rates)[1] % bin:
        raise DomainError(f"bin {bin} does not divide {np.shape(fit_rates)[1]} channels")
    z = shapes(binned_counts(fit_rates, fit_live, bin)).astype(np.float64)
    mean = z.mean(axis=0)
    z -= mean
    eigval, eigvec = np.linalg.eigh(z.T @ z)
    top = eigvec[:, np.argsort(eigval)[::-1][:components]].T
    held = binned_counts(heldout_rates, heldout_live, bin).sum(axis=1)
    sub = Subspace(mean.astype(np.float32), np.ascontiguousarray(top, dtype=np.float32), 0.0,
                   float(np.median(held)), bin)
    s = sub.statistic(np.asarray(heldout_rates, np.float32), heldout_live)
    return Subspace(sub.mean, sub.components, float(np.percentile(s, percentile)),
                    sub.reference_counts, bin)


def _pair(d: dict, key: str) -> tuple[float, float] | None:
    v = d.get(key)
    if v is None:
        return None
    ok = (isinstance(v, list | tuple) and len(v) == 2
          and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                  for x in v) and v[0] <= v[1])
    if not ok:
        raise DomainError(f"domain {key} must be [low, high] with low <= high, got {v!r}")
    return float(v[0]), float(v[1])


@dataclass(frozen=True)
class Domain:
    """The manifest's `domain` object, checked (every part optional)."""

    energy_kev: tuple[float, float] | None = None  # where the training spectra have signal
    dwell_s: tuple[float, float] | None = None  # real time per pixel of the training data
    count_rate_cps: tuple[float, float] | None = None  # counts per live second, all channels
    subspace: dict[str, Any] | None = None  # file, sha256, components, threshold, ...
    score_threshold: float | None = None  # trust: score above which a pixel is unfamiliar

    @classmethod
    def from_dict(cls, d: Any) -> Domain:
        if not isinstance(d, dict):
            raise DomainError(f"domain must be an object, got {type(d).__name__}")
        sub = d.get("subspace")
        if sub is not None:
            if not isinstance(sub, dict):
                raise DomainError("domain subspace must be an object")
            k, thr, sha = sub.get("components"), sub.get("threshold"), sub.get("sha256")
            if not _nonneg(sub.get("reference_counts")):
                raise DomainError("domain subspace reference_counts must be a number >= 0, "
                                  f"got {sub.get('reference_counts')!r}")
            b = sub.get("bin", 1)
            if not isinstance(b, int) or isinstance(b, bool) or b < 1:
                raise DomainError(f"domain subspace bin must be an int >= 1, got {b!r}")
            if not isinstance(k, int) or isinstance(k, bool) or k < 1:
                raise DomainError(f"domain subspace components must be an int >= 1, got {k!r}")
            if not _nonneg(thr):
                raise DomainError(f"domain subspace threshold must be a number >= 0, got {thr!r}")
            if not isinstance(sha, str) or len(sha) != 64:
                raise DomainError("domain subspace sha256 must be 64 hex digits")
            if sub.get("file", DOMAIN_FILE) != DOMAIN_FILE:
                raise DomainError(f"domain subspace file must be {DOMAIN_FILE!r}")
            if sub.get("statistic", STATISTIC) != STATISTIC:
                raise DomainError(f"domain subspace statistic {sub.get('statistic')!r} unknown "
                                  f"(this reader: {STATISTIC!r})")
        score = d.get("score_threshold")
        if score is not None and not _nonneg(score):
            raise DomainError(f"domain score_threshold must be a number >= 0, got {score!r}")
        return cls(_pair(d, "energy_kev"), _pair(d, "dwell_s"), _pair(d, "count_rate_cps"),
                   sub, None if score is None else float(score))


# A bundle's learned residual (BUNDLE.md `in_domain`) is served up to this many times the
# longest training dwell: one learned at 10 ms does not know the noise of a 100 ms pixel.
DWELL_MARGIN = 1.5


def within_dwell(domain: Domain, live_time_s: np.ndarray) -> np.ndarray:
    """(N,) bool: live time at most DWELL_MARGIN x the training's longest dwell (all True
    when the domain states no dwell)."""
    live = np.asarray(live_time_s, np.float32).reshape(-1)
    if domain.dwell_s is None:
        return np.ones(live.shape, bool)
    return live <= np.float32(DWELL_MARGIN * domain.dwell_s[1])


def _nonneg(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
