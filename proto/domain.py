"""A model's training domain (proto/BUNDLE.md "domain"): what its training inputs looked like,
and the one in-domain test that export calibrates and the edge applies to every live pixel.

The test: z = sqrt(max(x, 0)) of a spectrum x in counts per live second on the model grid
(the square root every model applies first), centred on the training mean and projected on
the k leading principal components of the training spectra; what the projection leaves,

    s = live_time_s * (|z - mean|^2 - |C (z - mean)|^2) / D,

is the pixel's out-of-domain statistic. In the square root every channel carries about the
same Poisson noise, 1 / (4 live time) in (counts/s), so s of a spectrum the subspace explains is
that noise, whatever the dwell; a spectrum with lines, scatter or a continuum the training
spectra never had leaves more. A pixel is outside when s exceeds `threshold`, the 99.5th
percentile of s over held-out training spectra. numpy only: the edge runs it beside ONNX Runtime.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

DOMAIN_FILE = "domain.npy"  # beside model.onnx: float32 (1 + k, D), the mean then C's rows
STATISTIC = "live_time_weighted_residual"
PERCENTILE = 99.5


class DomainError(ValueError):
    """A domain description that cannot be used."""


@dataclass(frozen=True)
class Subspace:
    mean: np.ndarray  # (D,) float32
    components: np.ndarray  # (k, D) float32, orthonormal rows
    threshold: float

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])

    def statistic(self, rates: np.ndarray, live_time_s: np.ndarray) -> np.ndarray:
        """(N, D) counts/s, (N,) live seconds -> (N,) float32 out-of-domain statistic."""
        z = np.sqrt(np.maximum(rates, 0.0, dtype=np.float32))
        z -= self.mean
        kept = z @ self.components.T
        r2 = np.einsum("ij,ij->i", z, z) - np.einsum("ij,ij->i", kept, kept)
        live = np.asarray(live_time_s, dtype=np.float32).reshape(-1)
        return np.maximum(r2, 0.0) * live / np.float32(self.channels)

    def outside(self, rates: np.ndarray, live_time_s: np.ndarray) -> np.ndarray:
        """(N,) bool: the pixel lies outside the training domain."""
        return self.statistic(rates, live_time_s) > self.threshold

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.vstack([self.mean[None], self.components]).astype("<f4"),
                allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, threshold: float, components: int) -> Subspace:
        try:
            a = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DomainError(f"{DOMAIN_FILE} is not a .npy array ({e})") from None
        if a.dtype != np.dtype("<f4") or a.ndim != 2 or a.shape[0] != components + 1:
            raise DomainError(f"{DOMAIN_FILE} holds {a.dtype} {a.shape}, the manifest says "
                              f"float32 ({components + 1}, channels)")
        if not np.isfinite(a).all():
            raise DomainError(f"{DOMAIN_FILE} holds NaN or infinity")
        return cls(np.ascontiguousarray(a[0]), np.ascontiguousarray(a[1:]), float(threshold))


def fit_subspace(fit_rates: np.ndarray, heldout_rates: np.ndarray, heldout_live: np.ndarray,
                 components: int, percentile: float = PERCENTILE) -> Subspace:
    """PCA of sqrt(rates) on `fit_rates`; threshold = `percentile` of the statistic on the
    held-out spectra (of the same training data, not used for the fit)."""
    z = np.sqrt(np.maximum(np.asarray(fit_rates, np.float64), 0.0))
    mean = z.mean(axis=0)
    z -= mean
    eigval, eigvec = np.linalg.eigh(z.T @ z)
    top = eigvec[:, np.argsort(eigval)[::-1][:components]].T
    sub = Subspace(mean.astype(np.float32), np.ascontiguousarray(top, dtype=np.float32), 0.0)
    s = sub.statistic(np.asarray(heldout_rates, np.float32), heldout_live)
    return Subspace(sub.mean, sub.components, float(np.percentile(s, percentile)))


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


def _nonneg(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
