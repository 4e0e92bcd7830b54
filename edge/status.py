"""Counters the daemon reports on the `status` topic and to `edge status`."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K")
V = TypeVar("V")

# A status message carries at most 4,096 entries per map (SPEC.md 6): every map the
# daemon keeps about clients stays far below that, whatever they send.
MAX_REFUSED_SCANS = 64  # refused scan ids remembered (their spectra are "refused_scan")
MAX_REASONS = 256  # distinct rejection reasons counted; more fold into "other"


class BoundedLRU(OrderedDict, Generic[K, V]):
    """A dict of at most `limit` entries: setting a key makes it the newest, and the oldest
    entry goes when a new one would exceed the limit (memory a client cannot grow)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = max(1, int(limit))

    def __setitem__(self, key: K, value: V) -> None:
        if key in self:
            self.move_to_end(key)
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


class Stats:
    """Accepted / rejected pixels, rates, queue depth and ingest-to-canvas latency."""

    def __init__(self, window: int = 20000) -> None:
        self.started = time.monotonic()
        self.accepted = 0  # pixels recorded and inferred
        self.repeated = 0  # pixels that overwrote one already on the canvas
        self.messages = 0
        self.rejected: Counter[str] = Counter()  # messages by reason
        self.rejected_pixels = 0
        self.refused_scans: BoundedLRU[str, str] = BoundedLRU(MAX_REFUSED_SCANS)  # id -> why
        self.last_error = ""
        self.queue_depth = 0
        self.batches = 0
        # CPU time of the whole daemon (every thread) and of it inside the models' runs: where
        # a busy daemon spends its cores, measured in the same run (SPEC.md 4.5 `cpu_ms`)
        self._cpu0 = time.process_time()
        self.models_cpu_s = 0.0
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._rate_marks: deque[tuple[float, int]] = deque(maxlen=64)

    def reject(self, reason: str, pixels: int = 0, detail: str = "") -> None:
        if reason not in self.rejected and len(self.rejected) >= MAX_REASONS:
            reason = "other"
        self.rejected[reason] += 1
        self.rejected_pixels += pixels
        if detail:
            self.last_error = f"{reason}: {detail}"[:300]

    def latencies(self, values_ms: np.ndarray) -> None:
        self._latency_ms.extend(values_ms.tolist())

    def mark(self, now: float) -> None:
        self._rate_marks.append((now, self.accepted))

    def rate(self) -> float:
        if len(self._rate_marks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rate_marks[0], self._rate_marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    # The typed maps of the `status` message (SPEC.md 4.5), built directly from the counts.
    def counters(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "repeated": self.repeated,
            "messages": self.messages,
            "rejected_total": sum(self.rejected.values()),
            "rejected_pixels": self.rejected_pixels,
            "queue_depth": self.queue_depth,
            "batches": self.batches,
            "cpu_ms": round((time.process_time() - self._cpu0) * 1e3),
            "cpu_ms.models": round(self.models_cpu_s * 1e3),
        }

    def rates(self) -> dict[str, float]:
        uptime = time.monotonic() - self.started
        return {
            "spectra_s": round(self.rate(), 1),
            "mean_spectra_s": round(self.accepted / uptime, 1) if uptime > 0 else 0.0,
        }

    def latency_ms(self) -> dict[str, float]:
        """Percentiles of ingest-to-canvas latency over the recent window (n: its size)."""
        lat = np.fromiter(self._latency_ms, dtype=np.float64)
        if not len(lat):
            return {}
        pct = {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)}
        return pct | {"max": float(lat.max()), "n": float(len(lat))}

    def errors(self) -> dict[str, int]:
        """Rejected messages by reason."""
        return dict(self.rejected)

    def detail(self) -> dict:
        """What people read and no client acts on (the free-form `detail` map)."""
        return {
            "uptime_s": round(time.monotonic() - self.started, 3),
            "refused_scans": dict(self.refused_scans),
            "last_error": self.last_error,
        }
