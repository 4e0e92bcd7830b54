"""A small PNG writer and the few drawing helpers `edge watch` needs.

The edge box carries no matplotlib, so images are written with zlib + struct:
8-bit RGB, one IDAT. Labels use a 5x7 bitmap font (edge/font.py); maps use a
viridis-like colour table interpolated from a handful of anchors.

Panels follow the live view's rules (edge/view/static/draw.js, app.js): zero-based
scale by default (black is 0 c/s, not the map's minimum), or the 1st..99th percentile
of the positive values; negatives drawn as 0; a colour bar with round tick values and
units; a scale bar in mm when the pixel size is known; a line scan's short side
stretched to a readable height and a 1 x 1 scan enlarged to a block, each said in
the caption.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from edge.font import draw_text, text_width

# viridis anchors (matplotlib's, sampled at 0, 1/8, ..., 1)
_ANCHORS = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
], dtype=np.float64)
LUT = np.stack([
    np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c])
    for c in range(3)
], axis=1).round().astype(np.uint8)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """(H, W, 3) or (H, W) uint8 -> PNG file."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    h, w, _ = image.shape
    raw = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # filter byte 0 per row
    raw[:, 1:] = image.reshape(h, 3 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(png)
    tmp.replace(path)  # a viewer never sees half a file
    return path


def read_png(path: str | Path) -> np.ndarray:
    """Reads back what `write_png` writes (8-bit RGB, filter 0 only): for tests."""
    data = Path(path).read_bytes()
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)
    return raw[:, 1:].reshape(h, w, 3).copy()


MIN_SHORT = 48  # px: a line scan's short side is stretched to at least this
BAR_MIN = 96  # px: the colour bar is never shorter, so its tick labels stay apart
BG = 24  # panel background grey


def scale_range(values: np.ndarray, scaling: str = "zero", lo: float | None = None,
                hi: float | None = None) -> tuple[float, float]:
    """The colour range, as the live view picks it: `lo`/`hi` when both are given (a 0/1
    mask), else 0 .. max ("zero") or the 1st .. 99th percentile of the positive values
    ("percentile"). A constant map c gets 0 .. c; an empty or all-zero one 0 .. 1."""
    if lo is not None and hi is not None:
        return float(lo), float(hi)
    v = np.asarray(values, dtype=np.float64)
    pos = v[np.isfinite(v) & (v > 0)]
    if scaling == "percentile" and pos.size:
        a, b = np.percentile(pos, [1, 99], method="lower")  # app.js's percentiles()
        if b > a:
            return float(a), float(b)
    elif scaling not in ("zero", "percentile"):
        raise ValueError(f"scaling is 'zero' or 'percentile', not {scaling!r}")
    top = float(pos.max()) if pos.size else 0.0
    return 0.0, top if top > 0 else 1.0


def colourise(values: np.ndarray, lo: float | None = None, hi: float | None = None,
              scaling: str = "zero"):
    """float (H, W) -> (H, W, 3) uint8 through the LUT, with the range used. Negatives
    and NaN are drawn as 0 (a count rate below zero is noise, not a value to show)."""
    lo, hi = scale_range(values, scaling, lo, hi)
    span = hi - lo if hi > lo else 1.0
    v = np.maximum(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0)
    idx = np.clip((v - lo) / span * 255, 0, 255).astype(np.uint8)
    return LUT[idx], lo, hi


def upscale(image: np.ndarray, min_side: int = 192, min_short: int = MIN_SHORT) -> np.ndarray:
    """Nearest-neighbour enlargement so a 32 x 32 scan is still visible (a big one is
    kept whole); a line scan's short side is then stretched to `min_short` pixels."""
    f = max(1, min_side // max(1, max(image.shape[:2])))
    img = image.repeat(f, axis=0).repeat(f, axis=1) if f > 1 else image
    ry, rx = (math.ceil(min_short / n) if n < min_short else 1 for n in img.shape[:2])
    return img.repeat(ry, axis=0).repeat(rx, axis=1) if ry * rx > 1 else img


def fit(image: np.ndarray, side: int = 192, min_short: int = MIN_SHORT
        ) -> tuple[np.ndarray, float, float, list[str]]:
    """Decimate a big image / enlarge a small one so its longer side is about `side`
    pixels (whole factors, aspect kept), then stretch a too-short side to `min_short`.
    Returns the image, scan pixels per shown pixel along x and y, and caption notes."""
    h, w = image.shape[:2]
    step = max(1, max(h, w) // side)
    img = image[::step, ::step]
    f = max(1, side // max(1, max(img.shape[:2])))
    img = img.repeat(f, axis=0).repeat(f, axis=1) if f > 1 else img
    notes = [f"every {step}th pixel"] if step > 1 else []
    ry = math.ceil(min_short / img.shape[0]) if img.shape[0] < min_short else 1
    rx = math.ceil(min_short / img.shape[1]) if img.shape[1] < min_short else 1
    if ry > 1:
        img = img.repeat(ry, axis=0)
        notes.append(f"height stretched x{ry}")
    if rx > 1:
        img = img.repeat(rx, axis=1)
        notes.append(f"width stretched x{rx}")
    return img, step / f, step / (f * ry), notes


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values between lo and hi (draw.js's niceTicks)."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [t * step for t in range(first, math.floor(hi / step + 1e-9) + 1)]


def fmt_value(v: float) -> str:
    """A tick label (draw.js's fmtValue): 3.0k, 250, 2.5, 0.12."""
    a = abs(v)
    if a >= 1e4:
        return f"{v / 1000:.0f}k"
    if a >= 1000:
        return f"{v / 1000:.1f}k"
    if a >= 10:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return "0" if v == 0 else f"{v:.2g}"


def scale_bar(mm_per_px: float, max_px: int) -> tuple[int, str] | None:
    """The longest round length (1, 2, 5 x 10^k mm) that fits in `max_px`: (px, label)."""
    if not mm_per_px > 0 or max_px < 8:
        return None
    k = math.floor(math.log10(max_px * mm_per_px))
    for mag in (10.0 ** k, 10.0 ** (k - 1)):
        for m in (5, 2, 1):
            px = round(m * mag / mm_per_px)
            if 8 <= px <= max_px:
                return px, f"{m * mag:.6g} mm"
    return None


def panel(values: np.ndarray, title: str, side: int = 192, lo: float | None = None,
          hi: float | None = None, *, units: str = "", scaling: str = "zero",
          pixel_size_um: float | None = None) -> np.ndarray:
    """One labelled map: title, the map (longer side about `side` pixels), a colour bar
    with tick values and `units`, and a caption (scale bar in mm when `pixel_size_um` is
    known; the scale used; stretching or decimation). `lo`/`hi` fix the range (a 0/1
    mask); else `scaling` picks it (scale_range)."""
    fixed = lo is not None and hi is not None
    img, lo, hi = colourise(values, lo, hi, scaling)
    img, mm_x, _, notes = fit(img, side)
    ph, pw = img.shape[:2]
    bar_h = max(ph, BAR_MIN)
    v = np.asarray(values, dtype=np.float64)
    if (np.nan_to_num(v) < 0).any():
        notes.insert(0, "negatives shown as 0")
    if not fixed:
        notes.insert(0, "scale p1..p99" if scaling == "percentile" and lo > 0 else "scale 0..max")
    bar = scale_bar(mm_x * pixel_size_um / 1000, pw * 2 // 5) if pixel_size_um else None
    lines = _wrap(notes, max(pw + 66, 192) // 6 - 1)
    width = max(pw + 70, 6 * max((len(s) for s in lines), default=0) + 6)
    room = pw + 2 if units else width - 4  # the units sit above the colour bar
    tscale = 2 if text_width(title, 2) <= room else 1
    title = title[: room // (6 * tscale)]
    cap_y = 22 + bar_h + 4
    height = cap_y + (12 if bar else 0) + 10 * len(lines) + 2
    out = np.full((height, width, 3), BG, dtype=np.uint8)
    draw_text(out, title, 2, 3 if tscale == 2 else 7, scale=tscale)
    out[22:22 + ph, 2:2 + pw] = img
    _colour_bar(out, pw + 6, 22, bar_h, lo, hi, units)
    y = cap_y
    if bar:
        px, label = bar
        out[y + 2:y + 5, 2:2 + px] = 255
        out[y:y + 7, 2] = out[y:y + 7, 1 + px] = 255
        draw_text(out, label, px + 6, y, scale=1)
        y += 12
    for s in lines:
        draw_text(out, s, 2, y, scale=1, colour=(200, 200, 200))
        y += 10
    return out


def _colour_bar(out: np.ndarray, x: int, top: int, h: int, lo: float, hi: float,
                units: str) -> None:
    """A vertical LUT strip with ticks at round values; labels at least 9 px apart."""
    out[top:top + h, x:x + 10] = LUT[np.linspace(255, 0, h).astype(np.uint8)][:, None, :]
    if units:
        draw_text(out, units, x, top - 9, scale=1)
    span = hi - lo if hi > lo else 1.0
    last = -100
    for t in reversed(nice_ticks(lo, hi, 5)):  # top down
        y = top + round((1 - (t - lo) / span) * (h - 1))
        out[y, x + 10:x + 12] = 255
        ly = min(max(top, y - 3), top + h - 7)
        if ly - last >= 9:
            draw_text(out, fmt_value(t), x + 16, ly, scale=1)
            last = ly


def _wrap(notes: list[str], chars: int) -> list[str]:
    """Caption notes joined with ', ', wrapped at `chars` characters."""
    lines: list[str] = []
    for n in notes:
        if lines and len(lines[-1]) + 2 + len(n) <= chars:
            lines[-1] += ", " + n
        else:
            lines.append(n[:chars])
    return lines


def grid(panels: list[np.ndarray], columns: int = 4) -> np.ndarray:
    h = max(p.shape[0] for p in panels)
    w = max(p.shape[1] for p in panels)
    rows = -(-len(panels) // columns)
    out = np.full((rows * h, min(columns, len(panels)) * w, 3), BG, dtype=np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, columns)
        out[r * h:r * h + p.shape[0], c * w:c * w + p.shape[1]] = p
    return out
