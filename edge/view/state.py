"""The viewer's copy of the daemon's canvases: held once per topic, plus one overview level.

A browser never gets more than `MAX_SIDE` pixels a side at once: a canvas wider or taller
is sent at an overview level (2**level x 2**level block means, kept up to date region by
region as previews arrive), and at a finer level only over the rectangle the user zooms
into. Memory: the full-resolution canvases (the same bytes as the daemon's: width x height
x (3 + 4 E + 4)) plus their overview and the element planes' block maxima (at most
MAX_SIDE**2 x (3 + 8 E + 4)), nothing per browser.

Element planes named `<element>_sigma` (or `<element>_errors`, the name the recording's
NeXus `predictions` group uses) are the uncertainty of `<element>`; the fast fit's element
bundle publishes them (counting statistics; for an area the fit fixed at zero, its sigma
in the full fit). The page greys a pixel below its detection limit (value <= 3 sigma; `<=`
so a zero with sigma 0, as PyMca's own maps give, is not detected either).
"""

from __future__ import annotations

import threading

import numpy as np

from proto import wire

MAX_SIDE = 1024  # pixels a side sent to a browser at once
TOPICS = wire.PREVIEW_TOPICS
SIGMA_SUFFIXES = ("_sigma", "_errors")
DOMAIN = "domain:"  # + topic: the preview's optional out-of-domain mask (SPEC 4.4, 1.1)


def overview_level(width: int, height: int, max_side: int = MAX_SIDE) -> int:
    """The smallest level whose blocks (2**level a side) bring the canvas within max_side."""
    level = 0
    while -(-max(width, height) // (1 << level)) > max_side:
        level += 1
    return level


def _blocks(a: np.ndarray, f: int, op: np.ufunc, pad: float) -> np.ndarray:
    """op over f x f blocks of (P, h, w), by f**2 strided passes (numpy's reduceat over
    the middle axis measured 15-20x slower); edge blocks padded with `pad`."""
    p, h, w = a.shape
    hh, ww = -(-h // f) * f, -(-w // f) * f
    if (hh, ww) != (h, w):
        padded = np.full((p, hh, ww), pad, a.dtype)
        padded[:, :h, :w] = a
        a = padded
    out = a[:, ::f, ::f].astype(np.float32 if op is np.add else a.dtype)
    for i in range(f):
        for j in range(f):
            if i or j:
                op(out, a[:, i::f, j::f], out=out)
    return out


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """(P, h, w) float32 -> (P, ceil(h/f), ceil(w/f)): means of f x f blocks (edges: partial)."""
    if f == 1:
        return a
    _, h, w = a.shape
    s = _blocks(a, f, np.add, 0)
    ys, xs = np.arange(0, h, f), np.arange(0, w, f)
    s /= (np.minimum(f, h - ys)[:, None] * np.minimum(f, w - xs)[None, :]).astype(np.float32)
    return s


def block_max(a: np.ndarray, f: int) -> np.ndarray:
    """(P, h, w) -> (P, ceil(h/f), ceil(w/f)): maxima of f x f blocks."""
    if f == 1:
        return a
    return _blocks(a, f, np.maximum, -np.inf if a.dtype.kind == "f" else 0)


def _rgb_mean(a: np.ndarray, f: int) -> np.ndarray:
    """(h, w, 3) uint8 -> block means, rounded, in its own layout: integer sums (uint16 up to
    16 x 16 blocks: 256 x 255 < 2**16), no float copy of the whole crop."""
    h, w, _ = a.shape
    hh, ww = -(-h // f) * f, -(-w // f) * f
    if (hh, ww) != (h, w):
        padded = np.zeros((hh, ww, 3), np.uint8)
        padded[:h, :w] = a
        a = padded
    total = a[::f, ::f].astype(np.uint16 if f <= 16 else np.uint32)
    for i in range(f):
        for j in range(f):
            if i or j:
                total += a[i::f, j::f]
    ys, xs = np.arange(0, h, f), np.arange(0, w, f)
    n = (np.minimum(f, h - ys)[:, None] * np.minimum(f, w - xs)[None, :]).astype(np.float32)
    return np.rint(total / n[..., None]).astype(np.uint8)


def downsample(topic: str, a: np.ndarray, f: int) -> np.ndarray:
    """A full-resolution crop of `topic` (its preview layout) at 1/f, same layout and dtype."""
    if f == 1:
        return a
    if topic == "rgb":
        return _rgb_mean(a, f)
    if topic == "trust":
        return block_mean(a[None].astype(np.float32, copy=False), f)[0]
    if topic.startswith(DOMAIN):  # a block is outside the domain if any of its pixels is
        return block_max(a[None], f)[0]
    return block_mean(a, f)


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]
           ) -> tuple[int, int, int, int]:
    """The smallest (x0, y0, w, h) box holding both; an empty box (w or h 0) adds nothing."""
    if not (a[2] and a[3]):
        return b
    if not (b[2] and b[3]):
        return a
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    return (x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0)


def split_sigma(names: tuple[str, ...]) -> tuple[list[int], list[int]]:
    """(value plane indices, sigma plane index per value plane or -1)."""
    index = {n: i for i, n in enumerate(names)}
    values = [i for i, n in enumerate(names) if not n.endswith(SIGMA_SUFFIXES)]
    return values, [next((index[names[i] + x] for x in SIGMA_SUFFIXES
                          if names[i] + x in index), -1) for i in values]


class ViewState:
    """Canvases of the current scan, written by the Clone thread, read by the web side.

    Every method takes `lock`; `gen` changes whenever the geometry or the scan changes,
    so a browser knows to start over.
    """

    def __init__(self, max_side: int = MAX_SIDE) -> None:
        self.lock = threading.RLock()
        self.max_side = max_side
        self.gen = 0
        self.scan_id = ""
        self.start: wire.ScanStart | None = None
        self.width = self.height = 0
        self.level = 0
        self.seq = -1
        self.names: tuple[str, ...] = ()
        self._vmax: np.ndarray | None = None  # per element plane; None: to recompute
        self.peaks: np.ndarray | None = None  # block maxima of the element planes (level > 0)
        self.full: dict[str, np.ndarray] = {}
        self.over: dict[str, np.ndarray] = {}
        self.status: wire.Status | None = None
        self.threshold: float | None = None  # the trust score above which paint is unfamiliar
        self.topic_seq: dict[str, int] = {}

    # ---- writes (the Clone thread) ------------------------------------------------------
    def reset(self, scan_id: str, start: wire.ScanStart | None) -> None:
        with self.lock:
            self.gen += 1
            self.scan_id, self.start, self.seq = scan_id, start, -1
            self.width, self.height = (start.width, start.height) if start else (0, 0)
            self.level = overview_level(self.width, self.height, self.max_side) if start else 0
            self.full, self.over, self.names = {}, {}, ()
            self.topic_seq: dict[str, int] = {}  # the last preview seq written, per topic
            self.peaks, self._vmax, self.threshold = None, None, None

    def apply(self, p: wire.Preview) -> tuple[int, int, int, int] | None:
        """Write one preview; the full-resolution box (x0, y0, w, h) that really changed
        (w = h = 0: nothing did, as in most periodic refreshes), or None when the preview
        does not fit this scan (the caller resyncs)."""
        x0, y0, w, h = p.region
        with self.lock:
            if p.scan_id != self.scan_id or x0 + w > self.width or y0 + h > self.height:
                return None
            if p.topic == "elements" and tuple(p.names) != self.names:
                self._allocate_elements(tuple(p.names))
            if p.topic not in self.full:
                self._allocate(p.topic)
            box = self._write(p.topic, x0, y0, w, h, np.asarray(p.data))
            domain = getattr(p, "domain", None)
            if domain is not None:
                if DOMAIN + p.topic not in self.full:
                    self._allocate(DOMAIN + p.topic)
                box = _union(box, self._write(DOMAIN + p.topic, x0, y0, w, h,
                                              np.asarray(domain)))
            if p.topic == "trust" and getattr(p, "threshold", None) is not None:
                self.threshold = float(p.threshold)
            self.seq = max(self.seq, p.seq)
            self.topic_seq[p.topic] = max(self.topic_seq.get(p.topic, -1), p.seq)
            return box

    def _write(self, key: str, x0: int, y0: int, w: int, h: int, data: np.ndarray
               ) -> tuple[int, int, int, int]:
        """Write only the rows and columns that differ (a refresh of what we hold costs one
        comparison, not an overview update; an all-zero tile never touches fresh pages)."""
        full = self.full[key]
        old = full[:, y0:y0 + h, x0:x0 + w] if key == "elements" else full[y0:y0 + h, x0:x0 + w]
        diff = old != data
        if key == "elements":
            diff = np.logical_or.reduce(diff, axis=0)  # plane by plane: contiguous ORs
        elif key == "rgb":  # any(axis=2) over 3 channels measured ~10x slower than this
            diff = diff[..., 0] | diff[..., 1] | diff[..., 2]
        rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
        if not rows.size:
            return (x0, y0, 0, 0)
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        if key == "elements":
            old[:, r0:r1, c0:c1] = data[:, r0:r1, c0:c1]
            self._vmax = None
        else:
            old[r0:r1, c0:c1] = data[r0:r1, c0:c1]
        self._refresh_overview(key, x0 + c0, y0 + r0, c1 - c0, r1 - r0)
        return (x0 + c0, y0 + r0, c1 - c0, r1 - r0)

    def _allocate(self, topic: str) -> np.ndarray:
        h, w = self.height, self.width
        shape = (h, w, 3) if topic == "rgb" else (h, w)
        dtype = np.float32 if topic == "trust" else np.uint8
        self.full[topic] = np.zeros(shape, dtype)
        self.over[topic] = self._overview_like(topic, self.full[topic])
        return self.full[topic]

    def _allocate_elements(self, names: tuple[str, ...]) -> None:
        if self.names:
            self.gen += 1  # other planes mid-scan (models reloaded): browsers start over
        self.names = names
        self.full["elements"] = np.zeros((len(names), self.height, self.width), np.float32)
        self.over["elements"] = self._overview_like("elements", self.full["elements"])
        self._vmax = None
        if self.level:
            f = 1 << self.level
            self.peaks = np.zeros((len(names), -(-self.height // f), -(-self.width // f)),
                                  np.float32)

    def _overview_like(self, topic: str, full: np.ndarray) -> np.ndarray:
        if self.level == 0:
            return full  # the same array: no second copy
        f = 1 << self.level
        oh, ow = -(-self.height // f), -(-self.width // f)
        shape = {"rgb": (oh, ow, 3), "elements": (len(self.names), oh, ow)}.get(topic, (oh, ow))
        return np.zeros(shape, full.dtype)

    def _refresh_overview(self, topic: str, x0: int, y0: int, w: int, h: int) -> None:
        if self.level == 0:
            return
        f = 1 << self.level
        bx0, by0 = x0 // f, y0 // f
        bx1, by1 = -(-(x0 + w) // f), -(-(y0 + h) // f)
        src = self.crop(topic, 0, bx0 * f, by0 * f, bx1 * f - bx0 * f, by1 * f - by0 * f)
        small = downsample(topic, src, f)
        if topic == "elements":
            self.over[topic][:, by0:by1, bx0:bx1] = small
            self.peaks[:, by0:by1, bx0:bx1] = block_max(src, f)
        else:
            self.over[topic][by0:by1, bx0:bx1] = small

    # ---- reads (the web side) -----------------------------------------------------------
    def crop(self, topic: str, level: int, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """Full-resolution box (x0, y0, w, h), clipped to the canvas, at `level` (0: as is,
        self.level: from the overview, between: block means computed now). A view at level 0."""
        with self.lock:
            x1, y1 = min(x0 + w, self.width), min(y0 + h, self.height)
            if level == self.level and level > 0:
                f = 1 << level
                a = self.over[topic]
                ys, xs = slice(y0 // f, -(-y1 // f)), slice(x0 // f, -(-x1 // f))
                return a[:, ys, xs] if topic == "elements" else a[ys, xs]
            a = self.full[topic]
            part = a[:, y0:y1, x0:x1] if topic == "elements" else a[y0:y1, x0:x1]
            return downsample(topic, part, 1 << level)

    @property
    def vmax(self) -> np.ndarray:
        """Each element plane's largest value at full resolution, from the block maxima (at
        most max_side**2 values a plane to scan), cached until the next write."""
        with self.lock:
            if self._vmax is None:
                planes = self.peaks if self.level else self.full.get("elements")
                self._vmax = (np.zeros(0, np.float32) if planes is None
                              else planes.max(axis=(1, 2)))
            return self._vmax

    def has(self, topic: str) -> bool:
        return topic in self.full

    def describe(self) -> dict:
        """What a browser needs to lay the scan out (JSON-ready)."""
        with self.lock:
            values, sigma = split_sigma(self.names)
            s = self.start
            return {
                "scan_id": self.scan_id, "gen": self.gen, "width": self.width,
                "height": self.height, "level": self.level, "max_side": self.max_side,
                "names": list(self.names), "values": values, "sigma": sigma,
                "pixel_size_um": s.pixel_size_um if s else None,
                "calibration": [s.offset_kev, s.gain_kev, s.channels] if s else None,
            }
