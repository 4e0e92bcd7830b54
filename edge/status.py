"""Counters the daemon reports on the `status` topic and to `edge status`."""

from __future__ import annotations

import time
from collections import Counter, deque

import numpy as np


class Stats:
    """Accepted / rejected pixels, rates, queue depth and ingest-to-canvas latency."""

    def __init__(self, window: int = 20000) -> None:
        self.started = time.monotonic()
        self.accepted = 0  # pixels recorded and inferred
        self.repeated = 0  # pixels that overwrote one already on the canvas
        self.messages = 0
        self.rejected: Counter[str] = Counter()  # messages by reason
        self.rejected_pixels = 0
        self.refused_scans: dict[str, str] = {}  # scan id -> reason
        self.last_error = ""
        self.queue_depth = 0
        self.batches = 0
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._rate_marks: deque[tuple[float, int]] = deque(maxlen=64)

    def reject(self, reason: str, pixels: int = 0, detail: str = "") -> None:
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

    def snapshot(self) -> dict:
        lat = np.fromiter(self._latency_ms, dtype=np.float64)
        pct = (
            {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)}
            | {"max": float(lat.max()), "n": len(lat)}
            if len(lat) else {}
        )
        uptime = time.monotonic() - self.started
        return {
            "uptime_s": round(uptime, 3),
            "accepted": self.accepted,
            "repeated": self.repeated,
            "messages": self.messages,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "rejected_pixels": self.rejected_pixels,
            "refused_scans": dict(self.refused_scans),
            "last_error": self.last_error,
            "rate_spectra_s": round(self.rate(), 1),
            "mean_rate_spectra_s": round(self.accepted / uptime, 1) if uptime > 0 else 0.0,
            "queue_depth": self.queue_depth,
            "batches": self.batches,
            "latency_ms": pct,
        }
