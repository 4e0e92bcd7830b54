"""The live images of one scan: RGB, element maps, trust, coverage.

Pixels may arrive in any order; a pixel seen again overwrites the old value and
is counted. Each topic keeps the bounding box of what changed since it was last
published, so publishing can send a region instead of the whole frame.
"""

from __future__ import annotations

import numpy as np

from proto.messages import PREVIEW_TOPICS


class Canvas:
    def __init__(self, height: int, width: int, element_names: tuple[str, ...]) -> None:
        self.height, self.width = height, width
        self.element_names = tuple(element_names)
        self.rgb = np.zeros((height, width, 3), dtype=np.uint8)
        self.elements = np.zeros((len(element_names), height, width), dtype=np.float32)
        self.trust = np.zeros((height, width), dtype=np.float32)
        self.coverage = np.zeros((height, width), dtype=bool)
        self.filled = 0
        self.repeated = 0
        # how far the picture can be trusted (SPEC.md 4.4): topics whose model is foreign to
        # the scan's instrument, per topic the mask of pixels outside its model's training
        # domain with [checked, outside] counts, and trust's unfamiliar threshold and count
        self.foreign: frozenset[str] = frozenset()
        self.domain: dict[str, np.ndarray] = {}
        self.domain_counts: dict[str, list[int]] = {}
        self.threshold: float | None = None
        self.unfamiliar = 0
        # per-topic dirty box (y0, x0, y1, x1), exclusive ends; None when clean
        self._dirty: dict[str, tuple[int, int, int, int] | None] = dict.fromkeys(PREVIEW_TOPICS)

    def update(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rgb: np.ndarray | None,
        elements: np.ndarray | None,
        trust: np.ndarray | None,
        domain: dict[str, np.ndarray] | None = None,
    ) -> int:
        """Write N pixels; rgb (N,3) in 0..1, elements (N,E), trust (N,) or (N,1); domain:
        topic -> (N,) bool, outside that topic's model's training domain."""
        if len(x) == 0:
            return 0
        # every write onto a pixel that already holds a value is a repeat (last write wins)
        flat = y.astype(np.int64) * self.width + x
        if len(flat) > 1:  # distinct pixels; sort + compare is ~10x np.unique on a batch
            flat = np.sort(flat)
            flat = flat[np.concatenate(([True], flat[1:] != flat[:-1]))]
        new = int(np.count_nonzero(~self.coverage.reshape(-1)[flat]))
        repeats = len(x) - new
        self.coverage[y, x] = True
        self.filled += new
        self.repeated += repeats
        if rgb is not None:
            self.rgb[y, x] = to_uint8(rgb)
        # a model's NaN/inf must not poison a preview (the protocol forbids them)
        if elements is not None:
            self.elements[:, y, x] = finite(elements.T)
        if trust is not None:
            self.trust[y, x] = finite(trust.reshape(-1))
            if self.threshold is not None:
                self.unfamiliar += int(np.count_nonzero(trust.reshape(-1) > self.threshold))
        for topic, outside in (domain or {}).items():
            if topic in self.domain:
                self.domain[topic][y, x] = outside
                counts = self.domain_counts.setdefault(topic, [0, 0])
                counts[0] += len(x)
                counts[1] += int(np.count_nonzero(outside))
        box = (int(y.min()), int(x.min()), int(y.max()) + 1, int(x.max()) + 1)
        for topic in PREVIEW_TOPICS:
            old = self._dirty[topic]
            self._dirty[topic] = box if old is None else (
                min(old[0], box[0]), min(old[1], box[1]), max(old[2], box[2]), max(old[3], box[3])
            )
        return repeats

    def take_dirty(self, topic: str) -> tuple[int, int, int, int] | None:
        """(x0, y0, width, height) changed since the last take, then marked clean."""
        box = self._dirty[topic]
        self._dirty[topic] = None
        if box is None:
            return None
        y0, x0, y1, x1 = box
        return (x0, y0, x1 - x0, y1 - y0)

    def dirty(self, topic: str) -> bool:
        return self._dirty[topic] is not None

    def region(self, topic: str, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """A view of one topic's data over (x0, y0, w, h), the whole frame when None.

        A view, not a copy: previews are encoded (which copies) before the canvas next
        changes, and a 1000 x 1000 scan's element maps are 32 MB.
        """
        x0, y0, w, h = region or (0, 0, self.width, self.height)
        if topic == "rgb":
            return self.rgb[y0:y0 + h, x0:x0 + w]
        if topic == "elements":
            return self.elements[:, y0:y0 + h, x0:x0 + w]
        if topic == "trust":
            return self.trust[y0:y0 + h, x0:x0 + w]
        raise KeyError(topic)

    def track_domain(self, topics) -> None:
        """Keep an out-of-domain mask for these topics (their models declare a domain)."""
        self.domain = {t: np.zeros((self.height, self.width), np.uint8) for t in topics}

    def domain_region(self, topic: str, region: tuple[int, int, int, int] | None = None
                      ) -> np.ndarray | None:
        """The out-of-domain mask over a region (as `region`), None when not tracked."""
        mask = self.domain.get(topic)
        if mask is None:
            return None
        x0, y0, w, h = region or (0, 0, self.width, self.height)
        return mask[y0:y0 + h, x0:x0 + w]

    def out_of_domain(self) -> dict[str, float]:
        """topic -> fraction of the pixels inferred so far that lie outside its domain."""
        return {t: (c[1] / c[0] if c[0] else 0.0) for t, c in self.domain_counts.items()}


def finite(a: np.ndarray) -> np.ndarray:
    """a with NaN and +-inf as 0 (nan_to_num costs ~6 us a call: only when needed)."""
    if np.isfinite(a).all():
        return a
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 (model output) -> uint8, clipped, NaN as black."""
    if not np.isfinite(rgb).all():
        rgb = np.nan_to_num(rgb, nan=0.0)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# Bytes per pixel an open scan holds (scan_memory): canvases (rgb 3, trust 4, coverage 1,
# out-of-domain masks up to 3) plus 4 per element map, and the recorder's maps (acquired 1,
# live and real time 4 each, not-inferred mark 1). tests/test_edge_limits.py checks these
# against what Canvas and DatasetWriter allocate.
CANVAS_BYTES_PER_PIXEL = 3 + 4 + 1 + 3
ELEMENT_BYTES_PER_PIXEL = 4
RECORDING_BYTES_PER_PIXEL = 1 + 4 + 4 + 1


def scan_memory(height: int, width: int, planes: int, recording: bool = True
                ) -> tuple[int, int]:
    """(canvas bytes, recording-map bytes) a height x width scan with `planes` element maps
    holds while open: memory bounded by the declared canvas, known at scan_start."""
    pixels = int(height) * int(width)
    canvas = pixels * (CANVAS_BYTES_PER_PIXEL + ELEMENT_BYTES_PER_PIXEL * planes)
    return canvas, pixels * RECORDING_BYTES_PER_PIXEL if recording else 0


def memory_refusal(height: int, width: int, planes: int, limit: int,
                   recording: bool = True) -> str | None:
    """Why a scan of this size cannot be opened under `limit` bytes, or None when it can."""
    canvas, maps = scan_memory(height, width, planes, recording)
    if canvas + maps <= limit:
        return None
    gib = 2.0**30
    return (f"scan {width} x {height} needs {(canvas + maps) / gib:.1f} GiB of per-pixel "
            f"memory (preview canvases {canvas / gib:.1f} GiB, recording maps "
            f"{maps / gib:.1f} GiB); this daemon allows {limit / gib:.1f} GiB "
            f"(max_canvas_bytes)")
