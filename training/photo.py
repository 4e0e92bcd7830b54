"""A camera photograph on the scan grid: read it, resample it through a registration
transform over each scan pixel's footprint, store it as the dataset's `photo_rgb`, and
draw a check picture.

Coordinates are (x, y) = (column, row) with pixel centres at integers, as scikit-image
and image viewers count them. Colour is averaged in linear light (a camera pixel and
the beam both integrate light, not sRGB code values), the way the simulator makes its
aligned photographs (`training.paintings.pixel_truth`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageOps
from scipy.ndimage import gaussian_filter, map_coordinates
from skimage.transform import ProjectiveTransform

from proto.dataset import open_dataset
from training.pigments import linear_to_srgb, srgb_to_linear

FWHM_PER_SIGMA = 2.3548
MAX_SUPERSAMPLE = 12  # samples per scan pixel along each axis; caps memory on huge photos


class PhotoError(ValueError):
    """A photograph cannot be read or stored."""


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """A JPEG/PNG/TIFF photograph as linear-light RGB float32 (h, w, 3) in 0..1."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            img = np.asarray(tifffile.imread(path))  # 16-bit scans from a lab's camera
        else:
            with Image.open(path) as im:
                # the orientation a viewer shows (and a user clicks on), not the sensor's
                img = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise PhotoError(f"{path}: cannot read the photograph ({exc})") from exc
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] < 3:
        raise PhotoError(f"{path}: expected an RGB image, got shape {img.shape}")
    img = img[..., :3]  # drop alpha
    if img.dtype.kind in "ui":
        scaled = img / float(np.iinfo(img.dtype).max)
    else:
        scaled = np.clip(img, 0.0, 1.0)
    return srgb_to_linear(scaled).astype(np.float32)


def spot_px_of(scan: Mapping[str, Any], instrument: Mapping[str, Any]) -> float:
    """Beam-spot FWHM in scan pixels from the dataset's metadata; 0 when unknown."""
    spot = scan.get("beam_spot_um") or scan.get("spot_um") or instrument.get("spot_um")
    pixel = scan.get("pixel_size_um")
    try:
        return max(float(spot) / float(pixel), 0.0) if spot and pixel else 0.0
    except (TypeError, ValueError):
        return 0.0


def scale_of(transform: ProjectiveTransform, shape: tuple[int, int]) -> float:
    """Photo pixels per scan pixel at the scan's centre (the larger singular value)."""
    h, w = shape
    c = np.array([[(w - 1) / 2, (h - 1) / 2]])
    jac = np.stack([transform(c + d)[0] - transform(c - d)[0]
                    for d in (np.array([[0.5, 0]]), np.array([[0, 0.5]]))], axis=1)
    return float(np.linalg.svd(jac, compute_uv=False)[0])


class Resampler:
    """Samples a photo-sized image on the scan grid, averaged over each scan pixel's
    footprint: the pixel's square (block mean of a supersampled grid), blurred by a
    Gaussian beam of FWHM `spot_px` scan pixels where the spot is known. Sampling at
    least once per photo pixel keeps the bilinear samples from aliasing fine detail; a
    photo finer than MAX_SUPERSAMPLE samples per scan pixel is low-passed to match first.
    Works in blocks of scan rows, so a 20-megapixel photo of a 300 x 400 scan fits."""

    def __init__(self, shape: tuple[int, int], scale: float, spot_px: float = 0.0,
                 block_rows: int = 16) -> None:
        self.shape, self.block = shape, block_rows
        self.ss = int(np.clip(np.ceil(scale), 1, MAX_SUPERSAMPLE))
        self.prefilter = 0.5 * scale / self.ss if scale > self.ss else 0.0  # photo pixels
        self.sigma = spot_px * self.ss / FWHM_PER_SIGMA  # samples
        # the beam reaches beyond the scan area's edge pixels: sample the photo there too
        self.pad = int(np.ceil(3 * spot_px / FWHM_PER_SIGMA))
        self.offsets = (np.arange(self.ss) + 0.5) / self.ss - 0.5

    def grid(self, y0: int, y1: int) -> np.ndarray:
        """Scan (x, y) of the samples of rows y0..y1-1 and the pad around them."""
        pad, w = self.pad, self.shape[1]
        ys = (np.arange(y0 - pad, y1 + pad)[:, None] + self.offsets).ravel()
        xs = (np.arange(-pad, w + pad)[:, None] + self.offsets).ravel()
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        return np.column_stack([xx.ravel(), yy.ravel()])

    def __call__(self, image: np.ndarray, transform: ProjectiveTransform) -> np.ndarray:
        """(h, w, K) photo-sized image -> (H, W, K) footprint averages on the scan grid."""
        if self.prefilter:
            image = gaussian_filter(image, (self.prefilter, self.prefilter, 0))
        h, w = self.shape
        ss, pad = self.ss, self.pad
        out = np.empty((h, w, image.shape[2]), dtype=np.float32)
        for y0 in range(0, h, self.block):
            y1 = min(h, y0 + self.block)
            xy = transform(self.grid(y0, y1))
            for k in range(image.shape[2]):
                fine = map_coordinates(image[..., k], [xy[:, 1], xy[:, 0]], order=1,
                                       mode="nearest")
                fine = fine.reshape((y1 - y0 + 2 * pad) * ss, (w + 2 * pad) * ss)
                if self.sigma > 0:
                    fine = gaussian_filter(fine, self.sigma, mode="nearest", truncate=3.0)
                fine = fine[pad * ss:(pad + y1 - y0) * ss, pad * ss:(pad + w) * ss]
                out[y0:y1, :, k] = fine.reshape(y1 - y0, ss, w, ss).mean(axis=(1, 3))
        return out


def outside(transform: ProjectiveTransform, shape: tuple[int, int],
            photo_shape: tuple[int, ...], tolerance: float = 0.5) -> np.ndarray | None:
    """The first scan-area corner (photo x, y) that falls outside the photograph by more
    than `tolerance` scan pixels, or None. Corners suffice: a transform that does not fold
    maps the rectangle to a convex quadrilateral."""
    h, w = shape
    t = tolerance
    corners = np.array([[-t, -t], [w - 1 + t, -t], [w - 1 + t, h - 1 + t], [-t, h - 1 + t]])
    xy = transform(corners)
    ph, pw = photo_shape[:2]
    bad = (xy[:, 0] < -0.5) | (xy[:, 0] > pw - 0.5) | (xy[:, 1] < -0.5) | (xy[:, 1] > ph - 0.5)
    return xy[np.argmax(bad)] if bad.any() else None


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)


def store_photo(path: str | os.PathLike, rgb: np.ndarray, attrs: Mapping[str, Any]) -> None:
    """Write `photo_rgb` (replacing any) with the registration in its attributes.

    proto/dataset.py has no writer for one optional dataset into an existing file, so this
    writes the documented layout (uint8 (H, W, 3), gzip, `colour_space`) itself and then
    re-opens the file with the proto reader, which checks the shape.
    """
    with open_dataset(path) as ds:
        hw, status = ds.shape[:2], ds.status
    if status == "recording":
        raise PhotoError(f"{path}: still being recorded; register it once the scan has ended")
    if rgb.shape != (*hw, 3) or rgb.dtype != np.uint8:
        raise PhotoError(f"photo must be uint8 {(*hw, 3)}, got {rgb.dtype} {rgb.shape}")
    with h5py.File(path, "r+") as f:
        if "photo_rgb" in f:
            del f["photo_rgb"]
        node = f.create_dataset("photo_rgb", data=rgb, compression="gzip", compression_opts=4)
        node.attrs["colour_space"] = "sRGB"
        for key, value in attrs.items():
            node.attrs[key] = value
    open_dataset(path).close()


def check_picture(
    photo_lin: np.ndarray, transform: ProjectiveTransform, registered: np.ndarray,
    clicked: np.ndarray, path: str | os.PathLike, reference: np.ndarray | None = None,
    matched: np.ndarray | None = None, height: int = 360,
) -> Path:
    """PNG: the photograph with the scan outline (green) and the clicked points (red);
    the registered photo; and, with a reference image of the scan, that image and an
    overlay of it (red) on `matched` (cyan; the photo expressed as the reference): where
    they agree it is grey, a misregistration shows red and cyan fringes at the edges."""
    h, w = registered.shape[:2]
    ph, pw = photo_lin.shape[:2]
    zoom = height / ph
    left = Image.fromarray(to_srgb8(photo_lin)).resize((max(1, round(pw * zoom)), height))
    draw = ImageDraw.Draw(left)
    outline = transform(np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5],
                                  [-0.5, h - 0.5], [-0.5, -0.5]]))
    draw.line([tuple((p + 0.5) * zoom) for p in outline], fill=(0, 255, 0), width=2)
    for x, y in (clicked + 0.5) * zoom:
        draw.line([(x - 6, y), (x + 6, y)], fill=(255, 0, 0), width=2)
        draw.line([(x, y - 6), (x, y + 6)], fill=(255, 0, 0), width=2)
    panels = [left, _scan_panel(to_srgb8(registered), height)]
    if reference is not None:
        lo, hi = np.nanpercentile(reference, [1, 99])
        grey = _grey8(reference, lo, hi)
        if matched is None:  # luminance, stretched alike
            matched = registered @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
            lo, hi = np.nanpercentile(matched, [1, 99])
        lum = _grey8(matched, lo, hi)
        overlay = np.stack([grey, lum, lum], axis=2)
        panels += [_scan_panel(grey, height), _scan_panel(overlay, height)]
    gap = 8
    canvas = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), height),
                       (255, 255, 255))
    x = 0
    for p in panels:
        canvas.paste(p.convert("RGB"), (x, 0))
        x += p.width + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _grey8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = np.nan_to_num((img - lo) / max(hi - lo, 1e-12), nan=0.0)  # NaN: not acquired
    return np.round(255 * np.clip(scaled, 0, 1)).astype(np.uint8)


def _scan_panel(img: np.ndarray, height: int) -> Image.Image:
    # nearest neighbour: one scan pixel stays one visible square
    zoom = height / img.shape[0]
    return Image.fromarray(img).resize((max(1, round(img.shape[1] * zoom)), height),
                                       Image.Resampling.NEAREST)
