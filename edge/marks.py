"""What a watcher shows beside the pictures (SPEC.md 4.4, 4.5): which topics are served by a
model foreign to the scan's instrument, each topic's out-of-domain mask, and the trust map as
a mask of unfamiliar pixels (score above the bundle's calibrated threshold) rather than an
auto-scaled colour ramp, on which 5.5 and 0.08 could look alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge import png
from proto import wire
from proto.messages import PREVIEW_TOPICS


class Marks:
    def __init__(self) -> None:
        self.foreign: set[str] = set()
        self.domain: dict[str, np.ndarray] = {}  # topic -> (H, W) uint8, 1 = outside
        self.threshold: float | None = None

    def apply(self, p: wire.Preview, size: tuple[int, int] | None) -> None:
        """Take a preview's marks; `size` is the canvas (height, width) once known."""
        (self.foreign.add if p.foreign else self.foreign.discard)(p.topic)
        if p.threshold is not None:
            self.threshold = float(p.threshold)
        if p.domain is None or size is None:
            return
        x0, y0, w, h = p.region
        mask = self.domain.get(p.topic)
        if mask is None or mask.shape != size:
            mask = self.domain[p.topic] = np.zeros(size, np.uint8)
        mask[y0:y0 + h, x0:x0 + w] = p.domain

    def write(self, folder: Path, prefix: str, trust: np.ndarray | None) -> list[Path]:
        """unfamiliar.png (trust as a mask) and domain.png (one mask per model)."""
        written = []
        if trust is not None and self.threshold is not None:
            mask = (trust > self.threshold).astype(np.float32)
            written.append(png.write_png(folder / f"{prefix}unfamiliar.png", png.panel(
                mask, f"unfamiliar: trust > {self.threshold:.3g}", 384, 0.0, 1.0)))
        if self.domain:
            panels = [png.panel(self.domain[t].astype(np.float32),
                                f"{t}{' FOREIGN' if t in self.foreign else ''}: outside",
                                lo=0.0, hi=1.0)
                      for t in PREVIEW_TOPICS if t in self.domain]
            written.append(png.write_png(folder / f"{prefix}domain.png", png.grid(panels)))
        return written


def line(status: wire.Status | None) -> str:
    """The progress line's tail: foreign models and out-of-domain shares, '' when none."""
    if status is None:
        return ""
    parts = []
    if status.foreign:
        parts.append(f"FOREIGN models: {', '.join(status.foreign)}")
    if status.out_of_domain:
        parts.append("outside training domain: " + ", ".join(
            f"{t} {f:.0%}" for t, f in sorted(status.out_of_domain.items())))
    return ("  " + "; ".join(parts)) if parts else ""
