"""A small PNG writer and the few drawing helpers `edge watch` needs.

The edge box carries no matplotlib, so images are written with zlib + struct:
8-bit RGB, one IDAT. Labels use a 5x7 bitmap font; maps use a viridis-like
colour table interpolated from a handful of anchors.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

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


def colourise(values: np.ndarray, lo: float | None = None, hi: float | None = None):
    """float (H, W) -> (H, W, 3) uint8 through the LUT, with the range used."""
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if lo is None and finite.size else (lo or 0.0)
    hi = float(finite.max()) if hi is None and finite.size else (hi or 1.0)
    span = hi - lo if hi > lo else 1.0
    idx = np.clip((np.nan_to_num(values, nan=lo) - lo) / span * 255, 0, 255).astype(np.uint8)
    return LUT[idx], lo, hi


def upscale(image: np.ndarray, min_side: int = 192) -> np.ndarray:
    """Nearest-neighbour enlargement so a 32 x 32 scan is still visible."""
    f = max(1, min_side // max(1, max(image.shape[:2])))
    return image.repeat(f, axis=0).repeat(f, axis=1) if f > 1 else image


# 5x7 font: each glyph is 7 rows of 5 bits
_FONT = {
    " ": "00000" * 7,
    "-": "00000" "00000" "00000" "11111" "00000" "00000" "00000",
    ".": "00000" "00000" "00000" "00000" "00000" "01100" "01100",
    "/": "00001" "00010" "00010" "00100" "01000" "01000" "10000",
    "e": "00000" "00000" "01110" "10001" "11111" "10000" "01110",
    "+": "00000" "00100" "00100" "11111" "00100" "00100" "00000",
}
_DIGITS = [
    "01110100011001110101110011000101110", "00100011000010000100001000010001110",
    "01110100010000100010001000100011111", "11111000100010000010000011000101110",
    "00010001100101010010111110001000010", "11111100001111000001000011000101110",
    "00110010001000011110100011000101110", "11111000010001000100010000100001000",
    "01110100011000101110100011000101110", "01110100011000101111000010001001100",
]
_LETTERS = {
    "A": "01110100011000111111100011000110001", "B": "11110100011000111110100011000111110",
    "C": "01110100011000010000100001000101110", "D": "11100100101000110001100011001011100",
    "E": "11111100001000011110100001000011111", "F": "11111100001000011110100001000010000",
    "G": "01110100011000010111100011000101111", "H": "10001100011000111111100011000110001",
    "I": "01110001000010000100001000010001110", "K": "10001100101010011000101001001010001",
    "L": "10000100001000010000100001000011111", "M": "10001110111010110101100011000110001",
    "N": "10001100011100110101100111000110001", "O": "01110100011000110001100011000101110",
    "P": "11110100011000111110100001000010000", "R": "11110100011000111110101001001010001",
    "S": "01111100001000001110000010000111110", "T": "11111001000010000100001000010000100",
    "U": "10001100011000110001100011000101110", "W": "10001100011000110101101011010101010",
    "a": "00000000000111000001011111000101111", "b": "10000100001011011001100011000111110",
    "c": "00000000000111010000100001000101110", "d": "00001000010110110011100011000101111",
    "g": "00000011111000110001011110000101110", "i": "00100000000110000100001000010001110",
    "l": "01100001000010000100001000010001110", "n": "00000000001011011001100011000110001",
    "o": "00000000000111010001100011000101110", "r": "00000000001011011001100001000010000",
    "s": "00000000000111110000011100000111110", "t": "01000010001110001000010000100100110",
    "u": "00000000001000110001100011001101101", "x": "00000000001000101010001000101010001",
}
_FONT |= {str(i): g for i, g in enumerate(_DIGITS)} | _LETTERS


def draw_text(image: np.ndarray, text: str, x: int, y: int, scale: int = 2,
              colour=(255, 255, 255)) -> None:
    """Draw `text` into an (H, W, 3) image in place; unknown characters as blanks."""
    for i, ch in enumerate(text):
        glyph = _FONT.get(ch, _FONT.get(ch.upper(), _FONT[" "]))
        bits = np.array([int(b) for b in glyph], dtype=bool).reshape(7, 5)
        block = bits.repeat(scale, axis=0).repeat(scale, axis=1)
        gx = x + i * 6 * scale
        sub = image[y:y + block.shape[0], gx:gx + block.shape[1]]
        mask = block[: sub.shape[0], : sub.shape[1]]
        sub[mask] = colour


def panel(values: np.ndarray, title: str, side: int = 192, lo: float | None = None,
          hi: float | None = None) -> np.ndarray:
    """One labelled map with a colour bar, its longer side about `side` pixels; the colour
    range is the values' own unless `lo`/`hi` fix it (a 0/1 mask: 0, 1)."""
    img, lo, hi = colourise(values, lo, hi)
    step = max(1, max(img.shape[:2]) // side)  # big scans: decimate the preview panel
    img = img[::step, ::step]
    f = max(1, side // max(1, max(img.shape[:2])))  # whole factor, aspect kept, no crop
    img = img.repeat(f, axis=0).repeat(f, axis=1)
    ph, pw = img.shape[:2]
    out = np.full((ph + 24, pw + 74, 3), 24, dtype=np.uint8)
    out[20:20 + ph, 2:2 + pw] = img
    bar = LUT[np.linspace(255, 0, ph).astype(np.uint8)][:, None, :].repeat(10, axis=1)
    out[20:20 + ph, pw + 6:pw + 16] = bar
    draw_text(out, title[: (pw + 70) // 12], 2, 3)
    draw_text(out, _fmt(hi), pw + 19, 20, scale=1)
    draw_text(out, _fmt(lo), pw + 19, 20 + ph - 8, scale=1)
    return out


def grid(panels: list[np.ndarray], columns: int = 4) -> np.ndarray:
    h = max(p.shape[0] for p in panels)
    w = max(p.shape[1] for p in panels)
    rows = -(-len(panels) // columns)
    out = np.full((rows * h, min(columns, len(panels)) * w, 3), 24, dtype=np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, columns)
        out[r * h:r * h + p.shape[0], c * w:c * w + p.shape[1]] = p
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.1e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:.3g}"
